"""Ortholog positives, species-bound paralogs, recorded pair types and the UTR/CDS swap (isoclr.sampling)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from isoclr import tracks
from isoclr.config.train import PAIR_TYPES
from isoclr.sampling import PairSampler
from isoclr.schemas import GROUPS
from isoclr.train import read_training_set
from tests.helpers import synthetic_annotation, tiny_config, write_tables

HUMAN, MOUSE = "homo_sapiens", "mus_musculus"
# Human gene k (G0k) and mouse gene k (M0k) are direct orthologs for these k; the mouse genes sit in the human
# genes' homology groups (orthologs join groups), so group hg0 holds G00, G01, M00 and M01.
ORTHOLOG_GENES = (0, 1, 2, 3, 5, 6)
# G07's only partner is M09, which is in the test split: no partner in the training table.
OUT_OF_SPLIT = ("G07", "M09")
# Mouse genes whose transcripts lose their CDS (their human orthologs keep theirs).
NON_CODING_MOUSE = ("M01", "M05")
T = {t: i for i, t in enumerate(PAIR_TYPES)}


def two_species(with_orthologs: bool = True) -> pd.DataFrame:
    """The training table of two :func:`synthetic_annotation` species, as read_training_set gives it."""
    human_t, human_g = synthetic_annotation(0)
    mouse_t, mouse_g = synthetic_annotation(1)
    for frame in (mouse_t, mouse_g):
        frame["transcript_id"] = "m" + frame["transcript_id"]
        frame["gene_id"] = frame["gene_id"].str.replace("G", "M")
    mouse_t["species"] = MOUSE
    # one side coding only: G01-M01 and G05-M05 cannot swap UTRs and CDS; G02-M02 can
    one_sided = mouse_t["gene_id"].isin(NON_CODING_MOUSE)
    mouse_t.loc[one_sided, ["cds_start", "cds_end"]] = None
    transcripts, groups = pd.concat([human_t, mouse_t]), pd.concat([human_g, mouse_g])
    partners = {f"G{k:02d}": [f"M{k:02d}"] for k in ORTHOLOG_GENES} | {
        f"M{k:02d}": [f"G{k:02d}"] for k in ORTHOLOG_GENES
    }
    partners[OUT_OF_SPLIT[0]] = [OUT_OF_SPLIT[1]]
    if with_orthologs:
        groups["orthologs"] = [np.array(partners.get(g, []), dtype=object) for g in groups["gene_id"]]
    extra = ["orthologs"] if with_orthologs else []
    table = transcripts.drop(columns=["gene_id", "gene_name"]).merge(
        groups[groups["split"] == "train"][["transcript_id", "gene_id", "homology_group", *extra]], on="transcript_id"
    )
    return table.sort_values("transcript_id", ignore_index=True)


def draw(sampler: PairSampler, repeats: int, seed: int = 0):
    """Every gene ``repeats`` times through :meth:`PairSampler.pairs`: (genes, first, second, types, swapped)."""
    genes = np.repeat(np.arange(sampler.n_genes), repeats)
    return (genes, *sampler.pairs(genes, np.random.default_rng(seed)))


def gene_names(sampler: PairSampler) -> np.ndarray:
    return np.array(sorted(sampler.table["gene_id"].unique()))


def same_batch(a, b) -> bool:
    return all(
        (x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("share", [0.5, 0.2])
def test_ortholog_share_among_genes_with_orthologs(share):
    sampler = PairSampler(two_species(), tiny_config(ortholog_share=share).train)
    repeats = 2000
    genes, _, _, types, _ = draw(sampler, repeats)
    names = gene_names(sampler)
    with_partner = {f"{s}{k:02d}" for k in ORTHOLOG_GENES for s in "GM"}
    for g, name in enumerate(names):
        measured = (types[genes == g] == T["ortholog"]).mean()
        if name in with_partner:
            assert abs(measured - share) < 4 * np.sqrt(share * (1 - share) / repeats), name
        else:
            assert measured == 0, name  # no partner in the table (G07's is in the test split)
    assert sampler.orthologs[list(names).index(OUT_OF_SPLIT[0])].size == 0


def test_fallbacks_without_an_ortholog():
    table = two_species()
    names = np.array(sorted(table["gene_id"].unique()))
    never = PairSampler(table, tiny_config(ortholog_share=0.0, paralog_share=0.0).train)
    genes, first, second, types, _ = draw(never, 200)
    assert (types != T["ortholog"]).all()  # partners, but share 0
    single = np.isin(genes, [list(names).index(n) for n in ("G04", "M04")])  # one isoform, no paralog or ortholog
    assert (types[single] == T["self"]).all() and (first[single] == second[single]).all()
    assert (types[~single] == T["isoform"]).all() and (first[~single] != second[~single]).all()
    # G07: several isoforms, alone in its group, its ortholog out of the split: another isoform, whatever the shares
    always = PairSampler(table, tiny_config(ortholog_share=1.0, paralog_share=1.0).train)
    genes, first, second, types, _ = draw(always, 200)
    g07 = genes == list(names).index("G07")
    assert (types[g07] == T["isoform"]).all() and (first[g07] != second[g07]).all()
    assert (types[genes == list(names).index("G04")] == T["self"]).all()


def test_paralogs_never_come_from_another_species():
    table = two_species()
    species, gene, group = (table[c].to_numpy() for c in ("species", "gene_id", "homology_group"))
    sampler = PairSampler(table, tiny_config(ortholog_share=0.0, paralog_share=1.0).train)
    _, first, second, types, _ = draw(sampler, 300)
    paralog = types == T["paralog"]
    assert paralog.any()
    assert (species[first][paralog] == species[second][paralog]).all()
    assert (gene[first][paralog] != gene[second][paralog]).all()
    assert (group[first][paralog] == group[second][paralog]).all()
    # the family hg0 holds G00, G01, M00, M01: each gene's paralog is its own species' other gene
    assert set(zip(gene[first][paralog], gene[second][paralog], strict=True)) >= {("G00", "G01"), ("M00", "M01")}
    assert (species[first] == species[second]).all()  # ortholog share 0: no pair crosses species


def test_recorded_pair_types_match_the_rows():
    table = two_species()
    species, gene, group = (table[c].to_numpy() for c in ("species", "gene_id", "homology_group"))
    partners = {g: set(p) for g, p in zip(table["gene_id"], table["orthologs"], strict=True)}
    cfg = tiny_config(ortholog_share=0.5, paralog_share=0.5, batch_genes=6, bucket_batches=3).train
    sampler = PairSampler(table, cfg)
    seen = set()
    for step in range(12):
        first, second, _, types, _ = sampler.batch_pairs(step)
        assert torch.equal(sampler.sample(step).pair_types, torch.as_tensor(types))
        for a, b, t in zip(first, second, types, strict=True):
            kind = PAIR_TYPES[t]
            seen.add(kind)
            if kind == "ortholog":
                assert species[a] != species[b] and gene[b] in partners[gene[a]]
            elif kind == "paralog":
                assert species[a] == species[b] and gene[a] != gene[b] and group[a] == group[b]
            elif kind == "isoform":
                assert gene[a] == gene[b] and a != b
            else:
                assert a == b
    assert seen == set(PAIR_TYPES)


def pairs_before_orthologs(sampler: PairSampler, genes: np.ndarray, rng: np.random.Generator):
    """The pair rule as it was before orthologs (isoforms, then a paralog coin), random draws in its order."""
    first, second = [], []
    for gene in genes:
        isoforms = sampler.isoforms[gene]
        a, b = rng.choice(isoforms, 2, replace=False) if len(isoforms) > 1 else (isoforms[0],) * 2
        paralogs = sampler.group_genes[sampler.gene_group[gene]]
        paralogs = paralogs[paralogs != gene]
        if len(paralogs) and rng.random() < sampler.cfg.paralog_share:
            b = rng.choice(sampler.isoforms[rng.choice(paralogs)])
        first.append(a)
        second.append(b)
    return np.array(first), np.array(second)


def test_no_orthologs_gives_the_batches_of_before(tmp_path):
    """Without partners no coin is tossed: the share changes nothing, and the column's absence equals no partner."""
    single = read_training_set(*write_tables(tmp_path))
    for table in (single, two_species(with_orthologs=False)):
        cfg = dict(batch_genes=4, bucket_batches=2, max_length=200)
        half = PairSampler(table, tiny_config(ortholog_share=0.5, **cfg).train)
        off = PairSampler(table, tiny_config(ortholog_share=0.0, **cfg).train)
        for step in range(6):
            assert same_batch(half.sample(step), off.sample(step))
            assert (half.sample(step).pair_types != T["ortholog"]).all()
    # one species: the very pairs of the rule before orthologs, draw for draw
    sampler = PairSampler(single, tiny_config(ortholog_share=0.5).train)
    genes = np.tile(np.arange(sampler.n_genes), 50)
    first, second, _, _ = sampler.pairs(genes, np.random.default_rng(3))
    before = pairs_before_orthologs(sampler, genes, np.random.default_rng(3))
    assert np.array_equal(first, before[0]) and np.array_equal(second, before[1])
    empty = two_species()
    empty["orthologs"] = [np.array([], dtype=object)] * len(empty)
    cfg = tiny_config(ortholog_share=0.5, batch_genes=4).train
    for step in range(4):
        assert same_batch(PairSampler(empty, cfg).sample(step), PairSampler(two_species(False), cfg).sample(step))


