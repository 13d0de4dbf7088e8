"""Frozen encoders -> embeddings: load a trained encoder (a folder or a registry version), embed transcripts.

Two entry points share one batching core (:func:`_embed_batches`), so the
pipeline's probe stage, the Python API and ``isoclr embed`` give identical
embeddings for the same model, rows and batch size:

* :func:`embed_table` — the pipeline's: a transcripts table (or probe rows) and
  a bare ``nn.Module``;
* :class:`Encoder` — the public API: ``Encoder.from_registry(uri)`` or
  ``Encoder.from_dir(path)``, then ``encoder.embed(...)`` on plain sequences
  (optional CDS and exon ends), a transcripts table, or a GTF with its
  transcript or genome FASTA (:mod:`isoclr.embed_inputs`: the same rules as
  the validate stage). What cannot be embedded is returned with the reason in
  :attr:`Embeddings.skipped`, never dropped silently.

The checkpoint format and its compatibility rules live in :mod:`isoclr.checkpoint`;
the files ``isoclr embed`` writes in :mod:`isoclr.embedding_files`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from isoclr import tracks
from isoclr.checkpoint import read_encoder
from isoclr.config import ModelConfig
from isoclr.embed_inputs import (
    SKIPPED,
    TRACK_COLUMNS,
    EmbedInputError,
    empty_skipped,
    encodable,
    file_rows,
    sequence_rows,
    table_rows,
)
from isoclr.models import build_encoder
from isoclr.store import StoreError, TrackStore

DEFAULT_BATCH_SIZE = 32
# Padded nucleotides per batch: long transcripts go in smaller batches, so activations stay
# cache-sized (bf16 on 2 cores: ~344k nt/s at 24k-49k nt per batch, ~244k at 192k) and memory is
# bounded whatever the lengths (benchmarks/embed.py).
DEFAULT_BATCH_TOKENS = 49_152
# Longer sequences are reported as not embedded (memory grows linearly with the longest in a batch).
DEFAULT_MAX_LENGTH = 100_000
CHAMPION = "champion"
# Precision of the encoder's weights and activations at inference (pooling is always float32).
# bf16 runs on the bf16 matrix units of recent CPUs (AMX) and GPUs: ~2.2x the fp32 transcripts/s of the
# small model on 2 cores with AMX, within 1e-5 cosine of the fp32 embedding (benchmarks/embed.py).
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
DEFAULT_PRECISION = "fp32"


def load_encoder(model_dir: Path) -> nn.Module:
    """The encoder the train stage saved, on CPU, in eval mode (errors as :func:`isoclr.checkpoint.read_encoder`)."""
    return read_encoder(model_dir)[0]


def random_encoder(model_cfg: ModelConfig, seed: int) -> nn.Module:
    """The random-init baseline: the same architecture, untrained, seeded (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_encoder(model_cfg, in_channels=len(tracks.CHANNELS))
    return encoder.eval()


def length_batches(lengths: np.ndarray, batch_size: int, batch_tokens: int) -> list[np.ndarray]:
    """Indices of ``lengths`` sorted by length (stable) and cut into batches of at most ``batch_size``
    items and ``batch_tokens`` padded nucleotides (items x longest); an item longer than
    ``batch_tokens`` is a batch of its own."""
    if batch_size < 1 or batch_tokens < 1:
        raise ValueError(f"batch_size and batch_tokens must be positive, got {batch_size} and {batch_tokens}")
    order = np.argsort(lengths, kind="stable")
    batches, start = [], 0
    for end in range(1, len(order) + 1):
        # sorted, so the item just added is the batch's longest
        if end - start > batch_size or (end - start > 1 and (end - start) * lengths[order[end - 1]] > batch_tokens):
            batches.append(order[start : end - 1])
            start = end - 1
    if start < len(order):
        batches.append(order[start:])
    return batches


def _embed_batches(
    model: nn.Module,
    lengths: np.ndarray,
    get_tracks: Callable[[int], np.ndarray],
    batch_size: int,
    progress: bool = False,
    per_position: bool = False,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """Embed items ``0 .. n-1`` (``get_tracks(i)``: (6, lengths[i]) float32) in batches of similar length.

    Items are batched by :func:`length_batches` and put back in order, on the
    device and in the dtype of the model's weights; pooling is in float32. Returns
    pooled (n, out_dim) float32 and, with ``per_position``, one (ceil(length / 2),
    out_dim) float32 array per item.
    """
    n = len(lengths)
    batches = length_batches(np.asarray(lengths), batch_size, batch_tokens)
    out = np.empty((n, model.out_dim), dtype=np.float32)
    positions: list[np.ndarray] | None = [np.empty((0, model.out_dim), np.float32)] * n if per_position else None
    weight = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        bar = tqdm(total=n, desc="embed", disable=not progress, unit="tx")
        with torch.inference_mode(), _exact_cudnn(), bar:
            for index in batches:
                x, batch_lengths = tracks.batch([get_tracks(i) for i in index])
                h, position_lengths = model.positions(x.to(weight.device, weight.dtype), batch_lengths)
                out[index] = model.pool_positions(h, position_lengths).cpu().numpy()
                if per_position:
                    h, position_lengths = h.float().cpu().numpy(), position_lengths.cpu().numpy()
                    for k, i in enumerate(index):
                        positions[i] = np.ascontiguousarray(h[k, :, : position_lengths[k]].T)
                bar.update(len(index))
    finally:
        model.train(was_training)
    return out, positions


def _exact_cudnn():
    """On GPU: full fp32 convolutions (no TF32) and deterministic cuDNN algorithms, so embeddings repeat
    bit for bit and stay within float rounding of the CPU's; restored afterwards."""
    return torch.backends.cudnn.flags(
        enabled=torch.backends.cudnn.enabled, benchmark=False, deterministic=True, allow_tf32=False
    )


def embed_table(
    encoder: nn.Module,
    table: pd.DataFrame,
    batch_size: int,
    progress: bool = False,
    store: TrackStore | None = None,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> np.ndarray:
    """Embeddings of every row of ``table``, in the table's order.

    ``table`` needs a ``seq`` column; ``cds_start``, ``cds_end`` and ``exon_ends``
    are optional (absent means unknown: empty tracks). Rows are embedded in
    batches of similar length (:func:`length_batches`) and put back in order.

    With ``store`` (the encode stage's :class:`~isoclr.store.TrackStore`), a row
    whose ``transcript_id`` is in the store has its tracks read from there
    instead of re-encoded: the same tracks, since the store packs the validated
    rows. Only when ``table`` carries all three track columns (a sequence-only
    table means empty CDS/splice tracks, which the store would not give); a
    stored length that differs from the row's sequence is a stale store (StoreError).

    Returns:
        (n, out_dim) float32.
    """
    if "seq" not in table.columns:
        raise ValueError(f"embed_table needs a 'seq' column, got {list(table.columns)}")
    if table.columns.duplicated().any():
        raise ValueError(f"embed_table: duplicate column names {list(table.columns[table.columns.duplicated()])}")
    rows = table.reset_index(drop=True)
    lengths = rows["seq"].str.len().to_numpy()
    stored = _stored_rows(rows, lengths, store)

    def get_tracks(i: int) -> np.ndarray:
        return store.tracks(stored[i]) if i in stored else tracks.encode_row(rows.iloc[i])

    return _embed_batches(encoder, lengths, get_tracks, batch_size, progress, batch_tokens=batch_tokens)[0]


def _stored_rows(rows: pd.DataFrame, lengths: np.ndarray, store: TrackStore | None) -> dict[int, str]:
    """Row position -> transcript id, for the rows whose tracks ``store`` holds (see :func:`embed_table`)."""
    if store is None or "transcript_id" not in rows.columns or not set(TRACK_COLUMNS) <= set(rows.columns):
        return {}
    stored = {}
    for i, tid in enumerate(rows["transcript_id"].tolist()):
        if isinstance(tid, str) and tid in store:
            if store.length(tid) != lengths[i]:
                raise StoreError(
                    f"{tid}: {lengths[i]} nt in the table, {store.length(tid)} in the track store {store.path}: "
                    "the store is stale, re-run `isoclr encode`"
                )
            stored[i] = tid
    return stored


# --------------------------------------------------------------------------- the public API


@dataclass
class Embeddings:
    """What :meth:`Encoder.embed` returns.

    ``ids[i]`` is the transcript of ``pooled[i]`` (out_dim,) float32 and, when asked
    for, ``positions[i]`` (ceil(length / 2), out_dim) float32: one vector per 2 nt,
    after the stem's max-pool. ``skipped`` (:data:`SKIPPED` columns) lists what was
    not embedded, and what was embedded without its CDS, with the reason.
    """

    ids: list[str]
    pooled: np.ndarray
    positions: list[np.ndarray] | None
    skipped: pd.DataFrame
    model_version: str | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def to_frame(self) -> pd.DataFrame:
        """``transcript_id`` and ``embedding`` (a float32 array per row)."""
        return pd.DataFrame({"transcript_id": self.ids, "embedding": list(self.pooled)})


class Encoder:
    """A trained, frozen IsoCLR encoder: transcripts in, embeddings out.

    >>> encoder = Encoder.from_registry("file://registry")          # the champion, on CPU
    >>> result = encoder.embed(gtf="novel.gtf", genome="hg38.fa")   # or sequences=[...], or table=...
    >>> result.pooled.shape                                          # (n transcripts, encoder.out_dim)

    ``precision="bf16"`` trades float32 exactness for speed (see :data:`PRECISIONS`);
    the pipeline's probes and gate use fp32.
    """

    def __init__(
        self,
        model: nn.Module,
        meta: Mapping | None = None,
        device: str | torch.device = "cpu",
        version: str | None = None,
        precision: str = DEFAULT_PRECISION,
    ) -> None:
        if precision not in PRECISIONS:
            raise EmbedInputError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        try:
            self.device = torch.device(device)
            self.model = model.eval().to(self.device, PRECISIONS[precision])
        except (RuntimeError, AssertionError) as err:  # a malformed device, or one this machine lacks
            raise EmbedInputError(f"device {str(device)!r}: {err}") from err
        self.precision = precision
        self.meta = dict(meta or {})
        self.version = version

    @property
    def out_dim(self) -> int:
        return self.model.out_dim

    @classmethod
    def from_dir(
        cls, path: Path | str, device: str | torch.device = "cpu", precision: str = DEFAULT_PRECISION
    ) -> Encoder:
        """The encoder in a model folder written by the train stage (``encoder.pt``)."""
        model, meta = read_encoder(Path(path))
        return cls(model, meta, device=device, precision=precision)

    @classmethod
    def from_registry(
        cls, uri: str, version: str = CHAMPION, device: str | torch.device = "cpu", precision: str = DEFAULT_PRECISION
    ) -> Encoder:
        """A registered version (checksums verified) of the registry at ``uri`` (``file://...`` or ``gs://...``).

        ``version`` is a version id or ``"champion"`` (the current champion).
        """
        from isoclr import registry

        resolved = registry.champion(uri) if version == CHAMPION else version
        if resolved is None:
            raise registry.RegistryError(f"registry {uri} has no champion yet")
        with tempfile.TemporaryDirectory(prefix="isoclr-model-") as tmp:
            folder = registry.download(uri, resolved, Path(tmp))
            model, meta = read_encoder(folder)
        return cls(model, meta, device=device, version=resolved, precision=precision)

    def embed(
        self,
        sequences: str | Sequence[str] | Mapping[str, str] | None = None,
        *,
        cds: Sequence[tuple[int, int] | None] | None = None,
        exon_ends: Sequence[Sequence[int] | None] | None = None,
        ids: Sequence[str] | None = None,
        table: pd.DataFrame | None = None,
        gtf: Path | str | None = None,
        fasta: Path | str | None = None,
        genome: Path | str | None = None,
        per_position: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
        max_length: int = DEFAULT_MAX_LENGTH,
        progress: bool = False,
    ) -> Embeddings:
        """Embed transcripts given one of three ways:

        * ``sequences``: a string, a list (ids ``seq0``, ``seq1``, ... unless ``ids``)
          or an id -> sequence mapping, in transcript orientation; ``cds`` a
          0-based half-open (start, end) per sequence and ``exon_ends`` the 0-based
          last nucleotide of every exon, each None where unknown;
        * ``table``: columns ``seq`` and optionally ``transcript_id``, ``cds_start``,
          ``cds_end``, ``exon_ends`` (the validate stage's transcripts table fits);
        * ``gtf`` with ``fasta`` (spliced transcripts, ids = transcript_id) or
          ``genome`` (exons spliced, minus strand reverse-complemented), or
          ``fasta`` alone (GENCODE headers give the CDS; other headers: sequence only).

        Sequences longer than ``max_length``, empty, with non-nucleotide
        characters, or with CDS/exons outside the sequence are not embedded and
        listed in ``skipped`` with the reason. Batches hold at most ``batch_size``
        transcripts and ``batch_tokens`` padded nucleotides. Same inputs and
        batching: the same embeddings, bit for bit on CPU.
        """
        given = [
            name
            for name, value in (
                ("sequences", sequences),
                ("table", table),
                ("gtf/fasta/genome", gtf or fasta or genome),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise EmbedInputError(
                f"embed takes exactly one of sequences, table, or gtf/fasta/genome; got {given or 'none'}"
            )
        if sequences is not None:
            rows, skipped = sequence_rows(sequences, cds, exon_ends, ids), empty_skipped()
        elif table is not None:
            rows, skipped = table_rows(table), empty_skipped()
        else:
            rows, skipped = file_rows(gtf, fasta, genome, max_length)
        rows, bad = encodable(rows, max_length)
        skipped = SKIPPED.validate(pd.concat([skipped, bad], ignore_index=True))
        packed = rows["packed"].tolist()
        pooled, positions = _embed_batches(
            self.model,
            np.array([len(p) for p in packed], dtype=np.int64),
            lambda i: tracks.unpack(packed[i]),
            batch_size,
            progress=progress,
            per_position=per_position,
            batch_tokens=batch_tokens,
        )
        return Embeddings(rows["transcript_id"].tolist(), pooled, positions, skipped, self.version)
