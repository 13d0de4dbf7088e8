"""The shipped real sets (RNAlight cDNAs, DM3Loc labels) through validate, the gene join and the task joins."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from isoclr.config import load
from isoclr.ingest import read_annotation
from isoclr.pairs import build_groups, read_paralogs
from isoclr.tasks import task_table

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
RNALIGHT = DATA / "rnalight" / "rnalight_mrna_localization.tsv.gz"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not RNALIGHT.is_file(), reason="real sets not in data/ (run `dvc pull`)"),
]


@pytest.fixture(scope="module")
def world():
    cfg = load(ROOT / "params.yaml")
    read = [read_annotation(a, DATA, cfg.validate_.max_length) for a in cfg.data.annotations]
    sets = {a.name: r for a, r in zip(cfg.data.annotations, read, strict=True)}
    # As validate does: an id read by an earlier set is dropped from a later one.
    transcripts = pd.concat([t for t, _ in read], ignore_index=True).drop_duplicates("transcript_id")
    groups, summary = build_groups(transcripts, read_paralogs(DATA / cfg.data.paralogs), cfg.splits)
    return cfg, transcripts, sets, groups, summary


def test_rnalight_rows_are_conserved_and_their_cds_inferred(world):
    _, _, sets, _, _ = world
    mine, quarantine = sets["rnalight"]
    rows = len(pd.read_csv(RNALIGHT, sep="\t", usecols=["ensembl_transcript_id"]))
    assert len(mine) + (quarantine["action"] == "dropped").sum() == rows
    assert set(quarantine["rule"]) == {"too_long"}
    assert (mine["cds_source"] == "inferred").mean() > 0.9
    assert mine["gene_id"].str.startswith("ENSG").mean() > 0.98


def test_genes_of_gencode_and_rnalight_form_one_group(world):
    _, transcripts, _, groups, summary = world
    gencode = transcripts[transcripts["annotation"] == "gencode_v28_chr1p"]
    rnalight = transcripts[transcripts["annotation"] == "rnalight"]
    shared = set(gencode["gene_id"].str.replace(r"\.\d+$", "", regex=True)) & set(rnalight["gene_id"])
    assert len(shared) > 10
    gene_of = groups.set_index("transcript_id")["gene_id"]
    for gene in sorted(shared):
        ids = list(gencode.loc[gencode["gene_id"].str.startswith(gene + "."), "transcript_id"])
        ids += list(rnalight.loc[rnalight["gene_id"] == gene, "transcript_id"])
        assert set(gene_of[ids]) == {gene}
    assert summary.n_genes_in_several_sets >= len(shared)


def test_task_joins_report_counts_and_unmatched_ids(world):
    cfg, transcripts, _, groups, _ = world
    tasks = {t.name: t for t in cfg.probe.tasks}
    _, halflife = task_table(tasks["halflife"], DATA, transcripts, groups)
    assert 1600 < halflife["n"] < 1800
    assert halflife["n"] + halflife["unmatched"] == halflife["n_label_rows"]
    assert len(halflife["unmatched_examples"]) == 5
    table, localisation = task_table(tasks["localisation"], DATA, transcripts, groups)
    assert localisation["dropped_other_class"] == 16  # sources disagree
    # the unmatched are the cDNAs validate quarantined as too long
    assert localisation["n"] + localisation["unmatched"] + 16 == localisation["n_label_rows"]
    assert 0 < localisation["unmatched"] <= 25
    assert 0.4 < table["target"].mean() < 0.6
