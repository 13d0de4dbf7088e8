"""Expectations on the real sample annotations in data/ (GENCODE v28 chr1p, Cufflinks hg19 chr1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from Bio.SeqIO.FastaIO import SimpleFastaParser

from isoclr import stage
from isoclr.alphabet import STOP_CODONS
from isoclr.artifacts import Paths
from isoclr.config import load
from isoclr.ingest import read_annotation
from isoclr.store import TrackStore, write_store
from isoclr.tracks import encode_row

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
PARAMS = ROOT / "params.yaml"
GENCODE = "gencode_v28_chr1p_transcripts.fa"
CUFFLINKS_GTF = "cufflinks_hg19_chr1_isoforms.gtf.gz"
CUFFLINKS_FASTA = "cufflinks_hg19_chr1_isoforms.fa.gz"
NO_LIMIT = 10**9  # read every record, whatever its length

pytestmark = pytest.mark.skipif(
    not all((DATA / f).is_file() for f in (GENCODE, CUFFLINKS_GTF, CUFFLINKS_FASTA)),
    reason="sample data not in data/ (run `dvc pull`)",
)


def annotation(name):
    return next(a for a in load(PARAMS).data.annotations if a.name == name)


@pytest.fixture(scope="module")
def gencode():
    return read_annotation(annotation("gencode_v28_chr1p"), DATA, NO_LIMIT)


@pytest.fixture(scope="module")
def cufflinks():
    return read_annotation(annotation("cufflinks_hg19_chr1"), DATA, NO_LIMIT)


def test_gencode_sample_keeps_all_but_the_truncated_last_record(gencode):
    transcripts, quarantine = gencode
    with (DATA / GENCODE).open() as fh:
        last_header = list(SimpleFastaParser(fh))[-1][0]
    last_id = last_header.split("|")[0]
    assert last_id == "ENST00000471347.5"
    assert len(transcripts) == 1831
    assert quarantine[["record", "rule", "action"]].values.tolist() == [[last_id, "truncated_record", "dropped"]]
    assert quarantine.file.iloc[0].endswith(GENCODE)
    assert transcripts.transcript_id.str.startswith("ENST").all()
    assert transcripts.gene_id.str.startswith("ENSG").all()
    assert transcripts.gene_id.nunique() == 485
    assert transcripts.biotype.notna().all() and transcripts.exon_ends.isna().all()


def test_gencode_sample_too_long_under_params_limit():
    max_length = load(PARAMS).validate_.max_length
    transcripts, quarantine = read_annotation(annotation("gencode_v28_chr1p"), DATA, max_length)
    too_long = quarantine[quarantine.rule == "too_long"]
    assert len(transcripts) + len(too_long) == 1831
    assert transcripts.length.max() <= max_length


def test_cufflinks_sample_exons_agree_with_fasta_lengths(cufflinks):
    transcripts, quarantine = cufflinks
    assert quarantine.empty, quarantine.rule.value_counts().to_dict()
    assert len(transcripts) == 1092
    assert transcripts.exon_ends.notna().all()
    # GTF exon lengths sum to the FASTA length: the last exon ends at the last nt.
    assert all(ends[-1] + 1 == n for ends, n in zip(transcripts.exon_ends, transcripts.length, strict=True))
    assert all(list(ends) == sorted(ends) for ends in transcripts.exon_ends)
    assert transcripts.exon_ends.map(len).max() > 1


def test_cufflinks_sample_cds_is_a_reading_frame(cufflinks):
    """Strand-aware CDS mapping checked by biology: ATG start, whole codons, no early stop."""
    transcripts, _ = cufflinks
    coding = transcripts[transcripts.cds_start.notna()]
    assert len(coding) == 1078
    starts = [s[a : a + 3] for s, a in zip(coding.seq, coding.cds_start, strict=True)]
    assert starts.count("ATG") == len(coding)
    assert ((coding.cds_end - coding.cds_start) % 3 == 0).all()
    early_stops = sum(
        any(s[i : i + 3] in STOP_CODONS for i in range(a, b - 3, 3))
        for s, a, b in zip(coding.seq, coding.cds_start, coding.cds_end, strict=True)
    )
    assert early_stops == 0
    # The GTF has no stop_codon features; the stop codon is added where the sequence has one.
    ending_in_stop = sum(s[b - 3 : b] in STOP_CODONS for s, b in zip(coding.seq, coding.cds_end, strict=True))
    assert ending_in_stop / len(coding) > 0.9


def test_validate_on_sample_config(tmp_path):
    cfg = load(PARAMS)
    result = stage.run("validate", cfg, Paths.under(tmp_path, data_dir=DATA))
    # max_length 12288: 8 sample transcripts and 25 RNAlight cDNAs are too long; 2 RNAlight ids repeat GENCODE's
    assert result.by_rule == {"too_long": 33, "truncated_record": 1, "duplicate_id": 2}
    assert (result.n_transcripts, result.n_quarantined) == (4648, 36)


def test_track_store_of_the_sample_equals_the_encoding_of_every_row(tmp_path):
    paths = Paths.under(tmp_path, data_dir=DATA)
    stage.run("validate", load(PARAMS), paths)
    summary = write_store(paths.transcripts, tmp_path / "tracks", shard_bytes=1 << 20)
    table = pd.read_parquet(paths.transcripts)
    store = TrackStore(tmp_path / "tracks")
    assert summary.n_bytes == table.length.sum() and len(summary.shards) > 1
    assert store.ids == table.transcript_id.tolist()
    for row in table.itertuples():
        np.testing.assert_array_equal(store.tracks(row.transcript_id), encode_row(row._asdict()))
