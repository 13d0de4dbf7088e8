"""The sequence_table format: a table of id, gene and sequence, every row kept or quarantined with its rule."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from isoclr.config import Annotation
from isoclr.ingest import ValidationError, read_annotation
from isoclr.schemas import QUARANTINE, TRANSCRIPTS
from tests.helpers import MAX_LENGTH, rand_seq, rules_of

CODING = "CC" + "ATG" + "GCA" * 40 + "TAA" + "GG"  # ORF [2, 128)


def table_annotation(name="tab", file="t.tsv", cds=False, **extra) -> Annotation:
    columns = {"id": "tid", "gene": "gene", "sequence": "cdna"}
    if cds:
        columns |= {"cds_start": "cds_s", "cds_end": "cds_e"}
    return Annotation(
        name=name,
        format="sequence_table",
        table=file,
        columns=columns,
        species="homo_sapiens",
        assembly="GRCh38",
        **extra,
    )


ROWS = [
    # tid, gene, cdna, cds_s, cds_e (1-based inclusive)
    ("T1", "ENSG00000000001.3", rand_seq(50, 1), "", ""),
    ("T2", "ABC1", CODING.lower().replace("t", "u"), "3", "128"),
    ("", "ABC1", rand_seq(40, 2), "", ""),  # no id
    ("T4", "", rand_seq(40, 3), "", ""),  # no gene
    ("T1", "ABC2", rand_seq(40, 4), "", ""),  # duplicate id
    ("T6", "ABC3", "", "", ""),  # empty sequence
    ("T7", "ABC4", "ACGTXQ", "", ""),  # invalid characters
    ("T8", "ABC5", rand_seq(MAX_LENGTH + 1, 5), "", ""),  # too long
    ("T9", "ABC6", rand_seq(60, 6), "1", "x"),  # CDS not an integer: kept without CDS
    ("T10", "ABC7", rand_seq(60, 7), "4", ""),  # one end only
    ("T11", "ABC8", rand_seq(60, 8), "10", "90"),  # CDS past the end
    ("T12", "ABC9", rand_seq(60, 9), "1", "10"),  # 10 nt: not a multiple of 3
]
EXPECTED = {
    "row 3": ("missing_attribute", "dropped"),
    "T4": ("missing_attribute", "dropped"),
    "T1": ("duplicate_id", "dropped"),
    "T6": ("empty_sequence", "dropped"),
    "T7": ("invalid_characters", "dropped"),
    "T8": ("too_long", "dropped"),
    "T9": ("invalid_cds", "kept_without_cds"),
    "T10": ("invalid_cds", "kept_without_cds"),
    "T11": ("cds_outside_exons", "kept_without_cds"),
    "T12": ("cds_not_multiple_of_3", "kept_without_cds"),
}


def write_rows(path, rows, sep="\t", compress=False):
    text = sep.join(["tid", "gene", "cdna", "cds_s", "cds_e"]) + "\n" + "".join(sep.join(r) + "\n" for r in rows)
    path.write_bytes(gzip.compress(text.encode()) if compress else text.encode())


@pytest.fixture
def read(tmp_path):
    write_rows(tmp_path / "t.tsv", ROWS)
    transcripts, quarantine = read_annotation(table_annotation(cds=True), tmp_path, MAX_LENGTH)
    return transcripts.set_index("transcript_id"), quarantine


def test_every_malformed_row_is_quarantined_with_its_rule(read):
    transcripts, quarantine = read
    got = {record: (rule, action) for record, (rule, action, _) in rules_of(quarantine).items()}
    assert got == EXPECTED
    assert set(rules_of(quarantine)[r][2] for r in got) == {"t.tsv"}
    QUARANTINE.validate(quarantine)


def test_rows_are_conserved(read):
    transcripts, quarantine = read
    dropped = (quarantine["action"] == "dropped").sum()
    assert len(transcripts) + dropped == len(ROWS)
    assert sorted(transcripts.index) == ["T1", "T10", "T11", "T12", "T2", "T9"]
    assert transcripts.loc["T1", "seq"] == ROWS[0][2]  # the first row of a repeated id is the one kept


def test_sequence_gene_and_cds_read(read):
    transcripts, _ = read
    t2 = transcripts.loc["T2"]
    assert t2.seq == CODING  # lower-case RNA -> upper-case DNA
    assert (t2.cds_start, t2.cds_end, t2.cds_source) == (2, 128, "annotated")
    assert (t2.gene_id, t2.gene_name) == ("ABC1", "ABC1")  # a symbol, no gene map: the symbol is the gene
    t1 = transcripts.loc["T1"]
    assert (t1.gene_id, t1.gene_name, t1.cds_source) == ("ENSG00000000001.3", None, "none")
    assert all(pd.isna(transcripts.loc[t, "cds_start"]) for t in ("T9", "T10", "T11", "T12"))
    assert transcripts["exon_ends"].isna().all()
    TRANSCRIPTS.validate(transcripts.reset_index())


@pytest.mark.parametrize("sep,compress,name", [(",", False, "t.csv"), ("\t", True, "t.tsv.gz"), ("\t", True, "t.bin")])
def test_csv_and_gzip(tmp_path, sep, compress, name):
    write_rows(tmp_path / name, ROWS[:2], sep=sep, compress=compress)
    transcripts, quarantine = read_annotation(table_annotation(file=name, sep=sep), tmp_path, MAX_LENGTH)
    assert list(transcripts["transcript_id"]) == ["T1", "T2"] and quarantine.empty


def test_parquet(tmp_path):
    frame = pd.DataFrame(ROWS[:2], columns=["tid", "gene", "cdna", "cds_s", "cds_e"]).assign(cds_s=[None, 3])
    frame.to_parquet(tmp_path / "t.parquet")
    transcripts, _ = read_annotation(table_annotation(file="t.parquet", cds=True), tmp_path, MAX_LENGTH)
    assert list(transcripts["cds_start"].astype(object).where(transcripts["cds_start"].notna(), None)) == [None, 2]


def test_a_missing_column_names_the_columns(tmp_path):
    (tmp_path / "t.tsv").write_text("tid\tgene\tsequence\nT1\tG\tACGT\n")
    with pytest.raises(ValidationError, match=r"needs column\(s\) \['cdna'\]"):
        read_annotation(table_annotation(), tmp_path, MAX_LENGTH)


def test_gene_map_gives_symbols_their_ensembl_gene(tmp_path):
    write_rows(
        tmp_path / "t.tsv",
        [("ENST5.2", "OLD", "ACGT", "", ""), ("ENST9", "ABC1", "ACGT", "", ""), ("T3", "AMB", "ACGT", "", "")],
    )
    (tmp_path / "map.tsv").write_text(
        "entrez_id\tsymbol\tensembl_gene_ids\tensembl_transcript_ids\n"
        "1\tNEW\tENSG00000000300;ENSG00000000200\tENST5;ENST6\n"  # transcript id wins; smallest gene id
        "2\tABC1\tENSG00000000100\t\n"
        "3\tAMB\tENSG00000000400\t\n"
        "4\tAMB\tENSG00000000500\t\n"  # ambiguous symbol: not guessed
    )
    transcripts, _ = read_annotation(table_annotation(gene_map="map.tsv"), tmp_path, MAX_LENGTH)
    assert list(transcripts["gene_id"]) == ["ENSG00000000200", "ENSG00000000100", "AMB"]
    assert list(transcripts["gene_name"]) == ["OLD", "ABC1", "AMB"]
