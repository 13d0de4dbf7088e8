"""The finetune stage: the arms start where they should, share splits and subsets, and every output is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isoclr import finetuning, stage
from isoclr.artifacts import FINETUNE_PER_SEED, FINETUNE_PLOTS, FINETUNE_REPORT, FINETUNE_SUMMARY, Paths
from isoclr.config import Config
from isoclr.embed import load_encoder, random_encoder
from isoclr.errors import IsoclrError
from isoclr.finetune import DIFFERENCE, PER_SEED_COLUMNS, nested_subsets
from isoclr.metrics import StageRun
from tests.conftest import tiny_params
from tests.helpers import save_encoder, synthetic_inputs, write_track_store

PNG_MAGIC = b"\x89PNG"


def _config(**finetune) -> Config:
    params = tiny_params()
    params["finetune"].update(
        dict(train_fractions=[1.0, 0.5, 0.05], seeds=2, max_epochs=2, batch_size=16, min_train_rows=8), **finetune
    )
    return Config.model_validate(params)


def test_subsets_are_nested_seeded_and_whole_at_fraction_one():
    train = np.arange(10, 110)
    subsets = nested_subsets(train, [1.0, 0.3, 0.1, 0.03], seed=0)
    np.testing.assert_array_equal(subsets[1.0], train)
    assert [len(subsets[f]) for f in (0.3, 0.1, 0.03)] == [30, 10, 3]
    assert set(subsets[0.03]) <= set(subsets[0.1]) <= set(subsets[0.3]) <= set(train)
    again = nested_subsets(train, [1.0, 0.3, 0.1, 0.03], seed=0)
    assert all(np.array_equal(subsets[f], again[f]) for f in subsets)
    assert not np.array_equal(subsets[0.3], nested_subsets(train, [0.3], seed=1)[0.3])


def test_tasks_must_be_declared_regression_probe_tasks():
    params = tiny_params()
    params["finetune"]["tasks"] = ["halflife", "nope"]
    with pytest.raises(ValueError, match="not declared under probe.tasks: \\['nope'\\]"):
        Config.model_validate(params)
    params["finetune"]["tasks"] = ["coding"]
    with pytest.raises(ValueError, match="must be regression tasks: \\['coding \\(classification\\)'\\]"):
        Config.model_validate(params)
    params["finetune"]["tasks"] = ["mrl"]
    params["finetune"]["train_fractions"] = [0.5, 0.1]
    with pytest.raises(ValueError, match="include 1"):
        Config.model_validate(params)


def test_no_cap_and_torch_threads_survive_the_kubeflow_round_trip():
    params = tiny_params()
    params["finetune"].update(max_rows="all", cpu_threads="auto")
    # Config.to_dict() drops nulls (kfp takes none): a null here would have come back as the default
    again = Config.model_validate(Config.model_validate(params).to_dict()).finetune
    assert (again.max_rows, again.cpu_threads) == ("all", "auto")
    params["finetune"]["max_rows"] = None
    with pytest.raises(ValueError, match="max_rows"):
        Config.model_validate(params)


def _state(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The stage on :func:`synthetic_inputs` with a stand-in trained model; every fit's starting point recorded.

    Run once for the tests that read it, on one torch thread (two thrash on a shared 2-core machine)."""
    import torch

    tmp_path = tmp_path_factory.mktemp("finetune")
    cfg = _config()
    t_path, g_path = synthetic_inputs(tmp_path)
    store = write_track_store((t_path, g_path))
    model_dir = save_encoder(cfg, 123, tmp_path / "model")  # not any scratch seed
    paths = Paths.under(tmp_path / "outputs", data_dir=tmp_path / "data").replace(
        transcripts=t_path, groups=g_path, model=model_dir, tracks=store
    )
    calls: list[dict] = []
    real = finetuning.fine_tune

    def recording(encoder, head, rows, y, fit, val, test, ft, seed, device=None):
        calls.append(
            {"encoder": _state(encoder), "head": _state(head), "fit": fit, "val": val, "test": test, "seed": seed}
        )
        return real(encoder, head, rows, y, fit, val, test, ft, seed=seed, device=device)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(finetuning, "fine_tune", recording)
            result = stage.run("finetune", cfg, paths)
    finally:
        torch.set_num_threads(threads)
    return cfg, paths, result, calls


