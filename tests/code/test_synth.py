"""`isoclr synth`: seeded, realistic shape, and ingest recovers exactly what it generated."""

from __future__ import annotations

import filecmp

import pandas as pd
import pytest
from typer.testing import CliRunner

from isoclr.cli import app
from isoclr.config import Annotation
from isoclr.ingest import read_annotation
from isoclr.pairs import read_paralogs
from isoclr.synth import synth

N = 1500
STOPS = ("TAA", "TAG", "TGA")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return synth(out, N, seed=3, gzip_gtf=True, bgzip_genome=True, truth=True)


@pytest.fixture(scope="module")
def ingested(generated):
    ann = Annotation(
        name="synth",
        format="gtf_genome_fasta",
        gtf=generated.gtf.name,
        genome=generated.genome.name,
        species="synthetic",
        assembly="synth3",
    )
    return read_annotation(ann, generated.gtf.parent, 10**6)


def test_ingest_recovers_every_generated_transcript(generated, ingested):
    transcripts, quarantine = ingested
    assert quarantine.empty
    truth = generated.truth.set_index("transcript_id")
    got = transcripts.set_index("transcript_id").loc[truth.index]
    assert (got.seq == truth.seq).all()
    assert (got.cds_start.fillna(-1) == truth.cds_start.fillna(-1)).all()
    assert (got.cds_end.fillna(-1) == truth.cds_end.fillna(-1)).all()
    assert all(list(a) == list(b) for a, b in zip(got.exon_ends, truth.exon_ends, strict=True))
    assert set(truth.strand) == {"+", "-"}


def test_coding_transcripts_start_with_atg_and_end_with_a_stop(ingested):
    coding = ingested[0].dropna(subset=["cds_start"])
    assert len(coding) > N / 5
    for seq, a, b in zip(coding.seq, coding.cds_start, coding.cds_end, strict=True):
        assert seq[a : a + 3] == "ATG" and seq[b - 3 : b] in STOPS and (b - a) % 3 == 0


def test_gencode_like_shape(generated, ingested):
    transcripts = ingested[0]
    assert generated.n_transcripts == len(transcripts) >= N
    isoforms = transcripts.groupby("gene_id").size()
    assert isoforms.min() == 1 and isoforms.max() <= 20 and 2.5 < isoforms.mean() < 4.5
    exons = transcripts.exon_ends.str.len()
    assert 4 < exons.mean() < 10 and (exons == 1).any() and exons.max() > 15
    assert 1000 < transcripts.length.median() < 3000
    assert 10 < generated.n_gtf_rows / generated.n_transcripts < 18  # GENCODE: ~14 lines per transcript
    assert {"protein_coding", "lncRNA", "retained_intron"} <= set(transcripts.biotype)


def test_paralog_pairs_name_genes_of_the_annotation(generated, ingested):
    pairs = read_paralogs(generated.paralogs)
    names = set(ingested[0].gene_name)
    assert len(pairs) > 10
    assert set(pairs.gene_A) <= names and set(pairs.gene_B) <= names


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a, b, c = (synth(tmp_path / d, 200, seed=s) for d, s in (("a", 1), ("b", 1), ("c", 2)))
    for name in ("annotation.gtf", "genome.fa", "genome.fa.fai", "paralog_pairs.csv"):
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False)
    assert not filecmp.cmp(a.gtf, c.gtf, shallow=False)


def test_synth_command(tmp_path):
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "s"), "--transcripts", "100", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "transcripts" in result.output
    assert pd.read_csv(tmp_path / "s" / "genome.fa.fai", sep="\t", header=None).shape[0] == 4


def test_planted_function_is_shared_by_family_and_leaves_gene_models_alone(tmp_path):
    """--plant: the same GTF as the unplanted world, codons intact, one label per gene, equal within a family
    (noise 0), family members with the same exon model."""
    from isoclr.synth import Plant

    plain = synth(tmp_path / "plain", 400, seed=5)
    planted = synth(tmp_path / "planted", 400, seed=5, plant=Plant(noise=0.0), truth=True)
    assert planted.gtf.read_bytes() == plain.gtf.read_bytes()
    assert planted.genome.read_bytes() != plain.genome.read_bytes()
    labels = pd.read_csv(planted.labels)
    assert labels["gene_id"].is_unique and len(labels) == planted.n_genes
    assert (labels.groupby("family")["label"].nunique() == 1).all()
    assert labels["family"].nunique() < len(labels)  # some families have several genes
    assert labels["label"].nunique() > 4
    truth = planted.truth
    coding = truth.dropna(subset=["cds_start"])
    for seq, a, b in zip(coding.seq, coding.cds_start, coding.cds_end, strict=True):
        assert seq[a : a + 3] == "ATG" and seq[b - 3 : b] in STOPS
    # Paralogs share the founder's exon model, so the motifs go to the same places of each member's longest isoform.
    longest = truth.assign(n=truth.seq.str.len()).sort_values("n").drop_duplicates("gene_id", keep="last")
    longest = longest.merge(labels, on="gene_id")
    family = longest[longest.duplicated("family", keep=False)].groupby("family")["seq"].agg(list)
    assert len(family) > 0
    for seqs in family:
        assert all(len(s) == len(seqs[0]) for s in seqs)  # same exon model
