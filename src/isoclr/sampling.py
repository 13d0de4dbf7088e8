"""Positive pairs for contrastive training, in length-bucketed batches.

Sampling: genes are drawn without replacement (whole permutations of
the train genes, so every gene comes up equally often); each gene gives two
distinct isoforms, a single-isoform gene pairs with itself (the two views still
differ by augmentation), and with probability ``paralog_share`` the second view
is an isoform of another gene of the same homology group. Views are cropped to a
random window of at most ``max_length`` nt and a share ``mask_prob`` of
positions is masked to 0.25 in the base channels. For the reconstruction
objective a batch also carries the hidden bases (:func:`masked_targets`); the
views themselves are the same.

Length bucketing: ``bucket_batches`` batches of pairs are drawn at once, sorted
by the length of their longer (cropped) view, cut into batches and shuffled, so
each batch holds similar lengths and pads little (:func:`length_buckets`). For a
fixed batch size, consecutive runs of the sorted pool pad least; what is left
shrinks with the pool: with 16 sequences a batch on the sample's lengths, ~25%
of positions are padding with 8 batches a pool, ~8% with 32, ~5% with 64
(benchmarks/train_throughput.py).

Every batch is a pure function of ``(seed, rank, step)``: resuming at a step, or
building batches in DataLoader workers, gives exactly the batches an
uninterrupted single-worker run gives. The sampler state in a checkpoint is
therefore only the next step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import Dataset

from isoclr import tracks
from isoclr.config import TrainConfig
from isoclr.losses import IGNORE
from isoclr.store import TrackStore

# Separate random streams (numpy SeedSequence entropy words) for pair choice and view augmentation.
POOL_STREAM = 0
VIEW_STREAM = 1


class Batch(NamedTuple):
    """One training batch of ``n`` pairs; rows 0..n-1 of ``x`` are first views, rows n..2n-1 second views.

    x: (2n, channels, padded length) float32; lengths: (2n,) int64;
    groups: (n,) int64 homology group of each pair; n_isoforms: (n,) int64 isoforms of its gene;
    targets (reconstruction objective only, else None): (2n, padded length) int64, the base hidden at
    each masked position (:func:`masked_targets`), ``IGNORE`` elsewhere and in the padding.
    """

    x: Tensor
    lengths: Tensor
    groups: Tensor
    n_isoforms: Tensor
    targets: Tensor | None = None


def mask_bases(track: np.ndarray, mask_prob: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``track`` (channels, length) with a share ``mask_prob`` of positions set to
    the uniform base (1 / number of bases) in the base channels; CDS and splice tracks kept."""
    bases = [tracks.CHANNELS.index(base) for base in tracks.BASES]
    out = track.copy()
    masked = rng.random(track.shape[1]) < mask_prob
    out[np.ix_(bases, np.flatnonzero(masked))] = 1.0 / len(bases)
    return out


