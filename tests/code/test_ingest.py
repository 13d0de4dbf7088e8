"""The validate stage on tiny hand-made FASTA/GTF files with known answers."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from isoclr.errors import IsoclrError
from isoclr.ingest import GenomeError, ValidationError, open_text, parse_gencode_header, read_annotation
from isoclr.schemas import QUARANTINE, TRANSCRIPTS
from tests.helpers import (
    GOOD_GTF,
    MAX_LENGTH,
    SEQS,
    fasta,
    gencode_annotation,
    gencode_header,
    gencode_records,
    gtf_annotation,
    gtf_line,
    rand_seq,
    rules_of,
)


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


@pytest.mark.parametrize("gzipped", [False, True])
def test_gencode_fasta(tmp_path, gzipped):
    ann = gencode_annotation(tmp_path, fasta(gencode_records()), gzip_fasta=gzipped)
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


def test_fasta_not_starting_with_a_header_is_an_error(tmp_path):
    ann = gtf_annotation(tmp_path, GOOD_GTF, "ACGTACGT\n" + fasta(SEQS))
    with pytest.raises(ValidationError, match="toy.fa.*'>'"):
        read_annotation(ann, tmp_path, MAX_LENGTH)


# --------------------------------------------------------------------------
# The public readers embedding uses
# --------------------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [False, True])
def test_open_text_reads_plain_or_gzip_whatever_the_name(tmp_path, gzipped):
    path = tmp_path / "records.txt"  # no .gz suffix either way
    path.write_bytes(gzip.compress(b">a\nACGT\n") if gzipped else b">a\nACGT\n")
    with open_text(path) as fh:
        assert fh.read() == ">a\nACGT\n"


def test_parse_gencode_header_gives_cds_half_open_and_says_why_a_header_is_malformed():
    parsed = parse_gencode_header(gencode_header("ENST1.1", "ENSG1.1", 15, "UTR5:1-3|CDS:4-15|lncRNA|"))
    assert parsed["malformed"] is None
    assert (parsed["gene_id"], parsed["gene_name"], parsed["header_length"]) == ("ENSG1.1", "NAME_ENSG1.1", 15)
    assert (parsed["cds_start"], parsed["cds_end"], parsed["biotype"]) == (3, 15, "lncRNA")
    assert "ENST|ENSG" in parse_gencode_header("ENST4.1 no bars here")["malformed"]


def test_ingest_errors_are_project_errors():
    assert issubclass(ValidationError, IsoclrError) and issubclass(GenomeError, IsoclrError)
