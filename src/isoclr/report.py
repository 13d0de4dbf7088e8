"""Tables and plots of probe results, for people (table.md, the PNG) and for tools (table.csv).

Pure functions of the metrics dict written by :func:`isoclr.probe.run_probes`
(``{task: {model: {metric, metric_ci95, n, ...}}}``), so the Kubeflow report
component can rebuild them from the stored metrics alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from isoclr.config import ProbeConfig

METRICS = ("pearson_r", "spearman_r", "mse")
# Inches per panel of the predicted-vs-measured grid.
PANEL_SIZE = 3.0
POINT_SIZE = 6
POINT_ALPHA = 0.5


def results_table(metrics: dict) -> pd.DataFrame:
    """One row per (task, model): mean and 95% CI bounds of each metric, n and the mean test size."""
    rows = []
    for task, models in metrics.items():
        for model, values in models.items():
            row = {"task": task, "model": model}
            for metric in METRICS:
                lo, hi = values.get(f"{metric}_ci95", [None, None])
                row[metric] = values.get(metric)
                row[f"{metric}_lo"] = lo
                row[f"{metric}_hi"] = hi
            row["n"] = values.get("n")
            row["n_test"] = values.get("n_test")
            rows.append(row)
    return pd.DataFrame(rows)


def _mean_ci(mean: float | None, lo: float | None, hi: float | None, digits: int = 3) -> str:
    if mean is None or pd.isna(mean):
        return "n/a"
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(hi - lo) / 2:.{digits}f}"


def markdown_report(table: pd.DataFrame, notes: dict, probe_cfg: ProbeConfig) -> str:
    """table.md: the results (mean ± half-width of the 95% CI over seeds) and what each label set lost."""
    lines = [
        "# Linear probes",
        "",
        f"Ridge probes on frozen features; {probe_cfg.seeds} group-disjoint splits "
        f"({probe_cfg.fractions.train:g}/{probe_cfg.fractions.val:g}/{probe_cfg.fractions.test:g}); "
        "alpha chosen on the val split, refit on train+val; mean ± half-width of the 95% t-interval over seeds.",
        "",
        "| task | model | pearson_r | spearman_r | mse | n | n_test |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples(index=False):
        cells = [_mean_ci(getattr(row, m), getattr(row, f"{m}_lo"), getattr(row, f"{m}_hi")) for m in METRICS]
        n_test = "n/a" if row.n_test is None or pd.isna(row.n_test) else f"{row.n_test:.0f}"
        lines.append(f"| {row.task} | {row.model} | {' | '.join(cells)} | {row.n} | {n_test} |")
    lines += [
        "",
        "## Label sets",
        "",
        "| task | file | label rows | used (n) | groups | split by | dropped NA | dropped non-numeric "
        "| duplicate ids | bad sequence | unmatched | subsampled from |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, note in notes.items():
        cells = [
            task,
            note.get("file", ""),
            note.get("n_label_rows", ""),
            note.get("n", ""),
            note.get("n_groups", ""),
            note.get("split_kind", ""),
            note.get("dropped_na", 0),
            note.get("dropped_non_numeric", 0),
            note.get("dropped_duplicate_ids", 0),
            note.get("dropped_bad_sequence", 0),
            note.get("unmatched", 0),
            note.get("subsampled_from", "-"),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def plot_predictions(predictions: pd.DataFrame, metrics: dict, path: Path) -> Path:
    """A grid of predicted-vs-measured scatters: one row per task, one column per model (seed 0 test rows)."""
    tasks = list(dict.fromkeys(predictions["task"]))
    models = list(dict.fromkeys(predictions["model"]))
    fig = Figure(figsize=(PANEL_SIZE * len(models), PANEL_SIZE * len(tasks)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(tasks), len(models), squeeze=False))
    for i, task in enumerate(tasks):
        for j, model in enumerate(models):
            ax = axes[i, j]
            rows = predictions[(predictions["task"] == task) & (predictions["model"] == model)]
            ax.scatter(rows["measured"], rows["predicted"], s=POINT_SIZE, alpha=POINT_ALPHA)
            r = metrics.get(task, {}).get(model, {}).get("pearson_r")
            r_text = "n/a" if r is None else f"{r:.3f}"
            ax.set_title(f"{task} / {model}\nr, mean over seeds = {r_text}", fontsize="small")
            ax.set_xlabel("measured")
            ax.set_ylabel("predicted")
    fig.suptitle("Predicted vs measured, test rows of seed 0")
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