def test_batches_depend_only_on_seed_rank_and_step_with_orthologs():
    table = two_species()
    cfg = tiny_config(batch_genes=4, bucket_batches=3, utr_cds_swap=0.5, mask_prob=0.2).train
    forward = [PairSampler(table, cfg).sample(s) for s in range(7)]
    sampler = PairSampler(table, cfg)
    for s in reversed(range(7)):
        assert same_batch(sampler.sample(s), forward[s])
    other = PairSampler(table, cfg, rank=1)
    assert not all(torch.equal(other.sample(s).pair_types, forward[s].pair_types) for s in range(7))


def test_pair_type_counts_are_those_of_the_batches():
    table = two_species()
    cfg = tiny_config(batch_genes=4, bucket_batches=3, utr_cds_swap=0.5).train
    steps = 7  # two whole pools and part of a third
    counts, swaps = PairSampler(table, cfg).pair_type_counts(steps, world_size=2)
    types, swapped = [], 0
    for rank in (0, 1):
        sampler = PairSampler(table, cfg, rank=rank)
        for s in range(steps):
            pairs = sampler.batch_pairs(s)
            types.append(sampler.sample(s).pair_types.numpy())
            swapped += int(pairs.swapped.sum())
    drawn = np.concatenate(types)
    assert counts == {t: int((drawn == i).sum()) for i, t in enumerate(PAIR_TYPES)}
    assert sum(counts.values()) == 2 * steps * cfg.batch_genes and counts["ortholog"] > 0
    assert swaps == swapped


