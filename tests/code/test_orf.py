"""Longest-ORF CDS inference on hand-made sequences with known answers, and against annotated CDSs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isoclr.config import Annotation
from isoclr.ingest import orf as orf_module
from isoclr.ingest import read_annotation
from isoclr.ingest.orf import infer_cds, longest_orfs
from isoclr.schemas import TRANSCRIPTS
from tests.helpers import MAX_LENGTH, fasta, gencode_annotation, gencode_header

FILL = "GCC"  # no ATG and no stop in any frame of a run of it


def orf(n_codons: int, stop: str = "TAA") -> str:
    return "ATG" + FILL * n_codons + stop


def one(seq: str, min_length: int = 6) -> tuple[int, int]:
    starts, ends = longest_orfs(pd.Series([seq]), min_length)
    return int(starts[0]), int(ends[0])


def test_longest_of_several_orfs_in_different_frames():
    short, long_ = orf(3), orf(10, "TGA")
    seq = "CC" + short + "G" + long_ + "CA" + orf(5, "TAG")
    start = 2 + len(short) + 1
    assert one(seq) == (start, start + len(long_))


def test_nested_atg_does_not_beat_the_first_atg_of_its_orf():
    seq = "C" + "ATG" + FILL * 2 + "ATG" + FILL * 4 + "TAA"
    assert one(seq) == (1, len(seq))


def test_ties_go_to_the_first():
    seq = "C" + orf(4) + "CC" + orf(4)
    assert one(seq) == (1, 1 + len(orf(4)))


def test_no_orf():
    assert one("GCC" * 30) == (-1, -1)
    assert one("") == (-1, -1)


def test_atg_without_a_stop_is_no_orf():
    assert one("CC" + "ATG" + FILL * 50) == (-1, -1)
    # ... and does not hide a shorter complete ORF in another frame
    seq = "ATG" + FILL * 5 + "C" + orf(2) + FILL * 20
    assert one(seq) == (19, 19 + len(orf(2)))


def test_a_stop_before_the_atg_or_out_of_frame_does_not_end_it():
    seq = "TAA" + "ATG" + "GC" + "TAA" + "C" + FILL * 3 + "TGA"
    # ATG at 3; the TAA at 8 is out of frame; in frame: 6, 9, 12, ... -> the TGA at 22
    assert seq[21:24] == "TGA" and one(seq) == (3, 24)


def test_a_cds_that_reaches_the_end():
    seq = "GG" + orf(6, "TAG")
    assert one(seq) == (2, len(seq))


def test_min_length_counts_from_atg_to_the_end_of_the_stop():
    seq = "C" + orf(3)  # 15 nt
    assert one(seq, 15) == (1, 16)
    assert one(seq, 16) == (-1, -1)
    assert one("C" + orf(3) + "C" + orf(8), 16) == (17, 17 + len(orf(8)))


def test_rna_and_lower_case_are_read():
    assert one("cc" + orf(4).lower().replace("t", "u")) == (2, 2 + len(orf(4)))


def test_transcripts_do_not_run_into_each_other(monkeypatch):
    """Sequences are scanned end to end, in chunks: a stop of the next transcript never ends an ORF."""
    seqs = pd.Series(["CCATGGCC", "TAAGCC", orf(2), "AT", "GTAA"])
    starts, ends = longest_orfs(seqs, 6)
    assert starts.tolist() == [-1, -1, 0, -1, -1] and ends.tolist() == [-1, -1, 12, -1, -1]
    monkeypatch.setattr(orf_module, "CHUNK_BASES", 5)
    assert longest_orfs(seqs, 6)[0].tolist() == starts.tolist()


def test_matches_a_brute_force_scan_on_random_sequences():
    rng = np.random.default_rng(3)
    # T-poor sequences too: stops are rare there, so some frames have none after an ATG.
    seqs = [
        "".join(rng.choice(list("ACGT"), int(n), p=p))
        for p in ([0.25] * 4, [0.3, 0.3, 0.3, 0.1])
        for n in rng.integers(0, 400, 200)
    ]
    starts, ends = longest_orfs(pd.Series(seqs), 30)
    for seq, s, e in zip(seqs, starts, ends, strict=True):
        best = (-1, -1)
        for i in range(len(seq) - 2):
            if seq[i : i + 3] != "ATG":
                continue
            j = next((j for j in range(i, len(seq) - 2, 3) if seq[j : j + 3] in ("TAA", "TAG", "TGA")), None)
            if j is not None and j + 3 - i >= 30 and j + 3 - i > best[1] - best[0]:
                best = (i, j + 3)
        assert (s, e) == best, seq


def test_infer_cds_fills_only_missing_cds_and_marks_it_inferred(tmp_path):
    coding, known = "CC" + orf(5) + "GG", "A" + orf(2) + orf(7)
    records = [
        (gencode_header("ENST1", "ENSG1", len(known), "CDS:2-13|"), known),
        (gencode_header("ENST2", "ENSG2", len(coding)), coding),
        (gencode_header("ENST3", "ENSG3", 30), "GCC" * 10),
    ]
    ann = gencode_annotation(tmp_path, fasta(records))
    plain, _ = read_annotation(ann, tmp_path, MAX_LENGTH)
    assert plain["cds_source"].tolist() == ["annotated", "none", "none"]
    inferring = Annotation(**{**ann.model_dump(), "cds": "longest_orf", "min_orf_length": 6})
    got, _ = read_annotation(inferring, tmp_path, MAX_LENGTH)
    assert got["cds_source"].tolist() == ["annotated", "inferred", "none"]
    assert (got.loc[0, "cds_start"], got.loc[0, "cds_end"]) == (1, 13)  # the annotated CDS stays, though shorter
    assert (got.loc[1, "cds_start"], got.loc[1, "cds_end"]) == (2, 2 + len(orf(5)))
    assert pd.isna(got.loc[2, "cds_start"])
    TRANSCRIPTS.validate(got)
    assert infer_cds(got, 6).equals(got)


CUFFLINKS = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.skipif(not (CUFFLINKS / "cufflinks_hg19_chr1_isoforms.gtf.gz").is_file(), reason="sample data not pulled")
def test_agrees_with_the_annotated_cds_of_the_cufflinks_sample():
    """Every annotated CDS that is a complete ORF (ATG to stop; 95% of them) is found exactly when no length
    floor applies; the rest run to the transcript's end (3'-incomplete), which no ORF can match."""
    ann = Annotation(
        name="cuff",
        format="gtf_transcript_fasta",
        gtf="cufflinks_hg19_chr1_isoforms.gtf.gz",
        fasta="cufflinks_hg19_chr1_isoforms.fa.gz",
        species="homo_sapiens",
        assembly="hg19",
    )
    transcripts, _ = read_annotation(ann, CUFFLINKS, 10**9)
    coding = transcripts[transcripts["cds_start"].notna()]
    starts, ends = longest_orfs(coding["seq"], 3)
    same = (starts == coding["cds_start"].to_numpy(int)) & (ends == coding["cds_end"].to_numpy(int))
    complete = np.array(
        [
            s[e - 3 : e] in ("TAA", "TAG", "TGA")
            for s, e in zip(coding["seq"], coding["cds_end"].astype(int), strict=True)
        ]
    )
    assert len(coding) > 1000
    assert same[complete].all()
    assert not same[~complete].any()
