"""The validate stage on tiny hand-made FASTA/GTF files with known answers."""

from __future__ import annotations

import gzip
import json
import random

import pandas as pd
import pandera.errors
import pyarrow
import pyarrow.parquet
import pytest

from isoclr.config import Annotation, Config
from isoclr.ingest import (
    PARQUET_SCHEMA,
    ValidateResult,
    ValidationError,
    read_annotation,
    validate,
)
from isoclr.schemas import QUARANTINE, TRANSCRIPTS

MAX_LENGTH = 1000


def rand_seq(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("ACGT") for _ in range(n))


def gtf_line(tid, start, end, strand="+", feature="exon", gene="G", frame=".", extra="") -> str:
    attrs = "".join(f'{k} "{v}"; ' for k, v in (("transcript_id", tid), ("gene_id", gene)) if v is not None)
    return f"chr1\ttest\t{feature}\t{start}\t{end}\t.\t{strand}\t{frame}\t{attrs}{extra}".rstrip() + "\n"


def fasta(records: dict[str, str] | list[tuple[str, str]]) -> str:
    items = records.items() if isinstance(records, dict) else records
    return "".join(f">{h}\n" + "".join(s[i : i + 10] + "\n" for i in range(0, len(s), 10)) for h, s in items)


def gtf_annotation(tmp_path, gtf_text: str, fasta_text: str, name="toy", gzip_fasta=False) -> Annotation:
    (tmp_path / f"{name}.gtf").write_text(gtf_text)
    fa = tmp_path / f"{name}.fa"
    fa.write_bytes(gzip.compress(fasta_text.encode()) if gzip_fasta else fasta_text.encode())
    return Annotation(
        name=name,
        format="gtf_transcript_fasta",
        gtf=f"{name}.gtf",
        fasta=f"{name}.fa",
        species="homo_sapiens",
        assembly="test",
    )


def gencode_annotation(tmp_path, fasta_text: str, name="gc", gzip_fasta=False) -> Annotation:
    fa = tmp_path / f"{name}.fa"  # deliberately no .gz suffix: gzip is told by magic bytes
    fa.write_bytes(gzip.compress(fasta_text.encode()) if gzip_fasta else fasta_text.encode())
    return Annotation(name=name, format="gencode_fasta", fasta=f"{name}.fa", species="homo_sapiens", assembly="GRCh38")


def gencode_header(tid, gene, length, extra="protein_coding|") -> str:
    return f"{tid}|{gene}|OTTHUMG1|OTTHUMT1|{tid}-201|NAME_{gene}|{length}|{extra}"


def make_config(annotations: list[Annotation], **limits) -> Config:
    return Config.model_validate(
        {
            "data": {"annotations": [a.model_dump() for a in annotations], "paralogs": "p.csv"},
            "validate": {"max_length": MAX_LENGTH, "min_transcripts": 1, "max_quarantine_fraction": 0.5, **limits},
            "probe": {"tasks": [{"name": "t", "file": "t.csv", "join": "gene_id", "id_column": "g", "target": "y"}]},
            "gate": {"rules": [{"task": "t", "min": 0.0}]},
        }
    )


def rules_of(quarantine: pd.DataFrame) -> dict[str, tuple[str, str, str]]:
    """record -> (rule, action, file name)."""
    return {r.record: (r.rule, r.action, r.file.rsplit("/", 1)[-1]) for r in quarantine.itertuples()}


# --------------------------------------------------------------------------
# GTF + transcript FASTA: structure and CDS
# --------------------------------------------------------------------------

# Plus strand: exons 101-110 and 201-215 (25 nt); CDS 105-110 + 201-209 crosses the
# junction, stop codon 210-212 -> transcript CDS [4, 22).
# Minus strand: exons 301-312 and 401-408 (20 nt); transcript order starts at 408.
# CDS 401-404 -> tx 4..7, 305-312 -> tx 8..15, stop 302-304 -> tx 16..18 -> [4, 19).
# Phase: CDS 602-630 with frame 2 -> first whole codon at tx 3 -> [3, 30).
GOOD_GTF = (
    "#!genome-build test\n"
    + gtf_line("TP", 101, 110, gene="GP", extra='gene_name "GENEP"; transcript_type "protein_coding";')
    + gtf_line("TP", 201, 215, gene="GP", extra='gene_name "GENEP";')
    + gtf_line("TP", 105, 110, feature="CDS", gene="GP", frame="0")
    + gtf_line("TP", 201, 209, feature="CDS", gene="GP", frame="0")
    + gtf_line("TP", 210, 212, feature="stop_codon", gene="GP", frame="0")
    + gtf_line("TM", 301, 312, "-", gene="GM")
    + gtf_line("TM", 302, 304, "-", feature="stop_codon", gene="GM", frame="0")
    + gtf_line("TM", 305, 312, "-", feature="CDS", gene="GM", frame="2")
    + gtf_line("TM", 401, 408, "-", gene="GM")
    + gtf_line("TM", 401, 404, "-", feature="CDS", gene="GM", frame="0")
    + gtf_line("TN", 501, 530, gene="GN", extra='gene_type "lncRNA";')
    + gtf_line("TF", 601, 630, gene="GF")
    + gtf_line("TF", 602, 630, feature="CDS", gene="GF", frame="2")
)
SEQS = {"TP": rand_seq(25, 1), "TM": rand_seq(20, 2), "TN": rand_seq(30, 3), "TF": rand_seq(30, 4)}