# --------------------------------------------------------------------------- UTR/CDS swap


def test_swap_cds_builds_the_chimera_on_packed_bytes():
    utrs = tracks.pack("AAAAACCCGGGTTTCCCCCC", 5, 14, [7, 19])  # 5'UTR AAAAA, CDS CCCGGGTTT, 3'UTR CCCCCC
    partner = tracks.pack("GGATGATGATGATGA", 2, 14, [4, 14])  # 5'UTR GG, CDS ATGATGATGATG, 3'UTR A
    chimera = tracks.swap_cds(utrs, (5, 14), partner, (2, 14))
    track = tracks.unpack(chimera)
    bases = "".join("ACGTN"[i] for i in np.where(track[:4].any(0), track[:4].argmax(0), 4))
    assert bases == "AAAAA" + "ATGATGATGATG" + "CCCCCC"
    assert np.flatnonzero(track[tracks.CDS_CHANNEL]).tolist() == [5, 8, 11, 14]  # partner's codons, shifted by 3
    # splice: the partner's exon end at 4 moves to 5 + 4 - 2 = 7; the first's end at 19 is the chimera's end
    assert np.flatnonzero(track[tracks.SPLICE_CHANNEL]).tolist() == [7, 22]
    # a CDS that runs to its transcript's end loses that end mark when a 3'UTR follows
    to_end = tracks.pack("GGATGATG", 2, 8, [7])
    track = tracks.unpack(tracks.swap_cds(utrs, (5, 14), to_end, (2, 8)))
    assert np.flatnonzero(track[tracks.SPLICE_CHANNEL]).tolist() == [16] and len(track[0]) == 17
    with pytest.raises(ValueError, match="not inside"):
        tracks.swap_cds(utrs, (5, 30), partner, (2, 14))


