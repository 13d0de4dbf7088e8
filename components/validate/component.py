from kfp import dsl
from kfp.dsl import Dataset, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate(params: dict, data_dir: str, transcripts: Output[Dataset], quarantine: Output[Dataset]):
    """Validate the annotation sets into a transcripts table; rejected records go to quarantine."""
    from pathlib import Path

    from isoclr.config import Config
    from isoclr.ingest import validate as run

    result = run(Config.model_validate(params), Path(data_dir), Path(transcripts.path), Path(quarantine.path))
    transcripts.metadata["n_transcripts"] = result.n_transcripts
    quarantine.metadata.update({"n_quarantined": result.n_quarantined, **result.by_rule})
