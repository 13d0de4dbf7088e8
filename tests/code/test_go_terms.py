"""GO term selection, propagation, root terms and the transcript join on a hand-made 9-term ontology.

R (root, 0)
+- A (1) --- C (2)   D (2)
+- B (1) --- E (2)   F (2: is_a C [3] and is_a B [2], shortest wins)
              +- G (3: is_a E; part_of D, which propagates but does not set the level)
                   +- H (4: is_a G; regulates C, which does not propagate)
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isoclr import go_terms
from isoclr.errors import IsoclrError, MissingInputError

R, A, B, C, D, E, F, G, H = (f"GO:{i:07d}" for i in range(1, 10))
NAMES = dict(zip([R, A, B, C, D, E, F, G, H], ["root", "a", "b", "c", "d", "e", "f", "g", "h"], strict=True))
# GO.db spelling: "isa", "part of", "regulates"; the root's edge to the pseudo-term "all" is dropped on reading.
EDGES = [
    (A, R, "isa"),
    (B, R, "isa"),
    (C, A, "isa"),
    (D, A, "isa"),
    (E, B, "isa"),
    (F, C, "isa"),
    (F, B, "isa"),
    (G, E, "isa"),
    (G, D, "part of"),
    (H, G, "isa"),
    (H, C, "regulates"),
    (R, "all", "isa"),
]
DIRECT = [  # entrez_id, go_id, evidence
    (1, H, "IDA"),
    (2, F, "IEA"),
    (3, C, "IDA"),
    (4, D, "IDA"),
    (4, E, "IEA"),
    (5, E, "IDA"),
    (6, R, "ND"),  # root only: not labelled
    (7, A, "IDA"),
    (8, F, "IDA"),
    (8, F, "IEA"),
]
# Propagated over is_a + part_of, root left out.
HELD = {1: {H, G, E, B, D, A}, 2: {F, C, A, B}, 3: {C, A}, 4: {D, A, E, B}, 5: {E, B}, 7: {A}, 8: {F, C, A, B}}
LEVELS = {R: 0, A: 1, B: 1, C: 2, D: 2, E: 2, F: 2, G: 3, H: 4}
GENES = pd.DataFrame(
    {
        "entrez_id": [1, 2, 3, 4, 5, 6, 7, 8, 9],
        "symbol": ["S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9"],
        "ensembl_gene_ids": [
            "ENSG01",
            "ENSG02;ENSG22",
            "ENSG03",
            "ENSG34",
            "ENSG05",
            "ENSG06",
            None,
            "ENSG08",
            "ENSG34",
        ],
    }
)


def _tables(drop: tuple = ()) -> go_terms.GoTables:
    edges = pd.DataFrame([e for e in EDGES if e[1] != "all"], columns=["child_go_id", "parent_go_id", "relationship"])
    edges["relationship"] = go_terms.normalise_relationship(edges["relationship"])
    direct = pd.DataFrame([d for d in DIRECT if d[0] not in drop], columns=["entrez_id", "go_id", "evidence"])
    terms = pd.DataFrame({"go_id": list(NAMES), "term": list(NAMES.values()), "ontology": "MF"})
    return go_terms.GoTables("MF", direct, edges, terms, GENES, root=R)


def _write(path: Path, rows: list, columns: list[str]) -> None:
    with gzip.open(path, "wt") as out:
        pd.DataFrame(rows, columns=columns).to_csv(out, sep="\t", index=False)


@pytest.fixture
def go_dir(tmp_path: Path) -> Path:
    _write(
        tmp_path / "go_mf.tsv.gz",
        [(e, f"S{e}", g, ev) for e, g, ev in DIRECT],
        ["entrez_id", "symbol", "go_id", "evidence"],
    )
    _write(tmp_path / "go_mf_parents.tsv.gz", EDGES, ["child_go_id", "parent_go_id", "relationship"])
    _write(
        tmp_path / "go_terms.tsv.gz",
        [(g, n, "MF", "") for g, n in NAMES.items()] + [("GO:0099999", "x", "BP", "")],
        ["go_id", "term", "ontology", "definition"],
    )
    genes = GENES.assign(gene_name="", gene_type="protein-coding", chromosome="1", ensembl_transcript_ids=None)
    _write(tmp_path / go_terms.GENE_MAP_FILE, genes.values.tolist(), list(genes.columns))
    return tmp_path


def test_levels_are_shortest_is_a_paths_and_root_is_found():
    tables = _tables()
    assert go_terms.find_root(tables.edges) == R
    assert go_terms.term_levels(tables.edges).to_dict() == LEVELS


def test_propagation_follows_is_a_and_part_of_not_regulates():
    pairs = go_terms.gene_terms(_tables())
    held = pairs.groupby("entrez_id")["go_id"].agg(set).to_dict()
    assert held == HELD


def test_load_go_reads_the_files_as_exported(go_dir: Path):
    tables = go_terms.load_go(go_dir, "mf")
    assert tables.root == R and len(tables.terms) == 9 and set(tables.terms["ontology"]) == {"MF"}
    assert "all" not in set(tables.edges["parent_go_id"])
    assert set(tables.edges["relationship"]) == {"is_a", "part_of", "regulates"}
    assert go_terms.select_terms(tables, n=2).terms["go_id"].tolist() == [C, E]


def test_select_terms_known_answer():
    sel = go_terms.select_terms(_tables(), n=2, level=2, min_share=0.0, max_share=1.0)
    assert sel.n_labelled == 7
    # C and E are held by 3 genes each, D and F by 2: the top two are C and E.
    assert sel.terms[["go_id", "term", "level", "n_genes"]].values.tolist() == [[C, "c", 2, 3], [E, "e", 2, 3]]
    assert sel.terms["share"].tolist() == pytest.approx([3 / 7, 3 / 7])
    expected = pd.DataFrame({C: [0, 1, 1, 0, 0, 0, 1], E: [1, 0, 0, 1, 1, 0, 0]}, index=[1, 2, 3, 4, 5, 7, 8])
    assert (sel.labels.values == expected.values).all() and sel.labels.index.tolist() == expected.index.tolist()
    assert sel.labels.columns.tolist() == [C, E] and sel.labels.values.dtype == np.uint8


def test_select_terms_ties_go_to_the_smaller_id_and_share_window_applies():
    assert go_terms.select_terms(_tables(), n=3, max_share=1.0).terms["go_id"].tolist() == [C, E, D]
    # 3/7 = 0.43 is above max_share 0.4: only the 2-gene terms D and F remain.
    window = go_terms.select_terms(_tables(), n=10, max_share=0.4)
    assert window.terms["go_id"].tolist() == [D, F]
    assert go_terms.select_terms(_tables(), n=5, level=1, max_share=1.0).terms["n_genes"].tolist() == [6, 5]
    assert go_terms.select_terms(_tables(), n=1, level=3, max_share=1.0).terms["go_id"].tolist() == [G]


def test_dropping_electronic_annotations():
    sel = go_terms.select_terms(_tables(), n=4, level=2, min_share=0.0, max_share=1.0, drop_iea=True)
    # Gene 2 (IEA only) is no longer labelled; gene 4 loses E; gene 8 keeps F through its IDA row.
    assert sel.n_labelled == 6 and 2 not in sel.labels.index
    assert dict(zip(sel.terms["go_id"], sel.terms["n_genes"], strict=True)) == {C: 2, D: 2, E: 2, F: 1}
    assert sel.labels.loc[4].to_dict() == {C: 0, D: 1, E: 0, F: 0}


def test_only_genes_with_a_term():
    sel = go_terms.select_terms(_tables(), n=2, max_share=1.0, only_genes_with_a_term=True)
    assert 7 not in sel.labels.index and sel.labels.sum(axis=1).min() == 1


def test_no_eligible_term_and_bad_settings_raise_naming_the_rule():
    with pytest.raises(go_terms.GoDataError, match="level 2 held by"):
        go_terms.select_terms(_tables(), min_share=0.45)
    with pytest.raises(IsoclrError, match="min_share <= max_share"):
        go_terms.select_terms(_tables(), min_share=0.6, max_share=0.5)


def test_cycle_and_schema_and_missing_file_errors(go_dir: Path, tmp_path: Path):
    tables = _tables()
    looped = pd.concat([tables.edges, pd.DataFrame([[A, H, "is_a"]], columns=tables.edges.columns)])
    with pytest.raises(go_terms.GoDataError, match="acyclic"):
        go_terms.ancestors(looped)
    _write(go_dir / "go_mf.tsv.gz", [(1, "S1", "GO:12", "IDA")], ["entrez_id", "symbol", "go_id", "evidence"])
    with pytest.raises(go_terms.GoDataError, match="go_mf.tsv.gz"):
        go_terms.load_go(go_dir, "MF")
    with pytest.raises(MissingInputError, match="go_cc.tsv.gz"):
        go_terms.load_go(go_dir, "CC")


def test_root_terms_pick_the_rarest_top_level_term():
    roots = go_terms.root_terms(_tables())
    # A is held by 6 genes, B by 5: a gene holding both is coloured B.
    assert roots["go_id"].to_dict() == {1: B, 2: B, 3: A, 4: B, 5: B, 7: A, 8: B}
    top1 = go_terms.root_terms(_tables(), top=1)
    assert top1["term"].to_dict() == {1: "a", 2: "a", 3: "a", 4: "a", 5: "other", 7: "a", 8: "a"}
    assert top1.loc[5, "go_id"] is None
    # Level 2: C, E held by 3 genes, D, F by 2; gene 7 holds only A (level 1).
    assert go_terms.root_terms(_tables(), level=2)["term"].to_dict() == {
        1: "d",
        2: "f",
        3: "c",
        4: "d",
        5: "e",
        7: "other",
        8: "f",
    }


def test_join_copies_gene_labels_to_isoforms_by_ensembl_then_symbol():
    labels = go_terms.select_terms(_tables(), n=2, max_share=1.0).labels
    tx = pd.DataFrame(
        {
            "transcript_id": ["T1a", "T1b", "T2", "T4", "T7", "T6", "Tx", "T3"],
            "gene_id": ["ENSG01.3", "ENSG01.3", "ENSG22.1", "ENSG34.2", "ENSG99.1", "ENSG06.1", "ENSG77.1", "ENSG03"],
            "gene_name": ["S1", "S1", "S2", "S4", "S7", "S6", None, "S3"],
        }
    )
    joined, notes = go_terms.join_transcripts(tx, labels, GENES)
    by_tx = joined.set_index("transcript_id")
    assert sorted(by_tx.index) == ["T1a", "T1b", "T2", "T3", "T4", "T7"]
    assert by_tx.loc[["T1a", "T1b"], E].tolist() == [1, 1]  # both isoforms carry the gene's term
    assert by_tx.loc["T2", "entrez_id"] == 2  # second Ensembl id of a ';'-joined list
    assert by_tx.loc["T4", "entrez_id"] == 4  # ENSG34 is genes 4 and 9 (unlabelled): the labelled one
    assert by_tx.loc["T7", "matched_by"] == "symbol" and by_tx.loc["T7", "entrez_id"] == 7
    assert notes["matched"] == 6 and notes["matched_ensembl"] == 5 and notes["matched_symbol"] == 1
    assert notes["unmatched"] == 2 and notes["unmatched_examples"] == ["ENSG06.1", "ENSG77.1"]
    with pytest.raises(go_terms.GoJoinError, match=r"first unmatched gene ids: \['ENSG06.1', 'ENSG77.1'\]"):
        go_terms.join_transcripts(tx, labels, GENES, min_rows=7)


def test_join_prefers_the_entrez_gene_whose_symbol_matches():
    genes = GENES.assign(ensembl_gene_ids=GENES["ensembl_gene_ids"].replace({"ENSG05": "ENSG34"}))
    labels = go_terms.select_terms(_tables(), n=2, max_share=1.0).labels
    tx = pd.DataFrame({"transcript_id": ["Ta", "Tb"], "gene_id": ["ENSG34.1", "ENSG34.1"], "gene_name": ["S5", "S4"]})
    joined, notes = go_terms.join_transcripts(tx, labels, genes)
    assert joined.set_index("transcript_id")["entrez_id"].to_dict() == {"Ta": 5, "Tb": 4}
    assert notes["ambiguous_ensembl"] == 2


REAL = Path("/work/shared/data/real/go_human")


@pytest.mark.slow
def test_real_mf_selection_is_sane():
    if not (REAL / "go_mf.tsv.gz").exists():
        pytest.skip(f"{REAL} not present")
    tables = go_terms.load_go(REAL, "MF")
    sel = go_terms.select_terms(tables)
    assert len(sel.terms) == 10 and (sel.terms["level"] == 2).all()
    assert 15_000 < sel.n_labelled < 20_000
    assert sel.terms["share"].between(0.01, 0.5).all() and sel.terms["n_genes"].is_monotonic_decreasing
    assert sel.labels.shape == (sel.n_labelled, 10)
    assert (sel.labels.sum(axis=0).values == sel.terms["n_genes"].values).all()
    strict = go_terms.select_terms(tables, drop_iea=True)
    assert strict.n_labelled < sel.n_labelled
