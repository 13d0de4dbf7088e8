from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(params: dict, transcripts: Input[Dataset], groups: Input[Dataset], model: Output[Model], log: Output[Dataset]):
    """Contrastive pretraining; the model artifact is a folder with encoder.pt and meta.json."""
    from pathlib import Path

    from isoclr.config import Config
    from isoclr.train import train as run

    summary = run(Config.model_validate(params), Path(transcripts.path), Path(groups.path), Path(model.path), Path(log.path))
    model.metadata.update(summary)
