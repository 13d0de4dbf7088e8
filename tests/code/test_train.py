"""The train stage on a tiny synthetic annotation: outputs, determinism, learning, sampling rules."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from isoclr import tracks
from isoclr.config import Config
from isoclr.models import ContrastiveModel
from isoclr.schemas import GROUPS, TRANSCRIPTS
from isoclr.train import (
    LOG_COLUMNS,
    PairSampler,
    batch_loss,
    lr_factor,
    make_loss,
    mask_bases,
    read_training_set,
    train,
    train_loop,
)
from tests.conftest import tiny_params

BASES = np.array(list("ACGT"))


def synthetic_annotation(seed: int = 0, n_genes: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """~40 transcripts of ``n_genes`` genes: isoforms skip exons of their gene, so they share sequence,
    and each gene has its own base composition (as real genes differ in GC content).

    Genes 0-1 and 2-3 are paralog families (one homology group each); gene 9 is in
    the test split; gene 4 has a single isoform.
    """
    rng = np.random.default_rng(seed)
    transcripts, groups = [], []
    for g in range(n_genes):
        composition = rng.dirichlet(np.full(4, 2.0))
        exons = ["".join(rng.choice(BASES, rng.integers(40, 160), p=composition)) for _ in range(5)]
        n_isoforms = 1 if g == 4 else 4 + g % 2
        skips = [None, 1, 2, 3, 1][:n_isoforms]
        for i, skip in enumerate(skips):
            used = [e for k, e in enumerate(exons) if k != skip]
            seq = "".join(used)
            ends = np.cumsum([len(e) for e in used]) - 1
            cds_start = len(used[0])
            cds_end = cds_start + 3 * ((len(seq) - cds_start - 20) // 3)
            transcripts.append(
                {
                    "transcript_id": f"T{g:02d}_{i}",
                    "gene_id": f"G{g:02d}",
                    "gene_name": f"GENE{g}",
                    "annotation": "synthetic",
                    "species": "homo_sapiens",
                    "assembly": "none",
                    "biotype": "protein_coding",
                    "seq": seq,
                    "length": len(seq),
                    "cds_start": cds_start if g % 3 else None,  # some transcripts have no CDS
                    "cds_end": cds_end if g % 3 else None,
                    "exon_ends": ends.tolist(),
                }
            )
            groups.append(
                {
                    "transcript_id": f"T{g:02d}_{i}",
                    "gene_id": f"G{g:02d}",
                    "gene_name": f"GENE{g}",
                    "n_isoforms": n_isoforms,
                    "homology_group": f"hg{min(g, 2 * (g // 2)) if g < 4 else g}",
                    "split": "test" if g == 9 else "train",
                }
            )
    return TRANSCRIPTS.validate(pd.DataFrame(transcripts)), GROUPS.validate(pd.DataFrame(groups))


def tiny_config(**train) -> Config:
    params = tiny_params()
    params["model"].update(stem_filters=8, stage_filters=[8, 8, 16, 16], projection_dims=[32, 16])
    params["train"].update(
        dict(steps=4, batch_genes=4, max_length=256, warmup_steps=1, learning_rate=0.003, seed=0), **train
    )
    return Config.model_validate(params)


@pytest.fixture
def tables(tmp_path):
    transcripts, groups = synthetic_annotation()
    paths = tmp_path / "transcripts.parquet", tmp_path / "groups.parquet"
    transcripts.to_parquet(paths[0])
    groups.to_parquet(paths[1])
    return paths


def test_train_writes_checkpoint_meta_and_log(tables, tmp_path, capsys):
    cfg = tiny_config()
    summary = train(cfg, *tables, tmp_path / "model", tmp_path / "log.csv", progress=False)

    assert summary["steps"] == 4 and summary["out_dim"] == 16 and summary["parameters"] > 0
    assert np.isfinite(summary["final_loss"])
    assert "parameters" in capsys.readouterr().out
    checkpoint = torch.load(tmp_path / "model" / "encoder.pt", weights_only=True)
    assert set(checkpoint) >= {
        "state_dict", "model_config", "channels", "isoclr_version", "train_config", "provenance", "final_loss",
    }
    assert all(not k.startswith("head") for k in checkpoint["state_dict"])  # encoder only
    assert checkpoint["model_config"] == cfg.model.model_dump(mode="json")
    assert checkpoint["channels"] == list(tracks.CHANNELS)
    meta = json.loads((tmp_path / "model" / "meta.json").read_text())
    assert "state_dict" not in meta and meta["final_loss"] == checkpoint["final_loss"]
    assert meta["train_config"]["steps"] == 4 and "git_commit" in meta["provenance"]
    log = pd.read_csv(tmp_path / "log.csv")
    assert tuple(log.columns) == LOG_COLUMNS
    assert log["step"].tolist() == [0, 1, 2, 3]
    assert (log["samples_per_s"] > 0).all() and log["loss"].notna().all()
    assert log["lr"].iloc[0] == pytest.approx(cfg.train.learning_rate)  # one warm-up step


def test_same_config_gives_same_weights(tables, tmp_path):
    cfg = tiny_config(steps=3)
    train(cfg, *tables, tmp_path / "a", tmp_path / "a.csv", progress=False)
    train(cfg, *tables, tmp_path / "b", tmp_path / "b.csv", progress=False)
    a = torch.load(tmp_path / "a" / "encoder.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "encoder.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = train(tiny_config(steps=3, seed=1), *tables, tmp_path / "c", tmp_path / "c.csv", progress=False)
    c = torch.load(tmp_path / "c" / "encoder.pt", weights_only=True)["state_dict"]
    assert not all(torch.equal(a[k], c[k]) for k in a), other


def test_loss_on_a_fixed_batch_decreases(tables):
    cfg = tiny_config(steps=30, batch_genes=8, warmup_steps=3, max_length=1024)
    table = read_training_set(*tables)
    fixed = PairSampler(table, cfg.train, np.random.default_rng(123)).sample()
    torch.manual_seed(0)
    model = ContrastiveModel(cfg.model)
    loss_fn = make_loss(cfg.train)
    model.eval()
    with torch.no_grad():
        before = batch_loss(model, loss_fn, *fixed).item()
    train_loop(model, PairSampler(table, cfg.train, np.random.default_rng(0)), cfg.train)
    model.eval()
    with torch.no_grad():
        after = batch_loss(model, loss_fn, *fixed).item()
    assert after < before - 1.0, (before, after)


def test_only_the_train_split_is_used(tables):
    table = read_training_set(*tables)
    assert "G09" not in set(table["gene_id"])
    assert table["gene_id"].nunique() == 9


def test_groups_naming_unknown_transcripts_is_an_error(tables, tmp_path):
    transcripts, groups = synthetic_annotation()
    transcripts.iloc[2:].to_parquet(tmp_path / "fewer.parquet")
    with pytest.raises(ValueError, match="rerun the pairs stage"):
        read_training_set(tmp_path / "fewer.parquet", tables[1])


def test_pairs_follow_the_sampling_rules(tables):
    table = read_training_set(*tables)
    gene = table["gene_id"].to_numpy()
    group = table["homology_group"].to_numpy()

    isoforms_only = PairSampler(table, tiny_config(paralog_share=0.0, batch_genes=9).train, np.random.default_rng(0))
    for _ in range(5):
        first, second, groups = isoforms_only.pairs()
        assert len(set(gene[first])) == 9  # distinct genes when there are enough
        assert (gene[first] == gene[second]).all()
        single = gene[first] == "G04"
        assert (first[single] == second[single]).all()  # single isoform pairs with itself
        assert (first[~single] != second[~single]).all()  # otherwise two distinct isoforms

    paralogs = PairSampler(table, tiny_config(paralog_share=1.0, batch_genes=9).train, np.random.default_rng(0))
    first, second, groups = paralogs.pairs()
    in_family = np.isin(gene[first], ["G00", "G01", "G02", "G03"])
    assert (gene[first][in_family] != gene[second][in_family]).all()  # the family's other gene
    assert (group[first] == group[second]).all()
    assert (gene[first][~in_family] == gene[second][~in_family]).all()  # no paralog: own isoforms
    # The group ids passed to the loss identify the homology group.
    assert len(set(groups[in_family])) == 2 and len(set(groups)) == 7


def test_views_are_cropped_masked_and_batched(tables):
    cfg = tiny_config(max_length=100, mask_prob=0.3, batch_genes=5).train
    x, lengths, groups = PairSampler(read_training_set(*tables), cfg, np.random.default_rng(0)).sample()
    assert x.shape[0] == 10 and groups.shape == (5,)
    assert x.shape[1] == len(tracks.CHANNELS) and x.shape[2] == int(lengths.max()) <= 100


def test_mask_bases_masks_a_share_of_positions_in_the_base_channels_only():
    rng = np.random.default_rng(0)
    track = np.zeros((6, 10_000), dtype=np.float32)
    track[rng.integers(0, 4, 10_000), np.arange(10_000)] = 1.0
    track[4, ::3] = 1.0
    masked = mask_bases(track, 0.15, rng)
    uniform = (masked[:4] == 0.25).all(axis=0)
    assert uniform.mean() == pytest.approx(0.15, abs=0.01)
    assert (masked[:4, ~uniform] == track[:4, ~uniform]).all()
    assert (masked[4:] == track[4:]).all()
    assert track.max() == 1.0 and (track[:4].sum(axis=0) == 1).all()  # input untouched


def test_lr_warms_up_then_decays_to_zero():
    factors = [lr_factor(s, 4, 20) for s in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    assert lr_factor(20, 4, 20) == pytest.approx(0.0)
    assert lr_factor(0, 0, 10) == 1.0
