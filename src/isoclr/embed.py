"""Frozen encoders -> embeddings: load a trained encoder (a folder or a registry version), embed transcripts.

Two entry points share one batching core (:func:`_embed_batches`), so the
pipeline's probe stage, the Python API and ``isoclr embed`` give identical
embeddings for the same model, rows and batch size:

* :func:`embed_table` — the pipeline's: a transcripts table (or probe rows) and
  a bare ``nn.Module``;
* :class:`Encoder` — the public API: ``Encoder.from_registry(uri)`` or
  ``Encoder.from_dir(path)``, then ``encoder.embed(...)`` on plain sequences
  (optional CDS and exon ends), a transcripts table, or a GTF with its
  transcript or genome FASTA (read by :mod:`isoclr.ingest`, the same rules as
  the validate stage). What cannot be embedded is returned with the reason in
  :attr:`Embeddings.skipped`, never dropped silently.

Checkpoint compatibility: ``encoder.pt`` records :func:`checkpoint_header`
(format, format version, isoclr version, channels, packed track layout) beside
the config and weights. This code loads a checkpoint when its format version is
:data:`FORMAT_VERSION` and its isoclr major version equals this package's;
anything else is an :class:`IncompatibleModelError` naming both versions.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import torch
from pydantic import ValidationError
from torch import nn
from tqdm import tqdm

from isoclr import __version__, tracks
from isoclr.config import ModelConfig
from isoclr.models import DilatedResNet
from isoclr.store import LAYOUT, StoreError, TrackStore

CHECKPOINT = "encoder.pt"
# The optional columns that fill the CDS and splice tracks.
TRACK_COLUMNS = ("cds_start", "cds_end", "exon_ends")

# encoder.pt: what it holds, and which checkpoints this code reads (see the module docstring).
FORMAT = "isoclr-encoder"
FORMAT_VERSION = 1
# Checkpoints written before the format fields existed have the format-1 layout.
LEGACY_FORMAT_VERSION = 1

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
# Any IUPAC nucleotide code (ambiguity codes become the all-zero N), either case.
IUPAC = re.compile(r"[^ACGTUNRYSWKMBDHVacgtunryswkmbdhv]")

NOT_EMBEDDED = "not_embedded"
EMBEDDED_WITHOUT_CDS = "embedded_without_cds"
SKIPPED = pa.DataFrameSchema(
    {
        "transcript_id": pa.Column(str),
        "reason": pa.Column(str),
        "action": pa.Column(str, pa.Check.isin([NOT_EMBEDDED, EMBEDDED_WITHOUT_CDS])),
    },
    strict=True,
    coerce=True,
    name="embed_skipped",
)


class IncompatibleModelError(ValueError):
    """The checkpoint was written by an isoclr whose encoder format this version cannot read."""


def checkpoint_header() -> dict:
    """What a saved encoder records besides config and weights, to be rebuilt (and refused) safely."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "isoclr_version": __version__,
        "channels": list(tracks.CHANNELS),
        "track_layout": LAYOUT,
    }


def _major(version: str) -> int | None:
    head = str(version).split(".", 1)[0]
    return int(head) if head.isdigit() else None