def test_utr_cds_swap_rebuilds_eligible_ortholog_pairs_only():
    table = two_species()
    coding = table["cds_start"].notna().to_numpy()
    seq = table["seq"].to_numpy()
    cds = table[["cds_start", "cds_end"]]
    base = dict(batch_genes=6, bucket_batches=2, max_length=10_000, mask_prob=0.0, ortholog_share=1.0)
    never = PairSampler(table, tiny_config(utr_cds_swap=0.0, **base).train)
    always = PairSampler(table, tiny_config(utr_cds_swap=1.0, **base).train)
    swapped_pairs = ineligible = 0
    for step in range(8):
        off, on = never.batch_pairs(step), always.batch_pairs(step)
        assert not off.swapped.any()
        ortholog = on.types == T["ortholog"]
        eligible = ortholog & coding[on.first] & coding[on.second]
        assert (on.swapped == eligible).all()
        swapped_pairs += int(eligible.sum())
        ineligible += int((ortholog & ~eligible & coding[on.first]).sum())
        batch, n = always.sample(step), len(on.first)
        for i in range(n):
            a, b = on.first[i], on.second[i]
            view = batch.x[n + i, :, : int(batch.lengths[n + i])].numpy()
            if on.swapped[i]:
                (sa, ea), (sb, eb) = (int(x) for x in cds.iloc[a]), (int(x) for x in cds.iloc[b])
                expected = seq[a][:sa] + seq[b][sb:eb] + seq[a][ea:]
                cds_marks = [sa + k for k in range(0, eb - sb, 3)]
            else:
                expected = seq[b]
                cds_marks = np.flatnonzero(tracks.encode_row(table.iloc[b])[tracks.CDS_CHANNEL]).tolist()
            assert "".join("ACGT"[k] for k in view[:4].argmax(0)) == expected
            assert np.flatnonzero(view[tracks.CDS_CHANNEL]).tolist() == cds_marks
        # swap 0: every second view is the partner's own transcript
        plain = never.sample(step)
        for i in range(len(off.first)):
            row = plain.x[len(off.first) + i, :, : int(plain.lengths[len(off.first) + i])].numpy()
            np.testing.assert_array_equal(row, tracks.encode_row(table.iloc[off.second[i]]))
    assert swapped_pairs > 0 and ineligible > 0  # both kinds met


@pytest.mark.skipif("orthologs" not in GROUPS.columns, reason="the pairs stage's groups table gains orthologs")
def test_read_training_set_carries_the_ortholog_column(tmp_path):
    transcripts, groups = synthetic_annotation(0)
    groups["species"] = HUMAN
    groups["orthologs"] = [np.array([], dtype=object)] * len(groups)
    paths = tmp_path / "t.parquet", tmp_path / "g.parquet"
    transcripts.to_parquet(paths[0])
    groups.to_parquet(paths[1])
    table = read_training_set(*paths)
    assert "orthologs" in table and (table["species"] == HUMAN).all()
