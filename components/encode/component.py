from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def encode(params: dict, transcripts: Input[Dataset], tracks: Output[Dataset]):
    """Pack the validated transcripts into the track store (a folder of memory-mapped shards + index)
    that training and the probes read instead of re-encoding the table."""
    from pathlib import Path

    from isoclr.config import Config
    from isoclr.store import write_store

    summary = write_store(Path(transcripts.path), Path(tracks.path), Config.model_validate(params).encode.shard_bytes)
    tracks.metadata.update({"n_transcripts": summary.n_transcripts, "n_bytes": summary.n_bytes, "shards": len(summary.shards)})
