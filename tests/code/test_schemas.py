"""The schemas of the tables that cross a stage boundary: the transcripts table's checks and its one definition."""

from __future__ import annotations

import re

import pandas as pd
import pandera.errors
import pyarrow
import pyarrow.parquet
import pytest

from isoclr.schemas import TRANSCRIPT_FIELDS, TRANSCRIPTS, TRANSCRIPTS_ARROW


def transcripts_frame(seqs: list[str], lengths: list[int] | None = None, index: list[int] | None = None):
    n = len(seqs)
    return pd.DataFrame(
        {
            "transcript_id": [f"t{i}" for i in range(n)],
            "gene_id": "g",
            "gene_name": None,
            "annotation": "x",
            "species": "s",
            "assembly": "a",
            "biotype": None,
            "seq": seqs,
            "length": [len(s) for s in seqs] if lengths is None else lengths,
            "cds_start": pd.array([None] * n, dtype="Int64"),
            "cds_end": pd.array([None] * n, dtype="Int64"),
            "exon_ends": None,
            "cds_source": "none",
        },
        index=index,
    )


@pytest.mark.parametrize("bad", ["", "ACGU", "acgt", "ACG-T", "ACGT\u00e9"])
def test_transcripts_schema_refuses_sequences_outside_acgtn(bad):
    """The vectorised alphabet check keeps the contract of the regex ^[ACGTN]+$, row by row."""
    frame = transcripts_frame(["ACGTN", bad, "NNNA" * 50])
    TRANSCRIPTS.validate(frame.drop(index=1))
    with pytest.raises(pandera.errors.SchemaErrors) as err:
        TRANSCRIPTS.validate(frame, lazy=True)
    cases = err.value.failure_cases
    seq_cases = cases[cases["column"] == "seq"]
    assert seq_cases["failure_case"].tolist() == [bad] and seq_cases["index"].tolist() == [1]


def test_transcripts_schema_refuses_a_length_that_is_not_the_sequences():
    """The length check reads the Arrow offsets; rows keep their own index labels."""
    frame = transcripts_frame(["ACGTN", "ACG", "NNNA" * 50], lengths=[5, 4, 200], index=[3, 7, 9])
    with pytest.raises(pandera.errors.SchemaErrors) as err:
        TRANSCRIPTS.validate(frame, lazy=True)
    cases = err.value.failure_cases
    assert set(cases["check"]) == {"length equals len(seq)"} and set(cases["index"]) == {7}
    TRANSCRIPTS.validate(frame.drop(index=7))


def test_pandera_and_arrow_schemas_come_from_one_definition():
    assert list(TRANSCRIPTS.columns) == list(TRANSCRIPT_FIELDS) == TRANSCRIPTS_ARROW.names
    for name, field in TRANSCRIPT_FIELDS.items():
        column = TRANSCRIPTS.columns[name]
        assert TRANSCRIPTS_ARROW.field(name).type == field.arrow
        assert column.nullable == field.nullable and column.unique == field.unique
    assert (
        str(TRANSCRIPTS.columns["cds_start"].dtype) == "Int64" and str(TRANSCRIPTS.columns["length"].dtype) == "int64"
    )
    assert TRANSCRIPTS_ARROW.field("exon_ends").type == pyarrow.list_(pyarrow.int64())


@pytest.mark.parametrize(
    "start, end, ok",
    [(0, 3, True), (None, None, True), (2, 5, True), (3, 3, False), (4, 2, False), (2, 6, False), (2, None, False)],
)
def test_transcripts_schema_wants_no_cds_or_one_inside_the_sequence(start, end, ok):
    frame = transcripts_frame(["ACGTN"]).assign(
        cds_start=pd.array([start], dtype="Int64"),
        cds_end=pd.array([end], dtype="Int64"),
        cds_source="none" if start is None else "annotated",
    )
    if ok:
        TRANSCRIPTS.validate(frame)
    else:
        with pytest.raises(pandera.errors.SchemaErrors) as err:
            TRANSCRIPTS.validate(frame, lazy=True)
        assert "CDS inside the transcript" in set(err.value.failure_cases["check"])


@pytest.mark.parametrize(
    "source, start, ok",
    [
        ("none", None, True),
        ("inferred", 0, True),
        ("none", 0, False),
        ("annotated", None, False),
        ("guessed", 0, False),
    ],
)
def test_cds_source_says_where_the_cds_came_from(source, start, ok):
    frame = transcripts_frame(["ACGTN"]).assign(
        cds_start=pd.array([start], dtype="Int64"),
        cds_end=pd.array([None if start is None else 3], dtype="Int64"),
        cds_source=source,
    )
    if ok:
        TRANSCRIPTS.validate(frame)
    else:
        with pytest.raises(pandera.errors.SchemaErrors):
            TRANSCRIPTS.validate(frame, lazy=True)


# --------------------------------------------------------------------------- groups


def groups_frame() -> pd.DataFrame:
    """Human gene h1 and its mouse ortholog m1 in one group; h2 alone."""
    return pd.DataFrame(
        {
            "transcript_id": ["t1", "t2", "t3", "t4"],
            "gene_id": ["h1", "h1", "m1", "h2"],
            "gene_name": ["A", "A", None, "B"],
            "species": ["homo_sapiens", "homo_sapiens", "mus_musculus", "homo_sapiens"],
            "n_isoforms": [2, 2, 1, 1],
            "homology_group": ["hg0", "hg0", "hg0", "hg1"],
            "split": ["train", "train", "train", "test"],
            "orthologs": [["m1"], ["m1"], ["h1"], []],
        }
    )


def test_groups_orthologs_survive_parquet_as_lists_of_strings(tmp_path):
    from isoclr.schemas import GROUPS, GROUPS_ARROW

    path = tmp_path / "groups.parquet"
    table = GROUPS.validate(groups_frame())
    pyarrow.parquet.write_table(pyarrow.Table.from_pandas(table, schema=GROUPS_ARROW, preserve_index=False), path)
    back = GROUPS.validate(pd.read_parquet(path))
    assert back["orthologs"].map(list).tolist() == [["m1"], ["m1"], ["h1"], []]
    assert set(GROUPS.columns) == set(GROUPS_ARROW.names)


@pytest.mark.parametrize(
    ("row", "partners", "rule"),
    [
        (3, ["m9"], "str gene_id of this table"),  # no such gene
        (3, [7], "str gene_id of this table"),
        (0, ["h2"], "another species"),  # h2 is human too
        (3, ["m1"], "share the row's homology_group"),  # m1 is in hg0, h2 in hg1
        (3, "m1", "a list per row"),
    ],
)
def test_groups_schema_refuses_bad_ortholog_partners(row, partners, rule):
    from isoclr.schemas import GROUPS

    table = groups_frame()
    table.at[row, "orthologs"] = partners
    if row == 0:
        table.at[0, "homology_group"] = table.at[1, "homology_group"] = "hg1"  # keep only the species rule broken
        table.at[0, "split"] = table.at[1, "split"] = "test"
        table.at[1, "orthologs"], table.at[2, "orthologs"] = partners, []
    with pytest.raises(pandera.errors.SchemaError, match=re.escape(rule)):
        GROUPS.validate(table)