@pytest.mark.slow
def test_the_arms_start_from_the_checkpoint_and_from_random_weights_on_the_same_rows(tiny_run):
    cfg, paths, _, calls = tiny_run
    checkpoint = _state(load_encoder(paths.model))
    per_seed = pd.read_csv(paths.finetune / FINETUNE_PER_SEED)
    assert len(calls) == len(per_seed) and len(calls) % 2 == 0
    for pretrained, scratch, row in zip(calls[::2], calls[1::2], per_seed.iloc[::2].itertuples(), strict=True):
        assert _same(pretrained["encoder"], checkpoint)  # every pretrained fit starts from the checkpoint itself
        random_init = _state(random_encoder(cfg.model, seed=cfg.train.seed + row.seed))
        assert _same(scratch["encoder"], random_init) and not _same(scratch["encoder"], checkpoint)
        assert _same(pretrained["head"], scratch["head"])  # the pair shares its head initialisation,
        for key in ("fit", "val", "test"):  # its split and train subset,
            np.testing.assert_array_equal(pretrained[key], scratch[key])
        assert pretrained["seed"] == scratch["seed"] == row.seed  # and its data order
    # the scratch arms of two seeds start from different random weights
    seeds = per_seed.iloc[1::2]["seed"].to_numpy()
    first = [c for c, s in zip(calls[1::2], seeds, strict=True) if s == 0][0]
    second = [c for c, s in zip(calls[1::2], seeds, strict=True) if s == 1][0]
    assert not _same(first["encoder"], second["encoder"])
    # within a task and seed the subsets are nested, and val / test stay put
    pretrained_calls = calls[::2]
    for (task, seed), rows in per_seed.iloc[::2].reset_index(drop=True).groupby(["task", "seed"]):
        fits = [pretrained_calls[i]["fit"] for i in rows.sort_values("train_fraction", ascending=False).index]
        assert all(set(small) <= set(large) for large, small in zip(fits, fits[1:], strict=False))
        assert len({tuple(pretrained_calls[i]["test"]) for i in rows.index}) == 1, (task, seed)


@pytest.mark.slow
def test_the_stage_writes_json_csv_plots_report_and_metrics(tiny_run):
    cfg, paths, result, _ = tiny_run
    out = paths.finetune
    data = json.loads((out / FINETUNE_SUMMARY).read_text())
    assert data == result.summary_data
    assert set(data["tasks"]) == {"halflife", "mrl"}
    for task, entry in data["tasks"].items():
        assert entry["fractions"], task
        for arms in entry["fractions"].values():
            assert set(arms) == {"pretrained", "scratch", DIFFERENCE}
            for arm in ("pretrained", "scratch"):
                assert {"pearson_r", "pearson_r_ci95", "mse", "mse_ci95", "n_train", "seeds"} <= set(arms[arm])
                assert arms[arm]["seeds"] == cfg.finetune.seeds
            assert arms[DIFFERENCE]["paired"] is True
        assert (out / FINETUNE_PLOTS / f"{task}.png").read_bytes().startswith(PNG_MAGIC)
    # 48 genes: ~34 train rows per seed, so 0.05 (2 rows) is skipped and said so; 0.5 (17) runs
    assert "0.05" in data["tasks"]["halflife"]["skipped_fractions"]
    assert "0.5" in data["tasks"]["halflife"]["fractions"]

    per_seed = pd.read_csv(out / FINETUNE_PER_SEED)
    assert list(per_seed.columns) == PER_SEED_COLUMNS
    assert set(per_seed["arm"]) == {"pretrained", "scratch"}
    counts = per_seed.groupby(["task", "train_fraction", "seed"])["n_train"].agg(["nunique", "size"])
    assert (counts["nunique"] == 1).all() and (counts["size"] == 2).all()  # the arms fit the same number of rows
    assert (per_seed["epochs"] <= cfg.finetune.max_epochs).all()
    assert (per_seed["best_epoch"] <= per_seed["epochs"]).all()
    # the paired difference is the mean of per-seed differences
    full = per_seed[(per_seed["task"] == "mrl") & (per_seed["train_fraction"] == 1.0)].pivot(
        index="seed", columns="arm", values="mse"
    )
    assert data["tasks"]["mrl"]["fractions"]["1.0"][DIFFERENCE]["mse"] == pytest.approx(
        (full["pretrained"] - full["scratch"]).mean()
    )

    report = (out / FINETUNE_REPORT).read_text()
    assert report.count("data:image/png;base64,") == 2 and "skipped" in report
    meter = StageRun(cfg.metrics, "finetune")
    result.record(meter)
    labels = {"task": "mrl", "arm": "pretrained", "fraction": "1.0", "metric": "pearson_r"}
    assert meter.registry.get_sample_value("isoclr_finetune_metric", labels) == pytest.approx(
        data["tasks"]["mrl"]["fractions"]["1.0"]["pretrained"]["pearson_r"]
    )
    assert result.flat_scores()["mrl.pretrained_minus_scratch.1.0.mse"] == pytest.approx(
        data["tasks"]["mrl"]["fractions"]["1.0"][DIFFERENCE]["mse"]
    )
    text = result.summary()
    assert "| mrl | 1.0 |" in text and "pretrained - scratch" in text and str(Path(out / FINETUNE_REPORT)) in text


def test_a_task_without_val_rows_fails_with_the_reason(tmp_path):
    params = tiny_params()
    params["probe"]["fractions"] = {"train": 0.85, "val": 0.0, "test": 0.15}
    params["finetune"].update(tasks=["mrl"], max_epochs=1)
    cfg = Config.model_validate(params)
    t_path, g_path = synthetic_inputs(tmp_path)
    model_dir = save_encoder(cfg, 123, tmp_path / "model")
    paths = Paths.under(tmp_path / "outputs", data_dir=tmp_path / "data").replace(
        transcripts=t_path, groups=g_path, model=model_dir
    )
    with pytest.raises(IsoclrError, match="early stopping needs val rows"):
        stage.run("finetune", cfg, paths, tracks=False)
    assert not paths.finetune.exists()  # nothing half-written at the output path
