"""The public embedding API: `from isoclr import Encoder`, same embeddings as the pipeline, clear refusals."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from isoclr import Encoder, embed
from isoclr.artifacts import MODEL_CHECKPOINT
from isoclr.checkpoint import FORMAT_VERSION, IncompatibleModelError
from isoclr.embed_inputs import NOT_EMBEDDED, EmbedInputError
from isoclr.store import TrackStore, write_store
from tests.helpers import synthetic_annotation, train_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model folder written by the train stage (2 steps of the tiny config)."""
    return train_tiny_model(tmp_path_factory.mktemp("trained"))[0]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """Held-out transcripts (another seed) with CDS for some and exon ends for all, shuffled."""
    return synthetic_annotation(seed=5)[0].sample(frac=1.0, random_state=0).reset_index(drop=True)


def test_import_isoclr_stays_light():
    code = "import sys, isoclr; assert 'torch' not in sys.modules; from isoclr import Encoder; print(Encoder.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "Encoder\n"


@pytest.mark.slow
def test_api_equals_the_pipeline_embedding(model_dir, table, tmp_path):
    encoder = Encoder.from_dir(model_dir)
    result = encoder.embed(table=table)
    assert result.ids == table["transcript_id"].tolist() and result.skipped.empty
    assert result.pooled.shape == (len(table), encoder.out_dim) and result.pooled.dtype == np.float32
    # The probe stage's path: embed_table over the loaded module, with and without the track store.
    pipeline = embed.embed_table(embed.load_encoder(model_dir), table, batch_size=embed.DEFAULT_BATCH_SIZE)
    np.testing.assert_array_equal(result.pooled, pipeline)
    table.to_parquet(tmp_path / "t.parquet")
    write_store(tmp_path / "t.parquet", tmp_path / "store")
    from_store = embed.embed_table(
        embed.load_encoder(model_dir), table, embed.DEFAULT_BATCH_SIZE, store=TrackStore(tmp_path / "store")
    )
    np.testing.assert_array_equal(result.pooled, from_store)
    # The same transcripts as plain sequences with CDS and exon boundaries.
    cds = [None if pd.isna(s) else (int(s), int(e)) for s, e in zip(table["cds_start"], table["cds_end"], strict=True)]
    plain = encoder.embed(
        dict(zip(table["transcript_id"], table["seq"], strict=True)), cds=cds, exon_ends=list(table["exon_ends"])
    )
    np.testing.assert_array_equal(plain.pooled, result.pooled)
    # Deterministic, and independent of the batch it is in (to float rounding).
    np.testing.assert_array_equal(encoder.embed(table=table).pooled, result.pooled)
    one_by_one = encoder.embed(table=table.head(8), batch_size=1).pooled
    np.testing.assert_allclose(one_by_one, result.pooled[:8], atol=1e-5, rtol=0)


def test_per_position_output(model_dir, table):
    encoder = Encoder.from_dir(model_dir)
    rows = table.iloc[:5]
    result = encoder.embed(table=rows, per_position=True, batch_size=2)
    for seq, positions, pooled in zip(rows["seq"], result.positions, result.pooled, strict=True):
        assert positions.shape == (-(-len(seq) // 2), encoder.out_dim)  # one vector per 2 nt
        np.testing.assert_allclose(positions.mean(axis=0), pooled, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(result.pooled, encoder.embed(table=rows, batch_size=2).pooled)
    assert encoder.embed(table=rows).positions is None


def test_bf16_precision_is_close_to_fp32_and_deterministic(model_dir, table):
    rows = table.head(12)
    exact = Encoder.from_dir(model_dir).embed(table=rows).pooled
    fast = Encoder.from_dir(model_dir, precision="bf16")
    assert next(fast.model.parameters()).dtype == torch.bfloat16
    pooled = fast.embed(table=rows).pooled
    assert pooled.dtype == np.float32 and pooled.shape == exact.shape
    cosine = (pooled * exact).sum(1) / (np.linalg.norm(pooled, axis=1) * np.linalg.norm(exact, axis=1))
    assert cosine.min() > 0.999
    assert not np.array_equal(pooled, exact)  # really ran in bf16
    np.testing.assert_array_equal(fast.embed(table=rows).pooled, pooled)
    with pytest.raises(EmbedInputError, match="precision must be one of"):
        Encoder.from_dir(model_dir, precision="fp16")
    with pytest.raises(EmbedInputError, match="device 'gpu0'"):
        Encoder.from_dir(model_dir, device="gpu0")


def test_what_cannot_be_embedded_is_listed_with_the_reason(model_dir):
    encoder = Encoder.from_dir(model_dir)
    result = encoder.embed(
        ["ACGT" * 20, "ACGU" * 20 + "RYN", "", "ACGTX!", "ACGT" * 10, "ACGT" * 10, "A" * 150],
        ids=["ok", "iupac", "empty", "junk", "cds_out", "ok", "long"],
        cds=[None, None, None, None, (3, 400), None, None],
        max_length=100,
    )
    assert result.ids == ["ok", "iupac"]  # U and IUPAC ambiguity codes are embedded (as T and N)
    reasons = dict(zip(result.skipped["transcript_id"], result.skipped["reason"], strict=True))
    assert set(reasons) == {"empty", "junk", "cds_out", "ok", "long"}
    assert reasons["empty"] == "empty sequence"
    assert "'!X'" in reasons["junk"] and "CDS [3, 400)" in reasons["cds_out"] and "max_length 100" in reasons["long"]
    assert "duplicate" in reasons["ok"]
    assert (result.skipped["action"] == NOT_EMBEDDED).all()
    with pytest.raises(EmbedInputError, match="exactly one"):
        encoder.embed(["ACGT"], table=pd.DataFrame({"seq": ["ACGT"]}))


def test_from_dir_refuses_an_incompatible_checkpoint(model_dir, tmp_path):
    """The format rules themselves are tested in tests/code/test_checkpoint.py."""
    saved = torch.load(model_dir / MODEL_CHECKPOINT, weights_only=True)
    (tmp_path / "m").mkdir()
    torch.save({**saved, "format_version": FORMAT_VERSION + 1}, tmp_path / "m" / MODEL_CHECKPOINT)
    with pytest.raises(IncompatibleModelError, match=f"checkpoint format {FORMAT_VERSION + 1}"):
        Encoder.from_dir(tmp_path / "m")
