from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def encode(params: dict, transcripts: Input[Dataset], tracks: Output[Dataset]):
    """Pack the validated transcripts into the track store (a folder of memory-mapped shards + index)
    that training and the probes read instead of re-encoding the table."""
    from isoclr import stage
    from isoclr.artifacts import Paths
    from isoclr.config import Config

    result = stage.execute(
        "encode", Config.model_validate(params), Paths.task(transcripts=transcripts.path, tracks=tracks.path)
    )
    tracks.metadata.update(stage.metadata(result))