@pytest.fixture
def good(tmp_path):
    # TN is written lowercase RNA: accepted, stored as upper-case DNA.
    records = {**SEQS, "TN": SEQS["TN"].lower().replace("t", "u")}
    ann = gtf_annotation(tmp_path, GOOD_GTF, fasta(records))
    transcripts, quarantine = read_annotation(ann, tmp_path, MAX_LENGTH)
    return transcripts.set_index("transcript_id"), quarantine


def test_plus_strand_two_exons_cds_across_junction(good):
    transcripts, quarantine = good
    tp = transcripts.loc["TP"]
    assert quarantine.empty
    assert tp.seq == SEQS["TP"] and tp.length == 25
    assert list(tp.exon_ends) == [9, 24]
    assert (tp.cds_start, tp.cds_end) == (4, 22)
    assert (tp.gene_id, tp.gene_name, tp.biotype) == ("GP", "GENEP", "protein_coding")
    assert (tp.annotation, tp.species, tp.assembly) == ("toy", "homo_sapiens", "test")


def test_minus_strand_exons_reversed_and_cds_mapped(good):
    tm = good[0].loc["TM"]
    assert list(tm.exon_ends) == [7, 19]
    assert (tm.cds_start, tm.cds_end) == (4, 19)
    assert pd.isna(tm.gene_name) and pd.isna(tm.biotype)


def test_noncoding_lowercase_rna_accepted(good):
    tn = good[0].loc["TN"]
    assert tn.seq == SEQS["TN"]
    assert list(tn.exon_ends) == [29]
    assert pd.isna(tn.cds_start) and pd.isna(tn.cds_end)
    assert tn.biotype == "lncRNA"


def test_gtf_frame_moves_cds_start_to_first_whole_codon(good):
    tf = good[0].loc["TF"]
    assert (tf.cds_start, tf.cds_end) == (3, 30)


def test_output_matches_transcripts_schema(good):
    TRANSCRIPTS.validate(good[0].reset_index())
    QUARANTINE.validate(good[1])


def test_stop_codon_added_when_gtf_has_no_stop_codon_features(tmp_path):
    def coding(stop_after: str, last_codon: str = "AAA") -> str:
        # ATG at tx 3; CDS feature covers tx 3..23 (7 codons), then `stop_after`.
        return "CCC" + "ATG" + "GGC" * 4 + "CCA" + last_codon + stop_after + "GGG"

    seqs = {"TS": coding("TAA"), "TO": coding("CAA"), "TK": coding("TAA", last_codon="TAG")}
    gtf = "".join(gtf_line(t, 1, 30, gene=t) + gtf_line(t, 4, 24, feature="CDS", gene=t) for t in seqs)
    transcripts, quarantine = read_annotation(gtf_annotation(tmp_path, gtf, fasta(seqs)), tmp_path, MAX_LENGTH)
    cds = {t.transcript_id: (t.cds_start, t.cds_end) for t in transcripts.itertuples()}
    assert quarantine.empty
    assert cds["TS"] == (3, 27)  # the stop codon right after the CDS is part of it
    assert cds["TO"] == (3, 24)  # no stop follows: an open ORF is left as annotated
    assert cds["TK"] == (3, 24)  # the CDS already ends in a stop codon


def test_gzip_fasta_detected_by_magic_bytes(tmp_path):
    ann = gtf_annotation(tmp_path, GOOD_GTF, fasta(SEQS), gzip_fasta=True)
    transcripts, _ = read_annotation(ann, tmp_path, MAX_LENGTH)
    assert sorted(transcripts.transcript_id) == sorted(SEQS)


