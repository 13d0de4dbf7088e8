"""The files ``isoclr embed`` writes: pooled embeddings (parquet, or npy with an ids file) and the skipped list.

A parquet file carries the model version and isoclr version in its metadata, so embeddings say
which model made them; :func:`read_embeddings` reads either kind back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.parquet

from isoclr import __version__
from isoclr.atomic import write_atomic
from isoclr.embed_inputs import SKIPPED

EMBEDDINGS_SUFFIXES = (".parquet", ".npy")
# Written into the parquet file's metadata, so embeddings say which model made them.
PARQUET_METADATA_KEY = b"isoclr"


class Pooled(Protocol):
    """What :func:`write_embeddings` writes: an :class:`isoclr.embed.Embeddings`."""

    ids: list[str]
    pooled: np.ndarray
    model_version: str | None


def default_ids_path(out: Path) -> Path:
    """``emb.npy`` -> ``emb.ids.txt``: one transcript id per line, row i of the array."""
    return Path(out).with_suffix(".ids.txt")


def default_skipped_path(out: Path) -> Path:
    """``emb.parquet`` -> ``emb.skipped.tsv``."""
    return Path(out).with_suffix(".skipped.tsv")


def write_embeddings(result: Pooled, out: Path, ids_out: Path | None = None) -> list[Path]:
    """Write the pooled (n, out_dim) embeddings; returns the files written.

    ``.parquet``: columns ``transcript_id`` and ``embedding`` (fixed-size list of
    float32), the model version and isoclr version in the file metadata.
    ``.npy``: the (n, out_dim) float32 array, and the ids one per line in
    ``ids_out`` (default :func:`default_ids_path`).
    """
    out = Path(out)
    if out.suffix not in EMBEDDINGS_SUFFIXES:
        raise ValueError(f"{out}: write embeddings to one of {EMBEDDINGS_SUFFIXES}")
    pooled = np.ascontiguousarray(result.pooled, dtype=np.float32)
    if out.suffix == ".npy":
        ids_out = Path(ids_out) if ids_out is not None else default_ids_path(out)

        def save(path: Path) -> None:
            with path.open("wb") as fh:
                np.save(fh, pooled)

        write_atomic(out, save)
        write_atomic(ids_out, lambda p: p.write_text("".join(f"{i}\n" for i in result.ids)))
        return [out, ids_out]
    vectors = pyarrow.FixedSizeListArray.from_arrays(pyarrow.array(pooled.reshape(-1)), pooled.shape[1])
    table = pyarrow.table({"transcript_id": pyarrow.array(result.ids, pyarrow.string()), "embedding": vectors})
    about = {"model_version": result.model_version, "isoclr_version": __version__, "dim": int(pooled.shape[1])}
    table = table.replace_schema_metadata({PARQUET_METADATA_KEY: json.dumps(about).encode()})
    write_atomic(out, lambda p: pyarrow.parquet.write_table(table, p))
    return [out]


def read_embeddings(path: Path) -> tuple[list[str], np.ndarray]:
    """Ids and (n, out_dim) float32 embeddings from a file :func:`write_embeddings` wrote."""
    path = Path(path)
    if path.suffix == ".npy":
        return default_ids_path(path).read_text().splitlines(), np.load(path)
    table = pyarrow.parquet.read_table(path)
    column = table["embedding"].combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return table["transcript_id"].to_pylist(), flat.reshape(len(table), -1)


def write_skipped(skipped: pd.DataFrame, path: Path) -> None:
    """The side file of what was not embedded (or embedded without its CDS): TSV, header even when empty."""
    write_atomic(Path(path), lambda p: SKIPPED.validate(skipped).to_csv(p, sep="\t", index=False))
