"""The ``encode`` stage: the validated transcripts table -> the on-disk track store (:mod:`isoclr.store`).

Every transcript is packed once, one byte per nucleotide (:mod:`isoclr.tracks`), into a few
memory-mapped shards of at most ``encode.shard_bytes``; training and embedding read the tracks
from there instead of re-encoding the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from isoclr.artifacts import Paths
from isoclr.config import Config
from isoclr.errors import MissingInputError
from isoclr.metrics import StageRun
from isoclr.store import write_store


@dataclass(frozen=True)
class EncodeResult:
    n_transcripts: int
    n_bytes: int  # packed nucleotides, one byte each
    shards: int  # shard files (the key the Kubeflow encode component has always set)

    def record(self, meter: StageRun) -> None:
        meter.set("isoclr_track_store_transcripts", self.n_transcripts)
        meter.set("isoclr_track_store_bytes", self.n_bytes)
        meter.set("isoclr_track_store_shards", self.shards)

    def summary(self) -> str:
        return f"{self.n_transcripts} transcripts, {self.n_bytes:,} bytes in {self.shards} shard(s)"


def run(cfg: Config, paths: Paths) -> EncodeResult:
    """Pack ``paths.transcripts`` into a track store at ``paths.tracks``."""
    if not paths.transcripts.is_file():
        raise MissingInputError(f"{paths.transcripts}: no transcripts table; run `isoclr validate` first")
    store = write_store(paths.transcripts, paths.tracks, cfg.encode.shard_bytes)
    return EncodeResult(n_transcripts=store.n_transcripts, n_bytes=store.n_bytes, shards=len(store.shards))