def test_gzip_gtf_detected_by_magic_bytes(tmp_path):
    ann = gtf_annotation(tmp_path, GOOD_GTF, fasta(SEQS))
    (tmp_path / "toy.gtf").write_bytes(gzip.compress(GOOD_GTF.encode()))
    transcripts, _ = read_annotation(ann, tmp_path, MAX_LENGTH)
    assert list(transcripts.set_index("transcript_id").loc["TM"].exon_ends) == [7, 19]


# --------------------------------------------------------------------------
# GTF + transcript FASTA: each quarantine rule
# --------------------------------------------------------------------------


@pytest.fixture
def bad(tmp_path):
    lines = [
        "#!genome-build test\n",  # line 1
        gtf_line("OK", 1, 20),  # line 2
        gtf_line("MS", 1, 20),  # 3: no FASTA record
        gtf_line("LM", 1, 20),  # 4: FASTA has 19 nt
        gtf_line("US", 1, 20, strand="."),  # 5
        gtf_line("OV", 101, 120) + gtf_line("OV", 115, 130),  # 6-7
        "# a comment in the middle\n",  # 8
        gtf_line(None, 1, 20),  # 9: no transcript_id
        gtf_line("NG", 1, 10) + gtf_line("NG", 21, 30, gene=None),  # 10-11: no gene_id on 11
        gtf_line("CN", 1, 20) + gtf_line("CN", 2, 11, feature="CDS"),  # CDS of 10 nt
        gtf_line("CO", 1, 20) + gtf_line("CO", 31, 40) + gtf_line("CO", 18, 33, feature="CDS"),  # CDS in the intron
        gtf_line("BC", 20, 1),
        gtf_line("IC", 1, 20),
        gtf_line("EM", 1, 20),
        gtf_line("DU", 1, 20),
        gtf_line("TL", 1, 2000),
        gtf_line("MX", 1, 10, strand="+") + gtf_line("MX", 21, 30, strand="-"),
    ]
    seqs = [
        ("OK", rand_seq(20, 0)),
        ("LM", rand_seq(19, 0)),
        ("US", rand_seq(20, 0)),
        ("OV", rand_seq(36, 0)),
        ("NG", rand_seq(20, 0)),
        ("CN", rand_seq(20, 0)),
        ("CO", rand_seq(30, 0)),
        ("BC", rand_seq(20, 0)),
        ("IC", "ACGTXACGTACGTACGTAC*"),
        ("EM", ""),
        ("DU", rand_seq(20, 5)),
        ("DU", rand_seq(20, 6)),
        ("MA", rand_seq(20, 0)),
        ("TL", rand_seq(2000, 0)),
        ("MX", rand_seq(20, 0)),
    ]
    ann = gtf_annotation(tmp_path, "".join(lines), fasta(seqs))
    transcripts, quarantine = read_annotation(ann, tmp_path, MAX_LENGTH)
    return transcripts.set_index("transcript_id"), quarantine


@pytest.mark.parametrize(
    "record, rule, action, file",
    [
        ("MS", "missing_sequence", "dropped", "toy.gtf"),
        ("MA", "missing_annotation", "dropped", "toy.fa"),
        ("LM", "length_mismatch", "dropped", "toy.gtf"),
        ("US", "unknown_strand", "dropped", "toy.gtf"),
        ("MX", "unknown_strand", "dropped", "toy.gtf"),
        ("OV", "overlapping_exons", "dropped", "toy.gtf"),
        ("line 9", "missing_attribute", "dropped", "toy.gtf"),
        ("NG", "missing_attribute", "dropped", "toy.gtf"),
        ("BC", "invalid_coordinates", "dropped", "toy.gtf"),
        ("IC", "invalid_characters", "dropped", "toy.fa"),
        ("EM", "empty_sequence", "dropped", "toy.fa"),
        ("DU", "duplicate_id", "dropped", "toy.fa"),
        ("TL", "too_long", "dropped", "toy.fa"),
        ("CN", "cds_not_multiple_of_3", "kept_without_cds", "toy.gtf"),
        ("CO", "cds_outside_exons", "kept_without_cds", "toy.gtf"),
    ],
)
def test_quarantine_rule_fires_with_file_record_and_rule(bad, record, rule, action, file):
    transcripts, quarantine = bad
    assert rules_of(quarantine)[record] == (rule, action, file)
    if action == "kept_without_cds":
        assert pd.isna(transcripts.loc[record].cds_start) and pd.isna(transcripts.loc[record].cds_end)
    elif record != "DU":  # a duplicate id keeps its first record
        assert record not in transcripts.index


