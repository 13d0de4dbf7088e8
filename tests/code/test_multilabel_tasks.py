"""Multilabel label sets: GO terms joined by gene (one row per gene), 0/1 columns of a label file, join errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from isoclr.config import ProbeTask
from isoclr.go_terms import GoJoinError
from isoclr.tasks import LABEL_PREFIX, LabelJoinError, label_names, targets, task_table
from tests.code.test_go_terms import C, D, E, go_dir  # noqa: F401 -- go_dir is a fixture

GO_TASK = {"name": "go", "source": "go", "join": "gene_id", "type": "multilabel", "n_terms": 3, "max_share": 1.0}


def go_transcripts() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Genes 1 (two isoforms), 2, 3 by Ensembl id, 7 by symbol only, and an unlabelled gene."""
    rows = [
        ("T1a", "ENSG01.3", "S1", "A" * 10, "H1"),
        ("T1b", "ENSG01.3", "S1", "C" * 30, "H1"),  # the longest isoform of gene 1: its row
        ("T2", "ENSG22.1", "S2", "G" * 12, "H2"),
        ("T3", "ENSG03.1", "S3", "T" * 14, "H1"),
        ("T7", "XLOC_7", "S7", "ACGT" * 4, "H7"),
        ("Tx", "ENSG77.1", None, "GATC" * 4, "H9"),
    ]
    t = pd.DataFrame(rows, columns=["transcript_id", "gene_id", "gene_name", "seq", "group"])
    t["cds_start"] = pd.array([None] * len(t), dtype="Int64")
    t["cds_end"] = pd.array([None] * len(t), dtype="Int64")
    t["exon_ends"] = None
    groups = pd.DataFrame({"transcript_id": t["transcript_id"], "gene_id": t["gene_id"], "homology_group": t["group"]})
    return t.drop(columns="group"), groups


def test_go_task_one_row_per_gene_with_the_chosen_terms(go_dir: Path):  # noqa: F811
    task = ProbeTask(**GO_TASK)
    transcripts, groups = go_transcripts()
    table, notes = task_table(task, Path("unused"), transcripts, groups, go_dir=go_dir)
    # Level-2 terms by genes holding them (test_go_terms.HELD): C 3 (2, 3, 8), E 3 (1, 4, 5), D 2, F 2: D by id.
    assert notes["labels"] == label_names(table) == [C, E, D]
    assert [t["go_id"] for t in notes["terms"]] == [C, E, D]
    assert [t["term"] for t in notes["terms"]] == ["c", "e", "d"]
    by_gene = table.set_index("id")
    assert sorted(by_gene.index) == ["1", "2", "3", "7"]
    assert by_gene.loc["1", "transcript_id"] == "T1b"  # longest isoform
    y = pd.DataFrame(targets(table, task), columns=[C, E, D], index=table["id"])
    assert y.loc["1"].tolist() == [0, 1, 1] and y.loc["2"].tolist() == [1, 0, 0]
    assert y.loc["3"].tolist() == [1, 0, 0] and y.loc["7"].tolist() == [0, 0, 0]  # 7 holds A only
    assert by_gene["group"].to_dict() == {"1": "H1", "2": "H2", "3": "H1", "7": "H7"}
    assert notes["n_positive"] == {C: 2, E: 1, D: 1}
    assert [t["n_rows"] for t in notes["terms"]] == [2, 1, 1]
    assert notes["go"]["matched_symbol"] == 1 and notes["unmatched_examples"] == ["ENSG77.1"]
    assert (table["target"] == y.sum(axis=1).to_numpy()).all()
    assert notes["selection"].startswith(
        "go: the 3 most common MF terms at level 2 held by 0.01..1 of 7 labelled genes"
    )
    assert "4 genes joined the annotation (4 transcripts by Ensembl gene id, 1 by symbol)" in notes["selection"]


def test_go_task_too_few_rows_fails_naming_unmatched_ids(go_dir: Path):  # noqa: F811
    transcripts, groups = go_transcripts()
    task = ProbeTask(**GO_TASK, min_rows=5)
    with pytest.raises(LabelJoinError, match=r"at least 5 rows join.*4 joined.*\['ENSG77.1'\]"):
        task_table(task, Path("unused"), transcripts, groups, go_dir=go_dir)
    unlabelled = transcripts[transcripts["transcript_id"] == "Tx"]
    with pytest.raises(GoJoinError, match=r"first unmatched gene ids: \['ENSG77.1'\]"):
        task_table(ProbeTask(**GO_TASK), Path("unused"), unlabelled, groups, go_dir=go_dir)


def test_multilabel_file_task_reads_the_named_01_columns(tmp_path: Path):
    (tmp_path / "loc.tsv").write_text(
        "symbol\tNucleus\tCytosol\tER\n"
        "S1\t1\t0\t0\n"
        "S2\t0\t1\t1\n"
        "S3\t1\tNA\t0\n"  # missing value: dropped
        "S7\t2\t0\t0\n"  # not 0/1: dropped
        "NOPE\t1\t1\t0\n"
    )
    task = ProbeTask(
        name="loc",
        file="loc.tsv",
        sep="\t",
        join="gene_name",
        id_column="symbol",
        type="multilabel",
        labels=["Nucleus", "Cytosol"],
    )
    table, notes = task_table(task, tmp_path, *go_transcripts())
    assert label_names(table) == ["Nucleus", "Cytosol"] and notes["labels"] == ["Nucleus", "Cytosol"]
    assert table["id"].tolist() == ["S1", "S2"]
    assert targets(table, task).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert table.set_index("id").loc["S1", "transcript_id"] == "T1b"
    assert notes["dropped_na"] == 1 and notes["dropped_non_binary"] == 1 and notes["unmatched"] == 1
    assert f"{LABEL_PREFIX}ER" not in table.columns
    with pytest.raises(LabelJoinError, match=r"at least 3 rows join.*2 joined.*\['NOPE'\]"):
        task_table(task.model_copy(update={"min_rows": 3}), tmp_path, *go_transcripts())


def test_multilabel_config_rules():
    with pytest.raises(ValidationError, match="names its 0/1 columns"):
        ProbeTask(name="x", file="f", join="gene_name", id_column="s", type="multilabel")
    with pytest.raises(ValidationError, match="no target"):
        ProbeTask(name="x", file="f", join="gene_name", id_column="s", type="multilabel", labels=["a"], target="t")
    with pytest.raises(ValidationError, match="source go"):
        ProbeTask(name="x", source="go", join="gene_id", type="regression")
    with pytest.raises(ValidationError, match="min_share"):
        ProbeTask(**{**GO_TASK, "min_share": 0.6, "max_share": 0.5})
    with pytest.raises(ValidationError, match="labels columns are for multilabel"):
        ProbeTask(name="x", file="f", join="gene_name", id_column="s", target="t", labels=["a"])
    assert ProbeTask(**GO_TASK).ontology == "MF" and np.isclose(ProbeTask(**GO_TASK).min_share, 0.01)
