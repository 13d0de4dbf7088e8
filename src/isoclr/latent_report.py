"""The latent stage's report: the agreement table (Markdown, HTML), its bar chart, and one self-contained page.

Pure functions of what :func:`isoclr.latent.run` computed: ``scores`` (label set ->
entry, the shape of latent.json's ``labels``), the skipped label sets with the
reason, and the map PNGs. report.html inlines every PNG as base64, so the Kubeflow
UI, a browser, or the probe report embedding it shows it alone.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from isoclr.scores import CANDIDATE, RANDOM_INIT

AGREEMENT_PLOT = "agreement.png"
DIGITS = 3
DPI = 100
BAR_WIDTH = 0.27
COLOURS = {CANDIDATE: "#1f77b4", RANDOM_INIT: "#ff7f0e", "chance": "#999999"}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1300px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}th{background:#f3f3f3}"
    "img{max-width:100%;border:1px solid #eee}"
)


def _fmt(mean, ci=None, signed: bool = False) -> str:
    """``0.215 [0.102, 0.328]``; ``n/a`` for a number that could not be computed."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    sign = "+" if signed else ""
    text = f"{mean:{sign}.{DIGITS}f}"
    if not ci or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in ci):
        return text
    return f"{text} [{ci[0]:{sign}.{DIGITS}f}, {ci[1]:{sign}.{DIGITS}f}]"


def _p(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.2g}"


def agreement_table(scores: Mapping[str, dict]) -> pd.DataFrame:
    """One row per label set: rows, genes, model and random-init agreement (95% CI), chance, paired difference."""
    rows = []
    for label, entry in scores.items():
        diff = entry["difference"]
        rows.append(
            {
                "label set": label,
                "rows": entry["n"],
                "genes": entry["genes"],
                "isoclr": _fmt(entry[CANDIDATE]["mean"], entry[CANDIDATE]["ci95"]),
                "random init": _fmt(entry[RANDOM_INIT]["mean"], entry[RANDOM_INIT]["ci95"]),
                "chance": _fmt(entry["chance"]),
                "isoclr - random init": _fmt(diff["mean"], diff["ci95"], signed=True),
                "p": _p(diff["p_value"]),
                "verdict": verdict(diff),
            }
        )
    return pd.DataFrame(rows)


def verdict(diff: Mapping) -> str:
    """In words: whether the paired difference's CI excludes 0, and which way."""
    lo, hi = diff["ci95"]
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return "undetermined"
    if lo > 0:
        return "model better"
    if hi < 0:
        return "random init better"
    return "no significant difference"


def markdown(scores: Mapping[str, dict], skipped: Mapping[str, str], k: int, folds: int) -> str:
    """The agreement table as Markdown, with the skipped label sets and why."""
    lines = [
        f"kNN label agreement (k = {k}, own gene excluded; mean over {folds} folds, 95% CI, paired t-test)",
        "",
    ]
    table = agreement_table(scores)
    if len(table):
        cols = list(table.columns)
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    lines += [f"- {label} skipped: {reason}" for label, reason in skipped.items()]
    return "\n".join(lines) + "\n"


def plot_agreement(scores: Mapping[str, dict], path: Path) -> Path:
    """Bars of model, random-init and chance agreement per label set, with the model's and random init's 95% CI."""
    labels = list(scores)
    fig = Figure(figsize=(max(4.0, 1.4 * len(labels) + 1.5), 3.6), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for j, (name, title) in enumerate(((CANDIDATE, "isoclr"), (RANDOM_INIT, "random init"), ("chance", "chance"))):
        xs = [i + (j - 1) * BAR_WIDTH for i in range(len(labels))]
        if name == "chance":
            means, err = [scores[label]["chance"] for label in labels], None
        else:
            means = [scores[label][name]["mean"] for label in labels]
            cis = [scores[label][name]["ci95"] for label in labels]
            err = [
                [max(m - (c[0] if c[0] is not None else m), 0.0) for m, c in zip(means, cis, strict=True)],
                [max((c[1] if c[1] is not None else m) - m, 0.0) for m, c in zip(means, cis, strict=True)],
            ]
        ax.bar(xs, means, BAR_WIDTH, yerr=err, capsize=3, color=COLOURS[name], label=title)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("kNN label agreement")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Neighbours sharing the label: model vs random init (95% CI)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _png(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def html_page(
    scores: Mapping[str, dict],
    skipped: Mapping[str, str],
    terms: Mapping[str, list[dict]],
    figures: Mapping[str, Path],
    protocol: str,
) -> str:
    """report.html: the agreement table, the GO terms used, and every figure inlined (no external files).

    Args:
        terms: {GO label set: [{go_id, term, n_genes, share}, ...]}.
        figures: {title: PNG path}, in the order shown.
    """
    table = agreement_table(scores).to_html(index=False, border=0, escape=True) if scores else "<p>none</p>"
    skipped_html = "".join(f"<li>{html.escape(f'{k}: {v}')}</li>" for k, v in skipped.items())
    term_html = "".join(
        f"<h3>{html.escape(label)}</h3>"
        + pd.DataFrame(rows).to_html(index=False, border=0, escape=True, float_format=lambda x: f"{x:.3f}")
        for label, rows in terms.items()
        if rows
    )
    images = "".join(
        f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{_png(path)}'>"
        for title, path in figures.items()
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>IsoCLR latent space</title>"
        f"<style>{_STYLE}</style></head><body><h1>Latent space: model vs random init</h1>"
        f"<p>{html.escape(protocol)}</p><h2>kNN label agreement</h2>{table}"
        + (f"<h2>Skipped label sets</h2><ul>{skipped_html}</ul>" if skipped else "")
        + (f"<h2>GO terms used as labels</h2>{term_html}" if term_html else "")
        + f"<h2>Figures</h2>{images}</body></html>\n"
    )
