"""The probe report's figures: predicted vs measured, low-data curves, model vs baselines (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from isoclr.config import PRIMARY_METRIC
from isoclr.scores import CANDIDATE, ci_key, model_entries, paired_entries

PANEL_SIZE = 3.0
POINT_SIZE = 6
POINT_ALPHA = 0.5
DPI = 100
HIST_BINS = 20
DIGITS = 3


def task_type(notes: dict, task: str) -> str:
    return notes.get(task, {}).get("type", "regression")


def fmt(mean, lo=None, hi=None, signed: bool = False) -> str:
    """``0.215 [0.102, 0.328]``; ``n/a`` for a metric that could not be computed."""
    if mean is None or pd.isna(mean):
        return "n/a"
    sign = "+" if signed else ""
    text = f"{mean:{sign}.{DIGITS}f}"
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return text
    return f"{text} [{lo:{sign}.{DIGITS}f}, {hi:{sign}.{DIGITS}f}]"


def plot_predictions(predictions: pd.DataFrame, metrics: dict, notes: dict, path: Path) -> Path:
    """One row per task, one column per model: predicted vs measured (regression) or scores by class."""
    tasks = list(dict.fromkeys(predictions["task"]))
    models = list(dict.fromkeys(predictions["model"]))
    fig = Figure(figsize=(PANEL_SIZE * len(models), PANEL_SIZE * len(tasks)), layout="constrained")
    axes = fig.subplots(len(tasks), len(models), squeeze=False)
    for i, task in enumerate(tasks):
        kind = task_type(notes, task)
        metric = PRIMARY_METRIC[kind]
        for j, model in enumerate(models):
            ax = axes[i, j]
            rows = predictions[(predictions["task"] == task) & (predictions["model"] == model)]
            if kind in ("classification", "multilabel"):  # multilabel: every (row, label) pooled
                for label, name in ((0, "negative"), (1, "positive")):
                    ax.hist(
                        rows.loc[rows["measured"] == label, "predicted"],
                        bins=HIST_BINS,
                        range=(0, 1),
                        alpha=POINT_ALPHA,
                        label=name,
                    )
                ax.set_xlabel("predicted P(positive)")
                ax.set_ylabel("test rows")
                ax.legend(fontsize="x-small")
            else:
                ax.scatter(rows["measured"], rows["predicted"], s=POINT_SIZE, alpha=POINT_ALPHA)
                ax.set_xlabel("measured")
                ax.set_ylabel("predicted")
            value = metrics.get(task, {}).get(model, {}).get(metric)
            ax.set_title(f"{task} / {model}\n{metric} (mean over seeds) = {fmt(value)}", fontsize="small")
    fig.suptitle("Predicted vs measured: test rows of seed 0, full train split")
    return save(fig, path)


def plot_low_data(low: pd.DataFrame, path: Path) -> Path:
    """One panel per task: the primary metric against train rows (log scale), a line per model, 95% CI bars."""
    tasks = list(dict.fromkeys(low["task"]))
    fig = Figure(figsize=(PANEL_SIZE * 1.4 * len(tasks), PANEL_SIZE), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        rows = low[low["task"] == task]
        for model, curve in rows.groupby("model", sort=False):
            curve = curve.sort_values("n_train")
            err = np.vstack([curve["mean"] - curve["lo"], curve["hi"] - curve["mean"]])
            ax.errorbar(curve["n_train"], curve["mean"], yerr=np.nan_to_num(err), marker="o", capsize=3, label=model)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short log axis overlap
        ax.set_xlabel("train rows")
        ax.set_ylabel(rows["metric"].iloc[0])
        ax.set_title(task, fontsize="small")
        ax.legend(fontsize="x-small")
    fig.suptitle("Low-data curves: mean over seeds, 95% CI")
    return save(fig, path)


def plot_baselines(metrics: dict, notes: dict, path: Path) -> Path:
    """One panel per task: each model's primary metric (95% CI), and isoclr - baseline paired (95% CI)."""
    tasks = list(metrics)
    fig = Figure(figsize=(PANEL_SIZE * 1.4 * len(tasks), PANEL_SIZE * 1.6), layout="constrained")
    axes = fig.subplots(2, len(tasks), squeeze=False)
    for j, task in enumerate(tasks):
        metric = PRIMARY_METRIC[task_type(notes, task)]
        for i, (entries, title) in enumerate(
            (
                (model_entries(metrics[task]), metric),
                (paired_entries(metrics[task]), f"{CANDIDATE} - baseline, {metric}"),
            )
        ):
            ax = axes[i, j]
            names = list(entries)
            means = np.array([entries[n].get(metric) if entries[n].get(metric) is not None else np.nan for n in names])
            ci = np.array(
                [
                    [v if v is not None else np.nan for v in (entries[n].get(ci_key(metric)) or [None, None])]
                    for n in names
                ]
            ).reshape(len(names), 2)
            err = np.nan_to_num(np.vstack([means - ci[:, 0], ci[:, 1] - means]))
            ax.errorbar(means, np.arange(len(names)), xerr=err, fmt="o", capsize=3)
            ax.set_yticks(np.arange(len(names)), names, fontsize="small")
            if i == 1:
                ax.axvline(0, color="grey", linewidth=1)
            ax.set_title(f"{task}: {title}", fontsize="small")
    fig.suptitle("Model vs baselines: mean over seeds, 95% CI (paired differences below)")
    return save(fig, path)


def save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path