def masked_targets(track: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """(length,) int64: the base (0..3) that :func:`mask_bases` hid at each masked position of a real base,
    ``IGNORE`` at unmasked positions and at N (no base to predict). ``track`` is the view before masking,
    ``masked`` after; both (channels, length)."""
    bases = [tracks.CHANNELS.index(base) for base in tracks.BASES]
    before, after = track[bases], masked[bases]
    hidden = (before != after).any(axis=0) & (before.sum(axis=0) == 1)
    return np.where(hidden, before.argmax(axis=0), IGNORE).astype(np.int64)


def length_buckets(longest: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Indices into ``longest`` (n,) cut into batches of ``batch_size`` consecutive lengths (the last may be
    shorter), in a random order drawn from ``rng``: sorting the whole pool, then cutting it, pads the least
    for batches of a fixed size."""
    order = np.argsort(longest, kind="stable")
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [chunks[k] for k in rng.permutation(len(chunks))]


class PairSampler:
    """Draws augmented, length-bucketed batches of positive pairs from the train-split table.

    Transcripts are read packed (the track store, or packed once from the table) and each view is
    cropped before it is expanded to tracks. ``rank`` selects this
    process's own stream under DDP.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        cfg: TrainConfig,
        seed: int | None = None,
        rank: int = 0,
        store: TrackStore | None = None,
    ) -> None:
        self.table = table.reset_index(drop=True)
        self.store = store
        self._ids = self.table["transcript_id"].tolist() if store is not None else []
        self.cfg = cfg
        self.seed = cfg.seed if seed is None else seed
        self.rank = rank
        gene_codes, gene_ids = pd.factorize(self.table["gene_id"], sort=True)
        group_codes, _ = pd.factorize(self.table["homology_group"], sort=True)
        # isoforms (row indices) of each gene, the group of each gene, the genes of each group
        self.isoforms = [np.flatnonzero(gene_codes == g) for g in range(len(gene_ids))]
        self.gene_group = np.array([group_codes[rows[0]] for rows in self.isoforms])
        self.group_genes = [np.flatnonzero(self.gene_group == k) for k in range(group_codes.max() + 1)]
        self.n_isoforms = np.array([len(rows) for rows in self.isoforms])
        self.lengths = (
            self.table["length"].to_numpy() if "length" in self.table else self.table["seq"].str.len().to_numpy()
        )
        self._packed: dict[int, np.ndarray] = {}
        self._pool: tuple[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] | None = None

    @property
    def n_genes(self) -> int:
        return len(self.isoforms)

    def packed(self, row: int) -> np.ndarray:
        """(length,) uint8 packed transcript (:func:`isoclr.tracks.pack`): a view into the memory-mapped
        store when there is one, else packed from the table once and cached (1 byte per nucleotide;
        the float tracks would take 24)."""
        if self.store is not None:
            return self.store.packed(self._ids[row])
        if row not in self._packed:
            r = self.table.iloc[row]
            self._packed[row] = tracks.pack(r["seq"], r.get("cds_start"), r.get("cds_end"), r.get("exon_ends"))
        return self._packed[row]

    def track(self, row: int) -> np.ndarray:
        """(channels, length) tracks of one transcript, equal to :func:`isoclr.tracks.encode_row` of its row."""
        return tracks.unpack(self.packed(row))

    def pairs(self, genes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of the first and second view of one pair per gene in ``genes``."""
        first, second = [], []
        for gene in genes:
            isoforms = self.isoforms[gene]
            a, b = rng.choice(isoforms, 2, replace=False) if len(isoforms) > 1 else (isoforms[0],) * 2
            paralogs = self.group_genes[self.gene_group[gene]]
            paralogs = paralogs[paralogs != gene]
            if len(paralogs) and rng.random() < self.cfg.paralog_share:
                b = rng.choice(self.isoforms[rng.choice(paralogs)])
            first.append(a)
            second.append(b)
        return np.array(first, dtype=np.int64), np.array(second, dtype=np.int64)

    def pool(self, index: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``bucket_batches`` batches (first rows, second rows, genes) drawn together and bucketed by length."""
        rng = np.random.default_rng([self.seed, POOL_STREAM, self.rank, index])
        size = self.cfg.bucket_batches * self.cfg.batch_genes
        rounds = -(-size // self.n_genes)
        genes = np.concatenate([rng.permutation(self.n_genes) for _ in range(rounds)])[:size]
        first, second = self.pairs(genes, rng)
        longer = np.maximum(self.lengths[first], self.lengths[second]).clip(max=self.cfg.max_length)
        return [(first[c], second[c], genes[c]) for c in length_buckets(longer, self.cfg.batch_genes, rng)]

    def batch_rows(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of the first and second views, and the genes, of the batch at ``step``."""
        index, offset = divmod(step, self.cfg.bucket_batches)
        if self._pool is None or self._pool[0] != index:
            self._pool = (index, self.pool(index))
        return self._pool[1][offset]

    def view(self, row: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One augmented view, (channels, length) before and after base masking: random crop to
        ``max_length``, then base masking (the hidden bases are the reconstruction targets)."""
        track = tracks.unpack_window(self.packed(row), self.cfg.max_length, rng)
        return track, mask_bases(track, self.cfg.mask_prob, rng)

    def sample(self, step: int) -> Batch:
        """The batch of ``step`` (see :class:`Batch`), padded to its longest view rounded up to ``pad_multiple``."""
        first, second, genes = self.batch_rows(step)
        rng = np.random.default_rng([self.seed, VIEW_STREAM, self.rank, step])
        views = [self.view(r, rng) for r in np.concatenate([first, second])]
        x, lengths = tracks.batch([masked for _, masked in views])
        extra = -x.shape[2] % self.cfg.pad_multiple
        if extra:
            x = F.pad(x, (0, extra))
        targets = None
        if self.cfg.objective == "reconstruction":
            targets = torch.full((x.shape[0], x.shape[2]), IGNORE, dtype=torch.int64)
            for i, (track, masked) in enumerate(views):
                targets[i, : track.shape[1]] = torch.from_numpy(masked_targets(track, masked))
        return Batch(
            x,
            lengths,
            torch.as_tensor(self.gene_group[genes], dtype=torch.int64),
            torch.as_tensor(self.n_isoforms[genes], dtype=torch.int64),
            targets,
        )

    def state_dict(self, next_step: int) -> dict:
        """What a checkpoint needs to continue the stream: batches depend only on seed, rank and step."""
        return {"seed": self.seed, "rank": self.rank, "next_step": next_step}


class StepBatches(Dataset):
    """Map-style dataset over steps (``dataset[step]`` is the batch of that step) for a DataLoader
    with ``batch_size=None``: workers build batches ahead of the model, in any order, identically."""

    def __init__(self, sampler: PairSampler, steps: int) -> None:
        self.sampler = sampler
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> Batch:
        return self.sampler.sample(step)
