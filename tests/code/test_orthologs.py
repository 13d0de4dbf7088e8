"""Ortholog pairs and species in the pairs stage: reading the table, naming genes, joining families across
species, and the split leakage a two-species world could cause."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet
import pytest
import yaml

from isoclr import stage
from isoclr.artifacts import Paths
from isoclr.config import SplitsConfig
from isoclr.config.data import OrthologTable
from isoclr.gene_pairs import ORTHOLOG_DROP_REASONS, OrthologError, read_ortholog_rows
from isoclr.pairs import DROP_REASONS, build_groups
from isoclr.schemas import GROUPS
from tests.helpers import synthetic_annotation, tiny_config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "data" / "orthologs" / "human_mouse_one2one.tsv"
HUMAN, MOUSE = "homo_sapiens", "mus_musculus"
NO_PARALOGS = pd.DataFrame({"gene_A": [], "gene_B": []}, dtype=str)


def _world(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["transcript_id", "gene_id", "gene_name", "species"]).assign(annotation="set")


def _orthologs(a, b) -> pd.DataFrame:
    return pd.DataFrame({"gene_a": a, "gene_b": b}, dtype=str)


def _partition(table: pd.DataFrame) -> set[frozenset[str]]:
    return {frozenset(genes) for genes in table.groupby("homology_group")["gene_id"].agg(set)}


# --------------------------------------------------------------------------- the table


def _example_spec() -> OrthologTable:
    """The data.orthologs example params.yaml gives in a comment."""
    line = next(x for x in (ROOT / "params.yaml").read_text().splitlines() if re.match(r"\s*#\s+orthologs:", x))
    return OrthologTable.model_validate(yaml.safe_load(line.strip().lstrip("#"))["orthologs"])


@pytest.mark.skipif(not SHIPPED.is_file(), reason="data/ not pulled (dvc pull)")
def test_the_shipped_human_mouse_table_reads_whole_with_the_params_example():
    spec = _example_spec()
    assert ROOT / "data" / spec.table == SHIPPED
    pairs, blank = read_ortholog_rows(SHIPPED, spec)
    assert len(pairs) == SHIPPED.read_bytes().count(b"\n") and blank == 0
    assert pairs["gene_a"].str.fullmatch(r"ENSG\d{11}").all()
    assert pairs["gene_b"].str.fullmatch(r"ENSMUSG\d{11}").all()
    assert pairs["gene_a"].is_unique and pairs["gene_b"].is_unique  # one-to-one


def test_a_headed_gzip_table_by_column_names_drops_blank_rows(tmp_path):
    path = tmp_path / "pairs.txt"  # gzip told by its bytes, not the name
    path.write_bytes(gzip.compress(b"type,mouse,human\no,ENSMUSG00000000001, ENSG00000000001.2 \no,,X\no,Y,NA\n"))
    spec = OrthologTable(table="pairs.txt", sep=",", columns={"gene_a": "human", "gene_b": 1})
    pairs, blank = read_ortholog_rows(path, spec)
    assert pairs.values.tolist() == [["ENSG00000000001.2", "ENSMUSG00000000001"], ["NA", "Y"]] and blank == 1


@pytest.mark.parametrize(
    ("text", "columns", "header"),
    [
        (b"a\tb\nX\tY\n", {"gene_a": "a", "gene_b": "missing"}, True),  # no such column
        (b"X\tY\n", {"gene_a": 0, "gene_b": 2}, False),  # no such position
        (b"X\tY\n", {"gene_a": "a", "gene_b": 1}, False),  # a name without a header
        (b"X\tY\n", {"gene_a": 0}, False),  # gene_b not given
        (b"\x1f\x8bnot gzip at all", {"gene_a": 0, "gene_b": 1}, False),
    ],
)
def test_a_bad_table_is_an_error_naming_the_file(tmp_path, text, columns, header):
    path = tmp_path / "orthologs.tsv"
    path.write_bytes(text)
    with pytest.raises(OrthologError, match=re.escape(str(path))):
        read_ortholog_rows(path, OrthologTable(table="orthologs.tsv", header=header, columns=columns))


# --------------------------------------------------------------------------- names and species


def test_paralog_pairs_by_gene_id_and_by_symbol_give_the_same_groups():
    rows = [
        ("t1", "ENSG00000000001.5", "AAA", HUMAN),
        ("t2", "ENSG00000000001.5", "AAA", HUMAN),
        ("t3", "ENSG00000000002.1", "BBB", HUMAN),
        ("t4", "XLOC_3", "CCC", HUMAN),  # no Ensembl id: named by its own id
        ("t5", "ENSG00000000004.2", "DDD", HUMAN),
        ("t6", "ENSG00000000005.2", "EEE", HUMAN),
    ]
    by_symbol = pd.DataFrame({"gene_A": ["AAA", "BBB"], "gene_B": ["BBB", "CCC"]})
    by_id = pd.DataFrame({"gene_A": ["ENSG00000000001", "ENSG00000000002.9"], "gene_B": ["ENSG00000000002", "XLOC_3"]})
    tables = [build_groups(_world(rows), pairs, SplitsConfig()) for pairs in (by_symbol, by_id)]
    assert _partition(tables[0][0]) == _partition(tables[1][0])
    assert {"ENSG00000000001", "ENSG00000000002", "XLOC_3"} in _partition(tables[0][0])
    assert tables[0][1].n_paralog_edges == tables[1][1].n_paralog_edges == 2


def test_symbols_and_gene_ids_never_join_genes_of_two_species():
    rows = [
        ("h1", "XLOC_1", "ABC", HUMAN),
        ("h2", "XLOC_2", "DEF", HUMAN),
        ("m1", "XLOC_1", "ABC", MOUSE),  # same id and symbol as a human gene: still another gene
        ("m2", "XLOC_9", "ABC", MOUSE),  # joins its mouse namesake only
        ("m3", "XLOC_5", "DEF", MOUSE),
    ]
    paralogs = pd.DataFrame({"gene_A": ["ABC"], "gene_B": ["DEF"]})  # a pair in each species
    table, summary = build_groups(_world(rows), paralogs, SplitsConfig())
    gene = table.set_index("transcript_id")["gene_id"]
    assert gene["h1"] == f"{HUMAN}:XLOC_1" and gene["m1"] == gene["m2"] == f"{MOUSE}:XLOC_1"
    assert _partition(table) == {
        frozenset({f"{HUMAN}:XLOC_1", "XLOC_2"}),
        frozenset({f"{MOUSE}:XLOC_1", "XLOC_5"}),
    }
    assert summary.species_genes == {HUMAN: 2, MOUSE: 2} and summary.species_transcripts == {HUMAN: 2, MOUSE: 3}
    assert (table.groupby("homology_group")["species"].nunique() == 1).all()


def test_ortholog_edges_join_groups_across_species():
    rows = [
        ("h1", "ENSG00000000001.1", "AAA", HUMAN),
        ("h2", "ENSG00000000002.1", "BBB", HUMAN),
        ("h3", "ENSG00000000003.1", "CCC", HUMAN),
        ("m1", "ENSMUSG00000000001.1", "Aaa", MOUSE),
        ("m2", "ENSMUSG00000000002.1", "Bbb", MOUSE),
    ]
    paralogs = pd.DataFrame({"gene_A": ["AAA"], "gene_B": ["BBB"]})
    orthologs = _orthologs(["ENSG00000000002.4", "CCC"], ["Aaa", "ENSMUSG00000000002"])
    table, summary = build_groups(_world(rows), paralogs, SplitsConfig(), orthologs=orthologs)
    assert _partition(table) == {
        frozenset({"ENSG00000000001", "ENSG00000000002", "ENSMUSG00000000001"}),
        frozenset({"ENSG00000000003", "ENSMUSG00000000002"}),
    }
    partners = table.drop_duplicates("gene_id").set_index("gene_id")["orthologs"].map(list)
    assert partners.to_dict() == {
        "ENSG00000000001": [],  # a paralog's ortholog is not its own
        "ENSG00000000002": ["ENSMUSG00000000001"],
        "ENSG00000000003": ["ENSMUSG00000000002"],
        "ENSMUSG00000000001": ["ENSG00000000002"],
        "ENSMUSG00000000002": ["ENSG00000000003"],
    }
    assert summary.n_ortholog_edges == 2 and summary.n_genes_with_orthologs == 4
    assert sum(summary.ortholog_pairs_dropped.values()) == 0


def test_unmatched_ortholog_and_paralog_pairs_are_dropped_and_counted_per_reason():
    rows = [
        ("h1", "ENSG00000000001.1", "AAA", HUMAN),
        ("h2", "ENSG00000000002.1", "BBB", HUMAN),
        ("m1", "ENSMUSG00000000001.1", "Aaa", MOUSE),
    ]
    orthologs = _orthologs(
        ["AAA", "ENSG00000000001", "ENSG00000000077", "ENSG00000000077", "ZZZ", "AAA"],
        ["BBB", "ENSMUSG00000000099", "ENSMUSG00000000099", "QQQ", "WWW", "ENSMUSG00000000001"],
    )
    paralogs = pd.DataFrame({"gene_A": ["AAA", "AAA", "ENSG00000000077"], "gene_B": ["Aaa", "BBB", "AAA"]})
    table, summary = build_groups(_world(rows), paralogs, SplitsConfig(), 1, orthologs, 2)
    assert summary.ortholog_pairs_dropped == {
        "empty_name": 2,  # counted by the reader
        "one_symbol_not_in_annotation": 0,
        "both_symbols_not_in_annotation": 1,  # ZZZ~WWW
        "one_id_not_in_annotation": 1,  # ENSG...1~ENSMUSG...99
        "both_ids_not_in_annotation": 1,
        "symbol_and_id_not_in_annotation": 1,
        "same_species": 1,  # AAA~BBB, both human
    }
    assert tuple(summary.ortholog_pairs_dropped) == ORTHOLOG_DROP_REASONS
    assert (
        summary.n_ortholog_edges == 1 and summary.n_ortholog_edges + sum(summary.ortholog_pairs_dropped.values()) == 8
    )
    assert summary.paralog_pairs_dropped["cross_species"] == 1  # AAA (human) ~ Aaa (mouse)
    assert summary.paralog_pairs_dropped["one_id_not_in_annotation"] == 1
    assert tuple(summary.paralog_pairs_dropped) == DROP_REASONS and summary.n_paralog_edges == 1
    assert table.set_index("transcript_id").loc["h2", "orthologs"] == []


# --------------------------------------------------------------------------- leakage


def _two_species_world(seed: int, n_genes: int = 150):
    """Genes of two species with isoforms (some also in a second set under a non-Ensembl id), paralog pairs
    within a species and one-to-one ortholog pairs, each name drawn from the ways a gene can be named.

    Returns transcripts, paralogs, orthologs, and the true gene of every transcript and of every name.
    """
    rng = np.random.default_rng(seed)
    rows, names_of = [], {}
    for sp, ens, sym, xloc in ((HUMAN, "ENSG", "GENE{}", 0), (MOUSE, "ENSMUSG", "Gene{}", 10_000)):
        for g in range(n_genes):
            names = [f"{ens}{g:011d}", f"{ens}{g:011d}.{1 + g % 4}", sym.format(g)]
            rows += [(f"{sp}_t{g}_{i}", names[1], names[2], sp, "gencode", g) for i in range(int(rng.integers(1, 4)))]
            if g % 4 == 0:  # a second set without Ensembl ids: joined by symbol, can be named by its id
                names.append(f"XLOC_{xloc + g}")
                rows.append((f"{sp}_x{g}", names[-1], names[2], sp, "cufflinks", g))
            names_of[(sp, g)] = names
    gene_of_name = {name: gene for gene, names in names_of.items() for name in names}
    gene_of_transcript = {r[0]: (r[3], r[5]) for r in rows}

    def name(gene):
        return names_of[gene][int(rng.integers(len(names_of[gene])))]

    paralogs = [
        (name((sp, a)), name((sp, b))) for sp in (HUMAN, MOUSE) for a, b in rng.integers(0, n_genes, (40, 2)).tolist()
    ]
    mouse_of = rng.permutation(n_genes)
    orthologs = [
        (name((HUMAN, g)), name((MOUSE, int(mouse_of[g]))))
        for g in rng.choice(n_genes, n_genes // 2, replace=False).tolist()
    ]
    columns = ["transcript_id", "gene_id", "gene_name", "species", "annotation", "true_gene"]
    transcripts = pd.DataFrame(rows, columns=columns).drop(columns="true_gene")
    return (
        transcripts,
        pd.DataFrame(paralogs, columns=["gene_A", "gene_B"]),
        _orthologs(*zip(*orthologs, strict=True)),
        gene_of_transcript,
        gene_of_name,
    )


def _families(genes, edges) -> dict:
    """Union-find over true genes: the family (a root gene) of each gene."""
    parent = {g: g for g in genes}

    def root(g):
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    for a, b in edges:
        parent[root(a)] = root(b)
    return {g: root(g) for g in genes}


def _families_in_several_splits(table, gene_of_transcript, family) -> int:
    split = table.set_index("transcript_id")["split"]
    per_family = pd.DataFrame(
        {"family": [family[gene_of_transcript[t]] for t in split.index], "split": split.to_numpy()}
    )
    return int((per_family.groupby("family")["split"].nunique() > 1).sum())


@pytest.mark.parametrize("seed", [0, 1])
def test_no_homology_family_has_transcripts_in_two_splits_in_any_species(seed):
    transcripts, paralogs, orthologs, gene_of_transcript, gene_of_name = _two_species_world(seed)
    edges = [(gene_of_name[a], gene_of_name[b]) for a, b in paralogs.itertuples(index=False)]
    edges += [(gene_of_name[a], gene_of_name[b]) for a, b in orthologs.itertuples(index=False)]
    family = _families(set(gene_of_name.values()), edges)
    table, summary = build_groups(transcripts, paralogs, SplitsConfig(), orthologs=orthologs)

    assert _families_in_several_splits(table, gene_of_transcript, family) == 0
    # The groups are exactly the families: one group per family, one family per group.
    pairs = pd.DataFrame(
        {"group": table["homology_group"], "family": [family[gene_of_transcript[t]] for t in table["transcript_id"]]}
    )
    assert (pairs.groupby("group")["family"].nunique() == 1).all() and (
        pairs.groupby("family")["group"].nunique() == 1
    ).all()
    assert set(table["split"]) == {"train", "val", "test"} and summary.n_ortholog_edges == len(orthologs)
    assert sum(summary.paralog_pairs_dropped.values()) == 0
    # The world can leak: drawn without the ortholog edges, families spanning species land in several splits.
    alone, _ = build_groups(transcripts, paralogs, SplitsConfig())
    assert _families_in_several_splits(alone, gene_of_transcript, family) > 0


# --------------------------------------------------------------------------- the stage


def _two_species_transcripts() -> pd.DataFrame:
    human, _ = synthetic_annotation()  # genes G00..G09, symbols GENE0..GENE9, homo_sapiens
    mouse = human.assign(
        transcript_id="M" + human["transcript_id"],
        gene_id=human["gene_id"].str.replace("G", "ENSMUSG00000000", regex=False) + ".1",
        gene_name=human["gene_name"].str.replace("GENE", "Gene", regex=False),
        species=MOUSE,
    )
    return pd.concat([human, mouse], ignore_index=True)


@pytest.mark.parametrize("with_orthologs", [True, False])
def test_pairs_stage_reads_data_orthologs_and_writes_species_and_partners(tmp_path, with_orthologs):
    data = tmp_path / "data"
    (data / "orthologs").mkdir(parents=True)
    (data / "pairs.csv").write_text("gene_A,gene_B\nGENE0,GENE1\nGene2,ENSMUSG0000000003\nGENE4,Gene5\n")
    (data / "orthologs" / "hm.tsv").write_text(
        "GENE0\tENSMUSG0000000000.7\tx\nG01\tGene1\tx\nGENE2\tGENE3\tx\nGENE4\tENSMUSG99999999999\tx\n\tGene6\tx\n"
    )
    table = tmp_path / "transcripts.parquet"
    _two_species_transcripts().to_parquet(table)
    cfg = tiny_config()
    spec = OrthologTable(table="orthologs/hm.tsv", header=False, columns={"gene_a": 0, "gene_b": 1})
    update = {"paralogs": "pairs.csv", "orthologs": spec if with_orthologs else None}
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update=update)})
    paths = Paths.under(tmp_path / "out", data_dir=data).replace(transcripts=table)
    stage.execute("pairs", cfg, paths)

    written = json.loads(paths.pairs_summary.read_text())
    groups = GROUPS.validate(pd.read_parquet(paths.groups))
    assert pyarrow.parquet.read_schema(paths.groups).field("orthologs").type == pyarrow.list_(pyarrow.string())
    assert written["species_genes"] == {HUMAN: 10, MOUSE: 10}
    assert written["paralog_pairs_dropped"]["cross_species"] == 1 and written["n_paralog_edges"] == 2
    partners = groups.drop_duplicates("gene_id").set_index("gene_id")["orthologs"].map(list)
    if not with_orthologs:
        assert written["ortholog_pairs_dropped"] == {} and written["n_ortholog_edges"] == 0
        assert (partners.map(len) == 0).all()
        return
    assert written["n_ortholog_edges"] == 2 and written["n_genes_with_orthologs"] == 4
    assert written["ortholog_pairs_dropped"] == {
        **dict.fromkeys(ORTHOLOG_DROP_REASONS, 0),
        "empty_name": 1,
        "one_id_not_in_annotation": 1,
        "same_species": 1,
    }
    assert partners["G00"] == ["ENSMUSG0000000000"] and partners["ENSMUSG0000000001"] == ["G01"]
    by_gene = groups.drop_duplicates("gene_id").set_index("gene_id")["homology_group"]
    assert by_gene["G00"] == by_gene["G01"] == by_gene["ENSMUSG0000000000"] == by_gene["ENSMUSG0000000001"]
    assert by_gene["G02"] != by_gene["ENSMUSG0000000002"]