def test_each_record_quarantined_once_and_survivors_kept(bad):
    transcripts, quarantine = bad
    assert not quarantine.record.duplicated().any()
    assert sorted(transcripts.index) == ["CN", "CO", "DU", "OK"]
    # duplicate id: the first record is kept
    assert transcripts.loc["DU"].seq == rand_seq(20, 5)
    QUARANTINE.validate(quarantine)


def test_quarantine_details_say_what_is_wrong(bad):
    detail = bad[1].set_index("record")["detail"]
    assert "19" in detail["LM"] and "20" in detail["LM"]
    assert "X" in detail["IC"] and "*" in detail["IC"]
    assert "line(s) 11" in detail["NG"]
    assert "1000" in detail["TL"]


def test_unreadable_gtf_names_the_file(tmp_path):
    ann = gtf_annotation(
        tmp_path, 'chr1\tt\texon\tone\t20\t.\t+\t.\ttranscript_id "A"; gene_id "G";\n', fasta({"A": "ACGT"})
    )
    with pytest.raises(ValidationError, match="toy.gtf"):
        read_annotation(ann, tmp_path, MAX_LENGTH)


def test_missing_file_names_the_file(tmp_path):
    ann = gencode_annotation(tmp_path, "")
    (tmp_path / "gc.fa").unlink()
    with pytest.raises(ValidationError, match="gc.fa.*not found"):
        read_annotation(ann, tmp_path, MAX_LENGTH)


# --------------------------------------------------------------------------
# GENCODE transcript FASTA
# --------------------------------------------------------------------------


@pytest.fixture
def gencode_records():
    return [
        (gencode_header("ENST1.1", "ENSG1.1", 15, "UTR5:1-3|CDS:4-15|"), "cccATGAAAuuuTAA"),
        (gencode_header("ENST2.1", "ENSG1.1", 12), rand_seq(12, 1)),
        (gencode_header("ENST3.1", "ENSG2.1", 50), rand_seq(40, 2)),  # truncated
        ("ENST4.1 no bars here", rand_seq(12, 3)),
        (gencode_header("ENST5.1", "ENSG3.1", 12, "CDS:2-12|"), rand_seq(12, 4)),  # 11 nt CDS
        (gencode_header("ENST6.1", "ENSG3.1", 12, "CDS:4-15|"), rand_seq(12, 5)),  # CDS past the end
        (gencode_header("ENST2.1", "ENSG1.1", 12), rand_seq(12, 6)),  # duplicate id
        (gencode_header("ENST7.1", "ENSG4.1", 12), "ACGTNNRYACGT"),
    ]


@pytest.mark.parametrize("gzipped", [False, True])
def test_gencode_fasta(tmp_path, gencode_records, gzipped):
    ann = gencode_annotation(tmp_path, fasta(gencode_records), gzip_fasta=gzipped)
    transcripts, quarantine = read_annotation(ann, tmp_path, MAX_LENGTH)
    kept = transcripts.set_index("transcript_id")
    assert sorted(kept.index) == ["ENST1.1", "ENST2.1", "ENST5.1", "ENST6.1"]
    first = kept.loc["ENST1.1"]
    assert first.seq == "CCCATGAAATTTTAA"
    assert (first.cds_start, first.cds_end) == (3, 15)
    assert (first.gene_id, first.gene_name, first.biotype) == ("ENSG1.1", "NAME_ENSG1.1", None)
    assert pd.isna(first.exon_ends)  # exons are unknown from a transcript FASTA alone
    assert kept.loc["ENST2.1"].biotype == "protein_coding"
    assert kept.loc["ENST2.1"].seq == rand_seq(12, 1)
    assert rules_of(quarantine) == {
        "ENST3.1": ("truncated_record", "dropped", "gc.fa"),
        "ENST4.1": ("malformed_header", "dropped", "gc.fa"),
        "ENST5.1": ("cds_not_multiple_of_3", "kept_without_cds", "gc.fa"),
        "ENST6.1": ("cds_outside_exons", "kept_without_cds", "gc.fa"),
        "ENST2.1": ("duplicate_id", "dropped", "gc.fa"),
        "ENST7.1": ("invalid_characters", "dropped", "gc.fa"),
    }
    assert pd.isna(kept.loc["ENST5.1"].cds_start)
    assert "50" in quarantine.set_index("record").loc["ENST3.1", "detail"]


# --------------------------------------------------------------------------
# The stage: outputs and stopping rules
# --------------------------------------------------------------------------


