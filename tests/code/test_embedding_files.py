"""The embedding files: parquet with the model version in its metadata, npy with an ids file, the skipped TSV."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet
import pytest

from isoclr import __version__
from isoclr.embed_inputs import NOT_EMBEDDED, empty_skipped
from isoclr.embedding_files import (
    PARQUET_METADATA_KEY,
    default_ids_path,
    default_skipped_path,
    read_embeddings,
    write_embeddings,
    write_skipped,
)


@pytest.fixture
def result():
    rng = np.random.default_rng(0)
    return SimpleNamespace(ids=["a", "b", "c"], pooled=rng.normal(size=(3, 4)).astype(np.float32), model_version="v7")


def test_parquet_round_trips_and_names_the_model(result, tmp_path):
    assert write_embeddings(result, tmp_path / "e.parquet") == [tmp_path / "e.parquet"]
    ids, pooled = read_embeddings(tmp_path / "e.parquet")
    assert ids == result.ids and pooled.dtype == np.float32
    np.testing.assert_array_equal(pooled, result.pooled)
    about = json.loads(pyarrow.parquet.read_schema(tmp_path / "e.parquet").metadata[PARQUET_METADATA_KEY])
    assert about == {"model_version": "v7", "isoclr_version": __version__, "dim": 4}


def test_npy_writes_the_ids_beside_it(result, tmp_path):
    out = tmp_path / "e.npy"
    assert write_embeddings(result, out) == [out, default_ids_path(out)]
    assert default_ids_path(out).name == "e.ids.txt" and default_ids_path(out).read_text() == "a\nb\nc\n"
    ids, pooled = read_embeddings(out)
    assert ids == result.ids
    np.testing.assert_array_equal(pooled, result.pooled)
    with pytest.raises(ValueError, match="one of"):
        write_embeddings(result, tmp_path / "e.csv")


def test_the_skipped_file_has_its_header_even_when_empty(tmp_path):
    assert default_skipped_path(tmp_path / "e.parquet").name == "e.skipped.tsv"
    write_skipped(empty_skipped(), tmp_path / "none.tsv")
    assert (tmp_path / "none.tsv").read_text() == "transcript_id\treason\taction\n"
    write_skipped(
        pd.DataFrame({"transcript_id": ["x"], "reason": ["empty sequence"], "action": [NOT_EMBEDDED]}),
        tmp_path / "one.tsv",
    )
    assert pd.read_csv(tmp_path / "one.tsv", sep="\t")["transcript_id"].tolist() == ["x"]
