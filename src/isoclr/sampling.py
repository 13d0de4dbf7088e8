"""Positive pairs for contrastive training, in length-bucketed batches.

Sampling: genes are drawn without replacement (whole permutations of
the train genes, so every gene comes up equally often). The first view is a
random isoform of the gene; the second view, and the pair's type
(:data:`~isoclr.config.train.PAIR_TYPES`), is

* ``ortholog``: with probability ``ortholog_share``, for a gene with ortholog
  partners in the train split (the groups table's ``orthologs`` column), a
  random isoform of a random partner (another species);
* else ``paralog``: with probability ``paralog_share``, an isoform of another
  gene of the same homology group and the same species;
* else ``isoform``: another isoform of the gene;
* else ``self``: a single-isoform gene pairs with itself (the two views still
  differ by augmentation).

Each share's coin is tossed only for a gene that has such a partner, so a table
without orthologs gives the batches it gave before orthologs existed, whatever
``ortholog_share``. With probability ``utr_cds_swap`` an ortholog pair whose two
transcripts both have a CDS gets as second view the first transcript's UTRs
around the partner's CDS (:func:`isoclr.tracks.swap_cds`; Orthrus). Without the
``species``/``orthologs`` columns the table is one species without orthologs.

Views are cropped to a
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
from isoclr.config.train import PAIR_TYPES
from isoclr.losses import IGNORE
from isoclr.store import TrackStore

# Separate random streams (numpy SeedSequence entropy words) for pair choice and view augmentation.
POOL_STREAM = 0
VIEW_STREAM = 1
# Pair types as stored in Batch.pair_types (indices into PAIR_TYPES).
SELF, ISOFORM, PARALOG, ORTHOLOG = (PAIR_TYPES.index(t) for t in ("self", "isoform", "paralog", "ortholog"))
# CDS bound of a transcript without a CDS.
NO_CDS = -1


class Batch(NamedTuple):
    """One training batch of ``n`` pairs; rows 0..n-1 of ``x`` are first views, rows n..2n-1 second views.

    x: (2n, channels, padded length) float32; lengths: (2n,) int64;
    groups: (n,) int64 homology group of each pair; n_isoforms: (n,) int64 isoforms of its gene;
    pair_types: (n,) int64 type of each pair, an index into :data:`~isoclr.config.train.PAIR_TYPES`;
    targets (reconstruction objective only, else None): (2n, padded length) int64, the base hidden at
    each masked position (:func:`masked_targets`), ``IGNORE`` elsewhere and in the padding.
    """

    x: Tensor
    lengths: Tensor
    groups: Tensor
    n_isoforms: Tensor
    pair_types: Tensor
    targets: Tensor | None = None


class Pairs(NamedTuple):
    """The pairs of one batch, each field (n,): rows of the first and second views, the genes, the pair types
    (indices into :data:`~isoclr.config.train.PAIR_TYPES`) and whether the second view is a UTR/CDS swap."""

    first: np.ndarray
    second: np.ndarray
    genes: np.ndarray
    types: np.ndarray
    swapped: np.ndarray


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
        species = self.table["species"].astype(str).to_numpy() if "species" in self.table else None
        self.gene_species = (
            np.array([species[rows[0]] for rows in self.isoforms]) if species is not None else np.zeros(len(gene_ids))
        )
        # same-group, same-species genes of each gene; ortholog partners (gene indices) of each gene
        self.paralogs = [self._paralogs(g) for g in range(len(gene_ids))]
        self.orthologs = self._ortholog_partners(gene_ids)
        self.lengths = (
            self.table["length"].to_numpy() if "length" in self.table else self.table["seq"].str.len().to_numpy()
        )
        self.cds = self._cds_bounds()
        self._packed: dict[int, np.ndarray] = {}
        self._pool: tuple[int, list[Pairs]] | None = None

    def _paralogs(self, gene: int) -> np.ndarray:
        genes = self.group_genes[self.gene_group[gene]]
        return genes[(genes != gene) & (self.gene_species[genes] == self.gene_species[gene])]

    def _ortholog_partners(self, gene_ids: pd.Index) -> list[np.ndarray]:
        """Per gene, the sorted indices of its ortholog partners present in the table (of another species)."""
        none = np.zeros(0, dtype=np.int64)
        if "orthologs" not in self.table:
            return [none] * len(gene_ids)
        code = {gene: i for i, gene in enumerate(gene_ids)}
        column = self.table["orthologs"]
        partners = []
        for g, rows in enumerate(self.isoforms):
            names = column.iat[rows[0]]
            found = sorted({code[n] for n in (names if np.ndim(names) else ()) if n in code})
            found = np.array(found, dtype=np.int64)
            partners.append(found[self.gene_species[found] != self.gene_species[g]] if len(found) else none)
        return partners

    def _cds_bounds(self) -> np.ndarray:
        """(rows, 2) int64 half-open CDS of each transcript, :data:`NO_CDS` for both bounds where it has none."""
        bounds = np.full((len(self.table), 2), NO_CDS, dtype=np.int64)
        if {"cds_start", "cds_end"} <= set(self.table.columns):
            start = pd.to_numeric(self.table["cds_start"], errors="coerce").to_numpy(dtype=float)
            end = pd.to_numeric(self.table["cds_end"], errors="coerce").to_numpy(dtype=float)
            coding = np.isfinite(start) & np.isfinite(end) & (start < end)
            bounds[coding] = np.stack([start[coding], end[coding]], axis=1).astype(np.int64)
        return bounds

    def swapped_lengths(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """(n,) lengths of the chimeras of ``first``'s UTRs around ``second``'s CDS (rows (n,), all coding)."""
        own, partner = self.cds[first], self.cds[second]
        return self.lengths[first] - (own[:, 1] - own[:, 0]) + (partner[:, 1] - partner[:, 0])

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

    def pairs(self, genes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """Rows of the first and second view, the type and whether it is a UTR/CDS swap, of one pair per gene
        in ``genes`` (the rule in the module docstring); each (n,)."""
        n, cfg = len(genes), self.cfg
        first, second, types = (np.empty(n, dtype=np.int64) for _ in range(3))
        swapped = np.zeros(n, dtype=bool)
        for i, gene in enumerate(genes):
            isoforms = self.isoforms[gene]
            if len(isoforms) > 1:
                (a, b), kind = rng.choice(isoforms, 2, replace=False), ISOFORM
            else:
                a = b = isoforms[0]
                kind = SELF
            partners, paralogs = self.orthologs[gene], self.paralogs[gene]
            # A coin only where there is a partner: without one the stream is the one before orthologs.
            if len(partners) and rng.random() < cfg.ortholog_share:
                b, kind = rng.choice(self.isoforms[rng.choice(partners)]), ORTHOLOG
                eligible = cfg.utr_cds_swap > 0 and self.cds[a, 0] != NO_CDS and self.cds[b, 0] != NO_CDS
                swapped[i] = eligible and rng.random() < cfg.utr_cds_swap
            elif len(paralogs) and rng.random() < cfg.paralog_share:
                b, kind = rng.choice(self.isoforms[rng.choice(paralogs)]), PARALOG
            first[i], second[i], types[i] = a, b, kind
        return first, second, types, swapped

    def pool(self, index: int, rank: int | None = None) -> list[Pairs]:
        """``bucket_batches`` batches drawn together and bucketed by length (``rank``: this sampler's)."""
        rank = self.rank if rank is None else rank
        rng = np.random.default_rng([self.seed, POOL_STREAM, rank, index])
        size = self.cfg.bucket_batches * self.cfg.batch_genes
        rounds = -(-size // self.n_genes)
        genes = np.concatenate([rng.permutation(self.n_genes) for _ in range(rounds)])[:size]
        first, second, types, swapped = self.pairs(genes, rng)
        seconds = self.lengths[second]
        if swapped.any():
            seconds = np.where(swapped, self.swapped_lengths(first, np.where(swapped, second, first)), seconds)
        longer = np.maximum(self.lengths[first], seconds).clip(max=self.cfg.max_length)
        return [
            Pairs(first[c], second[c], genes[c], types[c], swapped[c])
            for c in length_buckets(longer, self.cfg.batch_genes, rng)
        ]

    def batch_pairs(self, step: int) -> Pairs:
        """The pairs of the batch at ``step``."""
        index, offset = divmod(step, self.cfg.bucket_batches)
        if self._pool is None or self._pool[0] != index:
            self._pool = (index, self.pool(index))
        return self._pool[1][offset]

    def batch_rows(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of the first and second views, and the genes, of the batch at ``step``."""
        return self.batch_pairs(step)[:3]

    def pair_type_counts(self, steps: int, world_size: int = 1) -> tuple[dict[str, int], int]:
        """Pairs of each type over steps ``0 .. steps - 1`` of every rank, and how many were UTR/CDS swaps:
        re-drawn from the pair stream only (no views built)."""
        counts, swaps = np.zeros(len(PAIR_TYPES), dtype=np.int64), 0
        per_pool = self.cfg.bucket_batches
        for rank in range(world_size):
            for index in range(-(-steps // per_pool)):
                for batch in self.pool(index, rank)[: steps - index * per_pool]:
                    counts += np.bincount(batch.types, minlength=len(PAIR_TYPES))
                    swaps += int(batch.swapped.sum())
        return dict(zip(PAIR_TYPES, counts.tolist(), strict=True)), swaps

    def second_packed(self, first: int, second: int, swapped: bool) -> np.ndarray:
        """Packed second view of a pair: the partner's transcript, or the chimera of a UTR/CDS swap."""
        if not swapped:
            return self.packed(second)
        return tracks.swap_cds(self.packed(first), tuple(self.cds[first]), self.packed(second), tuple(self.cds[second]))

    def view(self, packed: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One augmented view of a (length,) packed transcript, (channels, length) before and after base masking:
        random crop to ``max_length``, then base masking (the hidden bases are the reconstruction targets)."""
        track = tracks.unpack_window(packed, self.cfg.max_length, rng)
        return track, mask_bases(track, self.cfg.mask_prob, rng)

    def sample(self, step: int) -> Batch:
        """The batch of ``step`` (see :class:`Batch`), padded to its longest view rounded up to ``pad_multiple``."""
        first, second, genes, types, swapped = self.batch_pairs(step)
        rng = np.random.default_rng([self.seed, VIEW_STREAM, self.rank, step])
        packed = [self.packed(r) for r in first]
        packed += [self.second_packed(a, b, s) for a, b, s in zip(first, second, swapped, strict=True)]
        views = [self.view(p, rng) for p in packed]
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
            torch.as_tensor(types, dtype=torch.int64),
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