def check_compatible(meta: Mapping, where: str) -> None:
    """Raise :class:`IncompatibleModelError` unless this code can rebuild the encoder ``meta`` describes."""
    saved = meta.get("isoclr_version", "unknown")
    advice = f"load it with isoclr {saved}, or retrain with isoclr {__version__}"
    if meta.get("format", FORMAT) != FORMAT:
        raise IncompatibleModelError(f"{where}: format {meta.get('format')!r} is not an isoclr encoder ({FORMAT!r})")
    version = meta.get("format_version", LEGACY_FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise IncompatibleModelError(
            f"{where}: encoder checkpoint format {version} (written by isoclr {saved}); "
            f"isoclr {__version__} reads format {FORMAT_VERSION}: {advice}"
        )
    if _major(saved) is not None and _major(saved) != _major(__version__):
        raise IncompatibleModelError(
            f"{where}: written by isoclr {saved}, major version {_major(saved)}; this is isoclr {__version__} "
            f"(major {_major(__version__)}), and encoders are compatible within a major version only: {advice}"
        )
    if list(meta.get("channels", [])) != list(tracks.CHANNELS):
        raise IncompatibleModelError(
            f"{where}: trained on input channels {meta.get('channels')}, this code encodes {list(tracks.CHANNELS)}"
        )
    if "track_layout" in meta and dict(meta["track_layout"]) != LAYOUT:
        raise IncompatibleModelError(f"{where}: track layout {meta['track_layout']}, this code packs {LAYOUT}")


def read_encoder(model_dir: Path) -> tuple[DilatedResNet, dict]:
    """The encoder saved by :func:`isoclr.train.train` (on CPU, eval mode) and its checkpoint fields but the weights.

    Raises:
        FileNotFoundError: no ``encoder.pt`` in ``model_dir``.
        IncompatibleModelError: written by an incompatible isoclr (format or major version, channels, layout).
        ValueError: the checkpoint's config or weights do not fit this code.
    """
    path = Path(model_dir) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no encoder checkpoint (run the train stage first)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    missing = {"state_dict", "model_config", "channels"} - set(checkpoint)
    if missing:
        raise ValueError(f"{path}: not an isoclr encoder checkpoint (missing {sorted(missing)})")
    check_compatible(checkpoint, str(path))
    try:
        cfg = ModelConfig.model_validate(checkpoint["model_config"])
    except ValidationError as err:
        raise ValueError(f"{path}: model_config does not fit this version of isoclr\n{err}") from err
    encoder = DilatedResNet(cfg, in_channels=len(tracks.CHANNELS))
    try:
        encoder.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not match the architecture in its model_config\n{err}") from err
    return encoder.eval(), {k: v for k, v in checkpoint.items() if k != "state_dict"}


def load_encoder(model_dir: Path) -> DilatedResNet:
    """The encoder saved by :func:`isoclr.train.train`, on CPU, in eval mode (errors as :func:`read_encoder`)."""
    return read_encoder(model_dir)[0]


def random_encoder(model_cfg: ModelConfig, seed: int) -> DilatedResNet:
    """The random-init baseline: the same architecture, untrained, seeded (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = DilatedResNet(model_cfg, in_channels=len(tracks.CHANNELS))
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

    def __init__(self, model: DilatedResNet, meta: Mapping | None = None, device: str | torch.device = "cpu",
                 version: str | None = None, precision: str = DEFAULT_PRECISION) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.device = torch.device(device)
        self.precision = precision
        self.model = model.eval().to(self.device, PRECISIONS[precision])
        self.meta = dict(meta or {})
        self.version = version

    @property
    def out_dim(self) -> int:
        return self.model.out_dim

    @classmethod
    def from_dir(cls, path: Path | str, device: str | torch.device = "cpu", precision: str = DEFAULT_PRECISION) -> Encoder:
        """The encoder in a model folder written by the train stage (``encoder.pt``)."""
        model, meta = read_encoder(Path(path))
        return cls(model, meta, device=device, precision=precision)

    @classmethod
    def from_registry(cls, uri: str, version: str = CHAMPION, device: str | torch.device = "cpu",
                      precision: str = DEFAULT_PRECISION) -> Encoder:
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
        given = [name for name, value in (("sequences", sequences), ("table", table), ("gtf/fasta/genome",
                 gtf or fasta or genome)) if value is not None]
        if len(given) != 1:
            raise ValueError(f"embed takes exactly one of sequences, table, or gtf/fasta/genome; got {given or 'none'}")
        if sequences is not None:
            rows, skipped = _sequence_rows(sequences, cds, exon_ends, ids), _empty_skipped()
        elif table is not None:
            rows, skipped = _table_rows(table), _empty_skipped()
        else:
            rows, skipped = _file_rows(gtf, fasta, genome, max_length)
        rows, bad = _encodable(rows, max_length)
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


def _empty_skipped() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=str) for c in SKIPPED.columns})


def _sequence_rows(sequences, cds, exon_ends, ids) -> pd.DataFrame:
    if isinstance(sequences, str):
        sequences = [sequences]
    if isinstance(sequences, Mapping):
        if ids is not None:
            raise ValueError("ids come from the mapping's keys; do not pass ids with a mapping")
        ids, sequences = list(sequences.keys()), list(sequences.values())
    sequences = list(sequences)
    ids = [f"seq{i}" for i in range(len(sequences))] if ids is None else [str(i) for i in ids]
    for name, values in (("ids", ids), ("cds", cds), ("exon_ends", exon_ends)):
        if values is not None and len(values) != len(sequences):
            raise ValueError(f"{name} has {len(values)} entries for {len(sequences)} sequences")
    spans = list(cds) if cds is not None else [None] * len(sequences)
    return pd.DataFrame(
        {
            "transcript_id": ids,
            "seq": sequences,
            "cds_start": [s[0] if s is not None else None for s in spans],
            "cds_end": [s[1] if s is not None else None for s in spans],
            "exon_ends": list(exon_ends) if exon_ends is not None else [None] * len(sequences),
        }
    )


def _table_rows(table: pd.DataFrame) -> pd.DataFrame:
    if "seq" not in table.columns:
        raise ValueError(f"embed needs a 'seq' column in the table, got {list(table.columns)}")
    rows = table.reset_index(drop=True)
    ids = rows["transcript_id"].astype(str) if "transcript_id" in rows else pd.Series([f"row{i}" for i in rows.index])
    return pd.DataFrame({"transcript_id": ids, "seq": rows["seq"],
                         **{c: rows.get(c) for c in TRACK_COLUMNS}})


def _file_rows(gtf, fasta, genome, max_length: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transcripts from annotation files by the validate stage's readers; its quarantine becomes ``skipped``."""
    from isoclr.config import Annotation
    from isoclr.ingest import read_annotation

    if gtf is not None and (fasta is None) == (genome is None):
        raise ValueError("a GTF needs exactly one of fasta (spliced transcripts) or genome (to splice exons from)")
    if gtf is None and fasta is None:
        raise ValueError("a genome FASTA needs its GTF")
    files = {k: str(Path(v).resolve()) for k, v in (("gtf", gtf), ("fasta", fasta), ("genome", genome)) if v}
    if gtf is None and not _gencode_headers(Path(fasta)):
        return _plain_fasta(Path(fasta)), _empty_skipped()
    fmt = "gencode_fasta" if gtf is None else ("gtf_transcript_fasta" if fasta else "gtf_genome_fasta")
    ann = Annotation(name="embed", format=fmt, species="unknown", assembly="unknown", **files)
    table, quarantine = read_annotation(ann, Path("/"), max_length)
    skipped = pd.DataFrame(
        {
            "transcript_id": quarantine["record"],
            "reason": quarantine["rule"] + ": " + quarantine["detail"],
            "action": np.where(quarantine["action"] == "dropped", NOT_EMBEDDED, EMBEDDED_WITHOUT_CDS),
        }
    )
    return _table_rows(table), skipped


def _gencode_headers(path: Path) -> bool:
    """Whether the FASTA's first header is a GENCODE one (so it carries the CDS)."""
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    from isoclr.ingest import _open_text, _parse_gencode_header

    with _open_text(path) as fh:
        first = next(SimpleFastaParser(fh), None)
    return first is not None and _parse_gencode_header(first[0])["malformed"] is None


def _plain_fasta(path: Path) -> pd.DataFrame:
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    from isoclr.ingest import _open_text

    with _open_text(path) as fh:
        records = [(header.split()[0] if header.split() else "", seq) for header, seq in SimpleFastaParser(fh)]
    return _sequence_rows([s for _, s in records], None, None, [i for i, _ in records])


def _encodable(rows: pd.DataFrame, max_length: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows that can be embedded, each with its packed bytes; the rest with the reason (:data:`SKIPPED`)."""
    packed, keep, bad = [], [], []
    seen: set[str] = set()
    for i, row in enumerate(rows.itertuples(index=False)):
        seq = row.seq if isinstance(row.seq, str) else ""
        problem = None
        if row.transcript_id in seen:
            problem = "duplicate id: the first is embedded"
        elif not seq:
            problem = "empty sequence"
        elif len(seq) > max_length:
            problem = f"length {len(seq)} > max_length {max_length}"
        elif (found := IUPAC.findall(seq)):
            problem = f"characters outside the nucleotide alphabet: {''.join(sorted(set(found)))[:20]!r}"
        if problem is None:
            try:
                packed.append(tracks.pack(seq, row.cds_start, row.cds_end, row.exon_ends))
                keep.append(i)
            except (ValueError, TypeError) as err:
                problem = str(err)
        seen.add(row.transcript_id)
        if problem is not None:
            bad.append({"transcript_id": row.transcript_id, "reason": problem, "action": NOT_EMBEDDED})
    kept = rows.iloc[keep][["transcript_id"]].reset_index(drop=True).assign(packed=pd.Series(packed, dtype=object))
    return kept, pd.DataFrame(bad, columns=list(SKIPPED.columns))


# --------------------------------------------------------------------------- files


EMBEDDINGS_SUFFIXES = (".parquet", ".npy")
# Written into the parquet file's metadata, so embeddings say which model made them.
PARQUET_METADATA_KEY = b"isoclr"


def default_ids_path(out: Path) -> Path:
    """``emb.npy`` -> ``emb.ids.txt``: one transcript id per line, row i of the array."""
    return Path(out).with_suffix(".ids.txt")


def default_skipped_path(out: Path) -> Path:
    """``emb.parquet`` -> ``emb.skipped.tsv``."""
    return Path(out).with_suffix(".skipped.tsv")


def write_embeddings(result: Embeddings, out: Path, ids_out: Path | None = None) -> list[Path]:
    """Write the pooled embeddings; returns the files written.

    ``.parquet``: columns ``transcript_id`` and ``embedding`` (fixed-size list of
    float32), the model version and isoclr version in the file metadata.
    ``.npy``: the (n, out_dim) float32 array, and the ids one per line in
    ``ids_out`` (default :func:`default_ids_path`).
    """
    import json

    import pyarrow
    import pyarrow.parquet

    from isoclr.atomic import write_atomic

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
    import pyarrow.parquet

    path = Path(path)
    if path.suffix == ".npy":
        return default_ids_path(path).read_text().splitlines(), np.load(path)
    table = pyarrow.parquet.read_table(path)
    column = table["embedding"].combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return table["transcript_id"].to_pylist(), flat.reshape(len(table), -1)


def write_skipped(skipped: pd.DataFrame, path: Path) -> None:
    """The side file of what was not embedded (or embedded without its CDS): TSV, header even when empty."""
    from isoclr.atomic import write_atomic

    write_atomic(Path(path), lambda p: SKIPPED.validate(skipped).to_csv(p, sep="\t", index=False))
