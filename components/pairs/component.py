from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def pairs(params: dict, data_dir: str, transcripts: Input[Dataset], groups: Output[Dataset]):
    """Isoform groups, paralog families, homology groups and the split by homology group."""
    from isoclr import stage
    from isoclr.artifacts import Paths
    from isoclr.config import Config

    paths = Paths.task(data_dir=data_dir, transcripts=transcripts.path, groups=groups.path)
    groups.metadata.update(stage.metadata(stage.execute("pairs", Config.model_validate(params), paths)))
