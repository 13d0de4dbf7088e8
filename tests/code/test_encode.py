"""The encode stage through the stage runner: the track store of the validated table, and its metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from isoclr import metrics, stage
from isoclr.artifacts import Paths
from isoclr.config import MetricsConfig
from isoclr.encode import EncodeResult
from isoclr.errors import MissingInputError
from isoclr.store import TrackStore
from isoclr.tracks import encode_row
from tests.helpers import GOOD_GTF, SEQS, fasta, gencode_annotation, gencode_records, gtf_annotation, make_config

ENCODE_METRICS = ("isoclr_track_store_transcripts", "isoclr_track_store_bytes", "isoclr_track_store_shards")


@pytest.fixture
def validated(tmp_path):
    anns = [gtf_annotation(tmp_path, GOOD_GTF, fasta(SEQS)), gencode_annotation(tmp_path, fasta(gencode_records()))]
    cfg = make_config(anns, max_quarantine_fraction=0.6)
    paths = Paths.under(tmp_path / "out", data_dir=tmp_path)
    stage.run("validate", cfg, paths)
    return cfg, paths


def test_encode_packs_every_validated_transcript(validated):
    cfg, paths = validated
    result = stage.run("encode", cfg, paths)
    table = pd.read_parquet(paths.transcripts)
    assert result == EncodeResult(n_transcripts=len(table), n_bytes=int(table.length.sum()), shards=1)
    store = TrackStore(paths.tracks)
    assert store.ids == table.transcript_id.tolist()
    for row in table.itertuples():
        np.testing.assert_array_equal(store.tracks(row.transcript_id), encode_row(row._asdict()))
    assert not list(paths.tracks.parent.glob(f"{stage.STAGING_PREFIX}*"))


def test_shard_size_comes_from_the_encode_section(validated):
    cfg, paths = validated
    cfg = cfg.model_copy(update={"encode": cfg.encode.model_copy(update={"shard_bytes": 32})})
    result = stage.run("encode", cfg, paths)
    assert result.shards > 1
    assert len(list(paths.tracks.glob("shard-*.u8"))) == result.shards


def test_result_records_its_metrics_and_says_what_it_did():
    result = EncodeResult(n_transcripts=8, n_bytes=1234, shards=2)
    meter = metrics.StageRun(MetricsConfig(), "encode")
    result.record(meter)
    assert [meter.registry.get_sample_value(name) for name in ENCODE_METRICS] == [8, 1234, 2]
    assert result.summary() == "8 transcripts, 1,234 bytes in 2 shard(s)"


def test_without_a_transcripts_table_the_stage_says_to_run_validate(tmp_path):
    cfg = make_config([gencode_annotation(tmp_path, fasta(gencode_records()))])
    with pytest.raises(MissingInputError, match="run `isoclr validate` first"):
        stage.run("encode", cfg, Paths.under(tmp_path))