def test_validate_writes_tables_and_summary(tmp_path, gencode_records):
    anns = [gtf_annotation(tmp_path, GOOD_GTF, fasta(SEQS)), gencode_annotation(tmp_path, fasta(gencode_records))]
    out = tmp_path / "out"
    config = make_config(anns, max_quarantine_fraction=0.6)
    result = validate(config, tmp_path, out / "t.parquet", out / "q.tsv", out / "s.json")
    assert isinstance(result, ValidateResult)
    assert result.n_transcripts == 4 + 4
    assert result.n_quarantined == 6
    assert result.by_rule["truncated_record"] == 1
    assert result.to_dict()["by_rule"] == result.by_rule

    table = pyarrow.parquet.read_table(out / "t.parquet")
    assert table.schema.field("exon_ends").type == pyarrow.list_(pyarrow.int64())
    assert table.schema.field("cds_start").type == pyarrow.int64()
    frame = table.to_pandas().set_index("transcript_id")
    assert list(frame.loc["TM"].exon_ends) == [7, 19]
    assert frame.loc["ENST1.1"].exon_ends is None
    # Written while the schema checked it, the file holds the checked frame, down to the pandas dtypes it records.
    checked = TRANSCRIPTS.validate(frame.reset_index())
    checked = pyarrow.Table.from_pandas(checked, schema=PARQUET_SCHEMA, preserve_index=False)
    assert table.schema.pandas_metadata["columns"] == checked.schema.pandas_metadata["columns"]

    quarantine = pd.read_csv(out / "q.tsv", sep="\t")
    assert list(quarantine.columns) == ["file", "record", "rule", "detail", "action"]
    assert len(quarantine) == 6

    summary = json.loads((out / "s.json").read_text())
    assert summary["by_annotation"]["gc"]["by_rule"]["truncated_record"] == 1
    assert summary["by_annotation"]["toy"]["n_transcripts"] == 4
    assert summary["n_transcripts"] == 8


def test_empty_quarantine_still_has_header(tmp_path):
    ann = gtf_annotation(tmp_path, GOOD_GTF, fasta(SEQS))
    validate(make_config([ann]), tmp_path, tmp_path / "t.parquet", tmp_path / "q.tsv")
    assert (tmp_path / "q.tsv").read_text().strip() == "file\trecord\trule\tdetail\taction"


def test_duplicate_ids_across_annotation_sets(tmp_path):
    first = gtf_annotation(tmp_path, GOOD_GTF, fasta(SEQS), name="first")
    second = gtf_annotation(tmp_path, GOOD_GTF, fasta(SEQS), name="second")
    result = validate(
        make_config([first, second], max_quarantine_fraction=1.0), tmp_path, tmp_path / "t.parquet", tmp_path / "q.tsv"
    )
    assert result.n_transcripts == 4 and result.by_rule == {"duplicate_id": 4}
    quarantine = pd.read_csv(tmp_path / "q.tsv", sep="\t")
    assert set(quarantine.file.str.rsplit("/", n=1).str[-1]) == {"second.fa"}
    assert (pd.read_parquet(tmp_path / "t.parquet").annotation == "first").all()


def test_too_few_transcripts_stops_and_names_the_file(tmp_path, gencode_records):
    ann = gencode_annotation(tmp_path, fasta(gencode_records))
    stale = tmp_path / "t.parquet"
    stale.write_text("from an earlier run")
    with pytest.raises(ValidationError) as err:
        validate(make_config([ann], min_transcripts=10), tmp_path, stale, tmp_path / "q.tsv")
    message = str(err.value)
    assert "gc.fa" in message and "only 4 usable" in message and "min_transcripts" in message
    assert "truncated_record" in message
    assert not stale.exists()  # no stale table for the next stage to read
    assert len(pd.read_csv(tmp_path / "q.tsv", sep="\t")) == 6  # the report is written to look at


def test_large_quarantined_share_stops_and_names_the_rule(tmp_path):
    records = [(gencode_header(f"ENST{i}", "ENSG1", 40), rand_seq(30, i)) for i in range(6)]
    records += [(gencode_header("ENST9", "ENSG2", 30), rand_seq(30, 9))]
    ann = gencode_annotation(tmp_path, fasta(records))
    with pytest.raises(ValidationError, match=r"gc\.fa.*6 of 7.*max_quarantine_fraction.*truncated_record \(6\)"):
        validate(make_config([ann], max_quarantine_fraction=0.2), tmp_path, tmp_path / "t.parquet", tmp_path / "q.tsv")


def test_fasta_not_starting_with_a_header_is_an_error(tmp_path):
    ann = gtf_annotation(tmp_path, GOOD_GTF, "ACGTACGT\n" + fasta(SEQS))
    with pytest.raises(ValidationError, match="toy.fa.*'>'"):
        read_annotation(ann, tmp_path, MAX_LENGTH)


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
