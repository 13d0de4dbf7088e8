"""The fine-tune stage's table and curves: for people (Markdown, HTML, PNG) from finetune.json's numbers.

Pure functions of the summary :func:`isoclr.finetune.run` writes: one PNG per task with the paper's two
panels (Pearson r and MSE against the train fraction, pretrained against scratch, 95% CIs over seeds),
and a self-contained report.html (table and curves inlined), which the Kubeflow UI shows as it is.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from isoclr.artifacts import FINETUNE_PLOTS, FINETUNE_REPORT
from isoclr.report_plots import DPI, PANEL_SIZE
from isoclr.scores import ci_key

PRETRAINED = "pretrained"  # the trained encoder, fine-tuned
SCRATCH = "scratch"  # the same architecture from random weights, trained with the same budget
ARMS = (PRETRAINED, SCRATCH)
DIFFERENCE = f"{PRETRAINED}_minus_{SCRATCH}"  # paired, seed by seed
PANELS = (("pearson_r", "Pearson r (test)"), ("mse", "MSE (test)"))
METRICS = tuple(metric for metric, _ in PANELS)  # reported with CIs
DIGITS = 3
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}th{background:#f3f3f3}"
    "img{max-width:100%;border:1px solid #eee}"
)


def _fmt(entry: dict, metric: str, signed: bool = False) -> str:
    """``0.215 [0.102, 0.328]``; ``n/a`` for a metric that could not be computed."""
    mean = entry.get(metric)
    if mean is None:
        return "n/a"
    sign = "+" if signed else ""
    lo, hi = entry.get(ci_key(metric)) or (None, None)
    text = f"{mean:{sign}.{DIGITS}f}"
    return text if lo is None or hi is None else f"{text} [{lo:{sign}.{DIGITS}f}, {hi:{sign}.{DIGITS}f}]"


HEADER = [
    "task",
    "fraction",
    "n train",
    "r pretrained",
    "r scratch",
    "r pretrained - scratch",
    "MSE pretrained",
    "MSE scratch",
    "MSE pretrained - scratch",
]


def table_rows(data: dict) -> list[list[str]]:
    """One row per (task, fraction that ran): :data:`HEADER`; then one per skipped fraction."""
    rows = []
    for task, entry in data["tasks"].items():
        for fraction, arms in entry["fractions"].items():
            pre, scratch, diff = arms[PRETRAINED], arms[SCRATCH], arms[DIFFERENCE]
            rows.append(
                [
                    task,
                    fraction,
                    f"{pre['n_train']:.0f}",
                    _fmt(pre, "pearson_r"),
                    _fmt(scratch, "pearson_r"),
                    _fmt(diff, "pearson_r", signed=True),
                    _fmt(pre, "mse"),
                    _fmt(scratch, "mse"),
                    _fmt(diff, "mse", signed=True),
                ]
            )
        for fraction, reason in entry["skipped_fractions"].items():
            rows.append([task, fraction, "skipped", reason, *[""] * (len(HEADER) - 4)])
    return rows


def markdown_table(data: dict) -> str:
    """The compact table of every task and fraction: mean [95% CI] over seeds, paired differences."""
    seeds = data["settings"]["seeds"]
    lines = [
        f"Fine-tuning by train fraction: mean [95% CI] over {seeds} seeds; "
        "pretrained - scratch is paired (same split, subset, head init and data order).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(data)]
    return "\n".join(lines) + "\n"


def plot_task(task: str, entry: dict, path: Path) -> Path:
    """Two panels: Pearson r and MSE against the train fraction (log axis), pretrained and scratch, 95% CIs."""
    fractions = sorted(entry["fractions"], key=float)
    x = np.array([float(f) for f in fractions])
    n_train = [entry["fractions"][f][PRETRAINED]["n_train"] for f in fractions]
    fig = Figure(figsize=(PANEL_SIZE * 2.4, PANEL_SIZE), layout="constrained")
    for ax, (metric, label) in zip(fig.subplots(1, len(PANELS)), PANELS, strict=True):
        for arm in ARMS:
            values = [entry["fractions"][f][arm] for f in fractions]
            mean = np.array([np.nan if v[metric] is None else v[metric] for v in values], dtype=float)
            ci = np.array(
                [[np.nan if b is None else b for b in (v[ci_key(metric)] or [None, None])] for v in values], dtype=float
            ).reshape(len(values), 2)
            err = np.nan_to_num(np.vstack([mean - ci[:, 0], ci[:, 1] - mean]))
            ax.errorbar(x, mean, yerr=err, marker="o", capsize=3, label=arm)
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{f}\n({n:.0f})" for f, n in zip(fractions, n_train, strict=True)], fontsize="x-small")
        ax.minorticks_off()
        ax.set_xlabel("train fraction (train rows)", fontsize="small")
        ax.set_ylabel(label, fontsize="small")
        ax.legend(fontsize="x-small")
    fig.suptitle(f"{task}: fine-tuned pretrained encoder vs scratch, mean over seeds, 95% CI", fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def html_report(data: dict, plots: dict[str, Path]) -> str:
    """report.html: the table and every task's curves inlined (no external files)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table_rows(data))
    images = "".join(
        f"<h3>{html.escape(task)}</h3><img alt='{html.escape(task)} fine-tuning curves' "
        f"src='data:image/png;base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}'>"
        for task, path in plots.items()
    )
    settings = html.escape(", ".join(f"{k}={v}" for k, v in data["settings"].items()))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>IsoCLR fine-tuning</title>"
        f"<style>{_STYLE}</style></head><body><h1>Fine-tuning by train fraction</h1>"
        "<p>The pretrained encoder + head and the same network from random weights, trained end to end with "
        "the same splits, train subsets, head initialisation, data order and budget; early stopping on val; "
        f"scored on test. Mean [95% CI] over seeds; differences are paired. Device: {html.escape(data['device'])}, "
        f"{data['seconds']} s.</p><table><tr>{head}</tr>{body}</table>{images}"
        f"<p><small>Settings: {settings}</small></p></body></html>\n"
    )


def write_report(data: dict, out_dir: Path) -> str:
    """plots/<task>.png and report.html under ``out_dir``; returns the Markdown table."""
    out_dir = Path(out_dir)
    plots = {
        task: plot_task(task, entry, out_dir / FINETUNE_PLOTS / f"{task}.png") for task, entry in data["tasks"].items()
    }
    (out_dir / FINETUNE_REPORT).write_text(html_report(data, plots))
    return markdown_table(data)
