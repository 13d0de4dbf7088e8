from kfp import dsl
from kfp.dsl import Dataset, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate(params: dict, data_dir: str, transcripts: Output[Dataset], quarantine: Output[Dataset]):
    """Validate the annotation sets into a transcripts table; rejected records go to quarantine."""
    from isoclr import stage
    from isoclr.artifacts import Paths
    from isoclr.config import Config

    paths = Paths.task(data_dir=data_dir, transcripts=transcripts.path, quarantine=quarantine.path)
    result = stage.execute("validate", Config.model_validate(params), paths)
    transcripts.metadata["n_transcripts"] = result.n_transcripts
    quarantine.metadata.update({"n_quarantined": result.n_quarantined, **result.by_rule})
