"""Label sets: joins to the annotation (gene, transcript, gene name), sequence labels, grouping, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from isoclr.config import ProbeTask
from isoclr.errors import IsoclrError, MissingInputError
from isoclr.tasks import LabelError, LabelJoinError, task_table, unversioned_gene_id
from tests.helpers import BASES


def transcripts_table() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [
        ("ENST1.1", "ENSG01.3", "A" * 10),
        ("ENST2.1", "ENSG01.3", "C" * 20),  # the longest of ENSG01: its representative
        ("ENST3.2", "ENSG02.1", "G" * 15),
        ("ENST4.1", "ENSG04.7_PAR_Y", "T" * 12),
        ("TCONS_1", "XLOC_000001", "ACGT" * 5),
    ]
    t = pd.DataFrame(rows, columns=["transcript_id", "gene_id", "seq"])
    t["cds_start"] = pd.array([0, 2, None, None, None], dtype="Int64")
    t["cds_end"] = pd.array([9, 11, None, None, None], dtype="Int64")
    t["exon_ends"] = [[9], [5, 19], None, None, None]
    groups = pd.DataFrame(
        {"transcript_id": t["transcript_id"], "gene_id": t["gene_id"], "homology_group": ["H1", "H1", "H2", "H4", "H9"]}
    )
    return t, groups


def test_gene_id_join_strips_versions_and_takes_the_longest_isoform(tmp_path):
    (tmp_path / "hl.tsv").write_text(
        "ensembl_gene_id\tname\thl\nENSG01\tA\t1.5\nENSG02.9\tB\t-0.5\nENSG04\tD\t2.0\nENSG03\tC\tNA\nENSG99\tZ\t3.0\n"
    )
    task = ProbeTask(name="hl", file="hl.tsv", sep="\t", join="gene_id", id_column="ensembl_gene_id", target="hl")
    transcripts, groups = transcripts_table()
    table, notes = task_table(task, tmp_path, transcripts, groups)

    by_gene = table.set_index("id")
    assert list(by_gene.index) == ["ENSG01", "ENSG02", "ENSG04"]
    assert by_gene.loc["ENSG01", "transcript_id"] == "ENST2.1"
    assert by_gene.loc["ENSG01", "seq"] == "C" * 20
    assert by_gene.loc["ENSG01", "cds_start"] == 2 and list(by_gene.loc["ENSG01", "exon_ends"]) == [5, 19]
    assert by_gene.loc["ENSG02", "target"] == -0.5
    assert list(by_gene["group"]) == ["H1", "H2", "H4"]
    assert notes["n"] == 3 and notes["dropped_na"] == 1 and notes["unmatched"] == 1
    assert notes["unmatched_examples"] == ["ENSG99"]
    assert notes["split_kind"] == "by homology group (genes known)"
    assert notes["tracks"].startswith("annotation: CDS track on 1 of 3 rows")


def annotated() -> tuple[pd.DataFrame, pd.DataFrame]:
    """transcripts_table() with gene names and biotypes."""
    t, groups = transcripts_table()
    t["gene_name"] = ["ONE", "ONE", "TWO", "FOUR", None]
    t["biotype"] = ["protein_coding", "retained_intron", "lincRNA", "protein_coding", None]
    return t, groups


def test_transcript_id_and_gene_name_joins(tmp_path):
    (tmp_path / "tx.csv").write_text("tx,y\nENST2,1.0\nENST3.7,2.0\nENST9,3.0\n")
    task = ProbeTask(name="tx", file="tx.csv", join="transcript_id", id_column="tx", target="y")
    table, notes = task_table(task, tmp_path, *annotated())
    assert table["transcript_id"].tolist() == ["ENST2.1", "ENST3.2"] and notes["unmatched"] == 1
    assert table["group"].tolist() == ["H1", "H2"]

    (tmp_path / "sym.csv").write_text("symbol,y\nONE,1.0\nFOUR,2.0\nNOPE,3.0\n")
    task = ProbeTask(name="sym", file="sym.csv", join="gene_name", id_column="symbol", target="y", group_by="none")
    table, notes = task_table(task, tmp_path, *annotated())
    longest = {"ONE": "ENST2.1", "FOUR": "ENST4.1"}  # the longest isoform of each gene
    assert dict(zip(table["id"], table["transcript_id"], strict=True)) == longest
    assert notes["split_kind"] == "random (no grouping known)" and table["group"].nunique() == 2


def test_classification_task_from_the_annotation_with_sequence_only_tracks(tmp_path):
    task = ProbeTask(
        name="coding",
        source="annotation",
        join="transcript_id",
        id_column="transcript_id",
        target="biotype",
        type="classification",
        positive=["protein_coding"],
        negative=["lincRNA"],
        tracks="sequence",
    )
    table, notes = task_table(task, tmp_path, *annotated())
    classes = {"ENST1.1": 1.0, "ENST3.2": 0.0, "ENST4.1": 1.0}
    assert dict(zip(table["transcript_id"], table["target"], strict=True)) == classes
    assert notes["dropped_other_class"] == 1 and notes["dropped_na"] == 1 and notes["n_positive"] == 2
    # ENST1 has a CDS in the annotation: with tracks: sequence it must not reach the encoder
    assert not {"cds_start", "cds_end", "exon_ends"} & set(table.columns)
    assert notes["tracks"].startswith("sequence only") and notes["cds_track_rows"] == 0


def test_task_declarations_are_checked():
    with pytest.raises(ValueError, match="positive target values"):
        ProbeTask(name="c", file="f", join="gene_id", id_column="g", target="t", type="classification")
    with pytest.raises(ValueError, match="homology needs an annotation join"):
        ProbeTask(name="s", file="f", join="sequence", id_column="s", target="t")
    with pytest.raises(ValueError, match="takes no file"):
        ProbeTask(name="a", source="annotation", file="f", join="transcript_id", id_column="t", target="b")


def test_no_matching_id_raises_a_label_join_error(tmp_path):
    (tmp_path / "hl.tsv").write_text("gene\thl\nENSG77\t1.0\nENSG78\t2.0\n")
    task = ProbeTask(name="hl", file="hl.tsv", sep="\t", join="gene_id", id_column="gene", target="hl")
    with pytest.raises(LabelJoinError) as err:
        task_table(task, tmp_path, *transcripts_table())
    message = str(err.value)
    assert "hl.tsv" in message and "'gene'" in message and "ENSG77" in message


def test_missing_column_is_named(tmp_path):
    (tmp_path / "hl.tsv").write_text("gene\tvalue\nENSG01\t1.0\n")
    task = ProbeTask(name="hl", file="hl.tsv", sep="\t", join="gene_id", id_column="gene", target="hl")
    with pytest.raises(LabelError, match=r"hl\.tsv.*\['hl'\]"):
        task_table(task, tmp_path, *transcripts_table())


def test_sequence_join_groups_by_prefix_and_counts_na(tmp_path):
    import gzip

    lines = [
        "AAAAACGTAC\t0.5\tNA",
        "AAAAAGGGGG\t0.7\t1.0",  # shares the 5-nt prefix with the first row
        "ccccuacgua\t0.1\t2.0",  # lower case and U are normalised
        "CCCCCTTTTT\tNA\t3.0",  # no target: dropped, counted
        "GGXGG\t0.2\t4.0",  # not a nucleotide sequence: dropped, counted
    ]
    with gzip.open(tmp_path / "stab.tsv.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    task = ProbeTask(
        name="stab",
        file="stab.tsv.gz",
        sep="\t",
        header=["sequence", "a", "b"],
        join="sequence",
        id_column="sequence",
        target="a",
        group_by="prefix5",
    )
    table, notes = task_table(task, tmp_path, *transcripts_table())
    assert table["seq"].tolist() == ["AAAAACGTAC", "AAAAAGGGGG", "CCCCTACGTA"]
    assert table["group"].tolist() == ["AAAAA", "AAAAA", "CCCCT"]
    assert table["target"].tolist() == [0.5, 0.7, 0.1]
    assert "cds_start" not in table.columns
    assert notes["dropped_na"] == 1 and notes["dropped_bad_sequence"] == 1 and notes["n_groups"] == 2


def test_sequence_join_groups_by_a_column_and_subsamples_reproducibly(tmp_path):
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(BASES, 20)) for _ in range(50)]
    labels = pd.DataFrame({"utr": seqs, "mrl": rng.normal(size=50), "mother": [f"m{i // 5}" for i in range(50)]})
    labels.to_csv(tmp_path / "mrl.csv")
    task = ProbeTask(
        name="mrl", file="mrl.csv", join="sequence", id_column="utr", target="mrl", group_by="mother", max_rows=20
    )
    table, notes = task_table(task, tmp_path, *transcripts_table())
    again, _ = task_table(task, tmp_path, *transcripts_table())
    other, _ = task_table(task, tmp_path, *transcripts_table(), sample_seed=1)
    assert len(table) == 20 and notes["subsampled_from"] == 50
    pd.testing.assert_frame_equal(table, again)
    assert set(table["seq"]) != set(other["seq"])
    mother = labels.set_index("utr")["mother"]
    assert (table["group"] == table["seq"].map(mother)).all()


def test_all_sequences_unusable_raises(tmp_path):
    (tmp_path / "bad.csv").write_text("s,y\nXYZ,1\nHELLO,2\n")
    task = ProbeTask(name="b", file="bad.csv", join="sequence", id_column="s", target="y", group_by="prefix2")
    with pytest.raises(LabelJoinError, match="bad.csv"):
        task_table(task, tmp_path, *transcripts_table())


def test_label_errors_are_project_errors(tmp_path):
    task = ProbeTask(name="hl", file="absent.tsv", sep="\t", join="gene_id", id_column="gene", target="hl")
    with pytest.raises(MissingInputError, match="absent.tsv does not exist"):
        task_table(task, tmp_path, *transcripts_table())
    assert issubclass(LabelJoinError, LabelError) and issubclass(LabelError, IsoclrError)
    assert issubclass(LabelError, ValueError)  # callers that caught ValueError still do


def test_unversioned_gene_id():
    ids = pd.Series(["ENSG00000000003.14", "ENSG00000182378.14_PAR_Y", "ENSG5", "XLOC_000001"])
    assert unversioned_gene_id(ids).tolist() == ["ENSG00000000003", "ENSG00000182378", "ENSG5", "XLOC_000001"]
