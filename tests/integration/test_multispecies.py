"""Multi-species training end to end: `isoclr synth --species 2` output read through the real stages.

The generated world, its params.yaml `data:` section (one annotation set per species, the ortholog
table), then validate -> encode -> pairs -> train as `dvc repro` runs them: every ortholog pair of the
table joins a homology group across species, no group straddles two splits, and training draws ortholog
positives (with the UTR/CDS swap on) and reports them in train.json.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from isoclr import stage
from isoclr.artifacts import Paths
from isoclr.config import Config
from isoclr.species import species
from isoclr.synth import Plant
from tests.conftest import tiny_params

pytestmark = pytest.mark.integration

TRANSCRIPTS = 300  # per species


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("multispecies")
    world = species(root / "world", TRANSCRIPTS, n_species=2, seed=3, plant=Plant())
    params = tiny_params()
    params["data"] = yaml.safe_load(world.params.read_text())["data"]
    params["validate"].update(max_length=10**6)
    params["train"].update(steps=6, ortholog_share=0.5, utr_cds_swap=1.0)
    cfg = Config.model_validate(params)
    paths = Paths.under(root / "out", data_dir=params["data"]["dir"])
    for name in ("validate", "encode", "pairs", "train"):
        stage.execute(name, cfg, paths)
    return root / "world", cfg, paths


def test_orthologs_join_groups_across_species_and_no_group_is_split(trained):
    world, cfg, paths = trained
    groups = pd.read_parquet(paths.groups)
    assert groups["species"].nunique() == 2
    table = pd.read_csv(world / cfg.data.orthologs.table, sep=cfg.data.orthologs.sep)
    gene_group = groups.drop_duplicates("gene_id").set_index("gene_id")["homology_group"]
    gene_split = groups.drop_duplicates("gene_id").set_index("gene_id")["split"]
    assert (gene_group[table["gene_A"]].to_numpy() == gene_group[table["gene_B"]].to_numpy()).all()
    assert (gene_split[table["gene_A"]].to_numpy() == gene_split[table["gene_B"]].to_numpy()).all()
    assert (groups.groupby("homology_group")["split"].nunique() == 1).all()
    partners = groups.drop_duplicates("gene_id").set_index("gene_id")["orthologs"].map(list)
    expected = pd.concat(
        [table.rename(columns={"gene_A": "a", "gene_B": "b"}), table.rename(columns={"gene_B": "a", "gene_A": "b"})]
    )
    expected = expected.groupby("a")["b"].agg(sorted)
    assert partners[expected.index].tolist() == expected.tolist()
    summary = json.loads(paths.pairs_summary.read_text())
    assert summary["n_ortholog_edges"] == len(table)
    assert sum(summary["ortholog_pairs_dropped"].values()) == 0


def test_training_draws_ortholog_positives_and_reports_them(trained):
    _, cfg, paths = trained
    summary = json.loads(paths.train_summary.read_text())
    counts = summary["pairs_by_type"]
    assert sum(counts.values()) == cfg.train.steps * cfg.train.batch_genes
    # Every train gene has an ortholog here, so about ortholog_share of the pairs are orthologs.
    share = counts["ortholog"] / sum(counts.values())
    n = sum(counts.values())
    assert abs(share - cfg.train.ortholog_share) < 4 * np.sqrt(0.25 / n)
    # Planted genes are coding about half the time: some ortholog pairs have a CDS on both sides.
    assert 0 < summary["utr_cds_swaps"] <= counts["ortholog"]
