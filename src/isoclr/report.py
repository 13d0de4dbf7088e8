"""The probe report: tables and plots for people (table.md, report.html, PNGs) and for tools (CSV).

Pure functions of what the probe stage (:func:`isoclr.probe.run`) computed: the
metrics dict (metrics.json, :mod:`isoclr.scores`), the per-task notes, the
per-seed table and the seed-0 predictions. The HTML report is self-contained
(plots inlined as base64 PNG), so the Kubeflow UI, a browser or an e-mail shows
it alone; the same PNGs go to ``plots/`` for ``dvc plots``.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from isoclr.artifacts import PROBE_LOW_DATA, PROBE_PLOTS, PROBE_REPORT, PROBE_TABLE
from isoclr.config import PRIMARY_METRIC, ProbeConfig
from isoclr.report_plots import fmt, plot_baselines, plot_low_data, plot_predictions, task_type
from isoclr.scores import (
    CANDIDATE,
    METRICS,
    MULTILABEL_METRICS,
    RECONSTRUCTION,
    SKIPPED_TERMS,
    TERMS,
    ci_key,
    model_entries,
    paired_entries,
    versus,
)
from isoclr.statistics import mean_ci

PLOTS = ("predicted_vs_measured", "low_data", "model_vs_baselines")
TABLE_CSV = "table.csv"  # results_table(): the numbers of table.md, for tools
# Figure geometry (inches) and marks.


# --------------------------------------------------------------------------- tables


def results_table(metrics: dict) -> pd.DataFrame:
    """One row per (task, model): mean and 95% CI bounds of each metric, n, train and test sizes (numbers)."""
    rows = []
    for task, by_model in metrics.items():
        for model, values in model_entries(by_model).items():
            row = {"task": task, "model": model}
            for metric in dict.fromkeys(m for task_metrics in METRICS.values() for m in task_metrics):
                if metric in values:
                    lo, hi = values.get(ci_key(metric)) or [None, None]
                    row.update({metric: values[metric], f"{metric}_lo": lo, f"{metric}_hi": hi})
            counts = ("n", "n_train", "n_test", "seeds", "alpha_at_bottom", "alpha_at_top")
            row.update({k: values.get(k) for k in counts})
            rows.append(row)
    return pd.DataFrame(rows)


def paired_table(metrics: dict, notes: dict) -> pd.DataFrame:
    """One row per (task, baseline): isoclr - baseline per seed, mean and 95% CI, for each metric."""
    rows = []
    for task, by_model in metrics.items():
        for baseline, values in paired_entries(by_model).items():
            row = {"task": task, "comparison": f"{CANDIDATE} - {baseline}", "seeds": values.get("seeds")}
            for metric in METRICS[task_type(notes, task)]:
                lo, hi = values.get(ci_key(metric)) or [None, None]
                row[metric] = fmt(values.get(metric), lo, hi, signed=True)
            rows.append(row)
    return pd.DataFrame(rows)


def objective_table(metrics: dict, notes: dict) -> pd.DataFrame:
    """Contrastive vs reconstruction, per task: the paired difference of the primary metric, its 95% CI and
    the verdict (beats / loses / within noise when the interval holds 0)."""
    rows = versus(metrics, RECONSTRUCTION, {task: task_type(notes, task) for task in metrics})
    return pd.DataFrame(
        [
            {
                "task": r["task"],
                "metric": r["metric"],
                f"{CANDIDATE} - {RECONSTRUCTION}": fmt(r["difference"], *(r["ci95"] or [None, None]), signed=True),
                "contrastive vs reconstruction": r["verdict"] or "n/a",
            }
            for r in rows
        ]
    )


def low_data_table(per_seed: pd.DataFrame, notes: dict) -> pd.DataFrame:
    """One row per (task, model, train fraction): mean train rows and the primary metric's mean and 95% CI."""
    rows = []
    for (task, model, fraction), seeds in per_seed.groupby(["task", "model", "train_fraction"], sort=False):
        metric = PRIMARY_METRIC[task_type(notes, task)]
        mean, lo, hi = mean_ci(seeds[metric])
        rows.append(
            {
                "task": task,
                "model": model,
                "train_fraction": fraction,
                "n_train": seeds["n_train"].mean(),
                "metric": metric,
                "mean": mean,
                "lo": lo,
                "hi": hi,
                "seeds": len(seeds),
            }
        )
    return pd.DataFrame(rows).sort_values(
        ["task", "model", "train_fraction"], ascending=[True, True, False], ignore_index=True
    )


def _display_results(metrics: dict, notes: dict) -> pd.DataFrame:
    rows = []
    for task, by_model in metrics.items():
        for model, values in model_entries(by_model).items():
            row = {"task": task, "model": model + (f" ({values['version']})" if "version" in values else "")}
            for metric in METRICS[task_type(notes, task)]:
                lo, hi = values.get(ci_key(metric)) or [None, None]
                row[metric] = fmt(values.get(metric), lo, hi)
            row.update(
                n=values.get("n"),
                n_train=f"{values.get('n_train', 0):.0f}",
                n_test=f"{values.get('n_test', 0):.0f}",
                seeds=values.get("seeds"),
            )
            rows.append(row)
    table = pd.DataFrame(rows)
    # A regression and a classification task share one table: a metric a task lacks reads as "-".
    return table.fillna("-")


def _display_low_data(low: pd.DataFrame) -> pd.DataFrame:
    if low.empty:
        return low
    wide = low.assign(value=[fmt(m, lo, hi) for m, lo, hi in zip(low["mean"], low["lo"], low["hi"], strict=True)])
    wide = wide.pivot_table(
        index=["task", "metric", "train_fraction"], columns="model", values="value", aggfunc="first", sort=False
    )
    n_train = low.groupby(["task", "metric", "train_fraction"], sort=False)["n_train"].first().round().astype(int)
    wide.insert(0, "n_train", n_train)
    wide = wide.sort_index(level=["task", "train_fraction"], ascending=[True, False])
    return wide.reset_index()


def _display_notes(notes: dict) -> pd.DataFrame:
    rows = []
    for task, note in notes.items():
        dropped = {
            k.removeprefix("dropped_"): note[k]
            for k in note
            if k.startswith("dropped_") and not k.endswith("_examples") and note[k]
        }
        rows.append(
            {
                "task": task,
                "type": note.get("type", "regression"),
                "labels": note.get("file", ""),
                "label rows": note.get("n_label_rows"),
                "used (n)": note.get("n"),
                "groups": note.get("n_groups"),
                "split": note.get("split_kind", ""),
                "tracks embedded": note.get("tracks", ""),
                "dropped": ", ".join(f"{k} {v}" for k, v in dropped.items()) or "-",
                "unmatched ids": note.get("unmatched", 0),
                "subsampled from": note.get("subsampled_from", "-"),
            }
        )
    return pd.DataFrame(rows)


def label_table(metrics: dict, notes: dict) -> pd.DataFrame:
    """One row per label of each multilabel task: id, name, genes holding it (GO, genome-wide), rows
    positive here, and each model's AUROC / AUPRC over the seeds that scored it; unscored: "n/a"."""
    rows = []
    for task, note in notes.items():
        if note.get("type") != "multilabel":
            continue
        described = {t["go_id"]: t for t in note.get("terms", [])}
        for label in note.get("labels", []):
            about = described.get(label, {})
            row = {
                "task": task,
                "label": label,
                "name": about.get("term", label),
                "genes (genome-wide)": about.get("n_genes", "-"),
                "positive rows": note.get("n_positive", {}).get(label, "-"),
            }
            for model, entry in model_entries(metrics.get(task, {})).items():
                values = entry.get(TERMS, {}).get(label, {})
                for metric in MULTILABEL_METRICS:
                    lo, hi = values.get(ci_key(metric)) or [None, None]
                    row[f"{model} {metric}"] = fmt(values.get(metric), lo, hi)
                if model == CANDIDATE:
                    row["seeds scored"] = values.get("seeds", 0)
            rows.append(row)
    return pd.DataFrame(rows)


def _skipped_labels(metrics: dict, notes: dict) -> list[str]:
    """Labels of multilabel tasks left out of the macro mean in some seed, and why (the candidate's splits;
    every model shares them)."""
    out = []
    for task, note in notes.items():
        if note.get("type") == "multilabel":
            skipped = (metrics.get(task, {}).get(CANDIDATE) or {}).get(SKIPPED_TERMS, {})
            for label, reason in skipped.items():
                out.append(f"{task}: label {label} not in the macro mean: {reason}.")
    return out


def _multilabel_text(notes: dict) -> str:
    tasks = [t for t, n in notes.items() if n.get("type") == "multilabel"]
    if not tasks:
        return ""
    go = [n["selection"] for n in notes.values() if "selection" in n]
    return (
        f"Multilabel tasks ({', '.join(tasks)}): one logistic probe per label, same penalty grid, seeds and splits; "
        "AUROC and AUPRC are macro means over the labels scored in each seed (a label with one class in the train or "
        "test rows of a seed is left out and listed under Remarks, never counted as 0.5)."
        + (" GO term selection: " + "; ".join(go) + "." if go else "")
    )


def protocol_text(probe_cfg: ProbeConfig) -> str:
    f = probe_cfg.fractions
    return (
        f"Linear probes on frozen features: ridge regression (Pearson r, Spearman r, MSE) or logistic "
        f"regression (AUROC, AUPRC). {probe_cfg.seeds} seeds, each a {f.train:g}/{f.val:g}/{f.test:g} "
        "train/val/test split by group (see *split* per task: homology group where genes are known); "
        "features standardised on the rows fitted; penalty chosen on the val split from "
        f"{len(probe_cfg.alphas)} values {probe_cfg.alphas[0]:g}..{probe_cfg.alphas[-1]:g} "
        "(logistic: C = 1/alpha); fitted on the train rows; scored on the test rows. "
        "Values are the mean over seeds [95% t-interval]. Baselines share the run and the splits: "
        "k-mer frequencies (k = "
        f"{probe_cfg.kmer_k}), the same encoder trained to reconstruct masked bases on the same data and "
        "budget (reconstruction), the same encoder randomly initialised and, when the registry has one, "
        "the current champion; *isoclr - baseline* is the paired difference seed by seed."
    )


def _remarks(metrics: dict, notes: dict, low: pd.DataFrame) -> list[str]:
    """Things a reader must know: skipped low-data points, edge penalties, empty tracks, the champion."""
    out = []
    for task, note in notes.items():
        for fraction, reason in note.get("skipped_fractions", {}).items():
            out.append(f"{task}: train fraction {fraction} skipped ({reason}).")
        for model, values in model_entries(metrics.get(task, {})).items():
            if values.get("alpha_at_bottom"):
                out.append(
                    f"{task} / {model}: the weakest penalty of the grid won in {values['alpha_at_bottom']} "
                    f"of {values.get('seeds')} seeds: the grid may be too narrow at the bottom."
                )
            if values.get("alpha_at_top"):
                out.append(
                    f"{task} / {model}: the strongest penalty of the grid won in {values['alpha_at_top']} "
                    f"of {values.get('seeds')} seeds: little linear signal there (predictions near the mean)."
                )
        if "sequence only" in note.get("tracks", ""):
            out.append(f"{task}: embedded from the sequence alone ({note['tracks']}).")
        if note.get("about"):
            out.append(f"{task}: {note['about']}")
    out += _skipped_labels(metrics, notes)
    first = next(iter(notes.values()), {})
    if first.get("champion_error"):
        out.append(f"The registry's champion could not be probed ({first['champion_error']}): the gate fails closed.")
    elif first.get("champion"):
        out.append(f"Champion {first['champion']} was probed on the same splits (model `champion`).")
    else:
        out.append("The registry has no champion yet: no champion comparison.")
    return out


# --------------------------------------------------------------------------- documents


def markdown_report(metrics: dict, notes: dict, low: pd.DataFrame, probe_cfg: ProbeConfig) -> str:
    """table.md: results, paired differences, low-data curves, label sets and remarks (Markdown)."""
    parts = [
        "# Linear probes",
        "",
        protocol_text(probe_cfg),
        "",
        "## Results (full train split)",
        "",
        _display_results(metrics, notes).to_markdown(index=False),
        "",
        "## Model vs baselines (paired, same splits)",
        "",
        paired_table(metrics, notes).fillna("-").to_markdown(index=False),
        "",
        "## Contrastive vs reconstruction (paired, primary metric; reported, not gated)",
        "",
        objective_table(metrics, notes).to_markdown(index=False),
        "",
        "## Low-data curves",
        "",
        _display_low_data(low).fillna("-").to_markdown(index=False),
        "",
        "## Label sets",
        "",
        _display_notes(notes).to_markdown(index=False),
        "",
        *_labels_markdown(metrics, notes),
        "## Remarks",
        "",
        *[f"- {r}" for r in _remarks(metrics, notes, low)],
    ]
    return "\n".join(parts) + "\n"


def _labels_markdown(metrics: dict, notes: dict) -> list[str]:
    labels = label_table(metrics, notes)
    if labels.empty:
        return []
    return ["## Multilabel tasks: labels", "", _multilabel_text(notes), "", labels.to_markdown(index=False), ""]


def _png_base64(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}th{background:#f3f3f3}"
    "img{max-width:100%;border:1px solid #eee}"
)


def html_report(metrics: dict, notes: dict, low: pd.DataFrame, probe_cfg: ProbeConfig, plots: dict[str, Path]) -> str:
    """report.html: the Markdown report's tables and the three plots inlined, no external files."""

    def table(frame: pd.DataFrame) -> str:
        return frame.fillna("-").to_html(index=False, border=0, escape=True)

    images = "".join(
        f"<h3>{html.escape(name.replace('_', ' '))}</h3>"
        f'<img alt="{html.escape(name)}" src="data:image/png;base64,{_png_base64(path)}">'
        for name, path in plots.items()
    )
    remarks = "".join(f"<li>{html.escape(r)}</li>" for r in _remarks(metrics, notes, low))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>IsoCLR linear probes</title>"
        f"<style>{_STYLE}</style></head><body><h1>Linear probes</h1><p>{html.escape(protocol_text(probe_cfg))}</p>"
        f"<h2>Results (full train split)</h2>{table(_display_results(metrics, notes))}"
        f"<h2>Model vs baselines (paired, same splits)</h2>{table(paired_table(metrics, notes))}"
        "<h2>Contrastive vs reconstruction (paired, primary metric; reported, not gated)</h2>"
        f"{table(objective_table(metrics, notes))}"
        f"<h2>Low-data curves</h2>{table(_display_low_data(low))}"
        f"<h2>Label sets</h2>{table(_display_notes(notes))}"
        f"{_labels_html(metrics, notes, table)}"
        f"<h2>Remarks</h2><ul>{remarks}</ul><h2>Plots</h2>{images}</body></html>\n"
    )


def _labels_html(metrics: dict, notes: dict, table) -> str:
    labels = label_table(metrics, notes)
    if labels.empty:
        return ""
    return f"<h2>Multilabel tasks: labels</h2><p>{html.escape(_multilabel_text(notes))}</p>{table(labels)}"


def write_report(
    metrics: dict,
    notes: dict,
    per_seed: pd.DataFrame,
    predictions: pd.DataFrame,
    probe_cfg: ProbeConfig,
    out_dir: Path,
) -> dict[str, Path]:
    """table.csv, low_data.csv, plots/*.png, table.md and report.html under ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    low = low_data_table(per_seed, notes)
    png = {name: out_dir / PROBE_PLOTS / f"{name}.png" for name in PLOTS}
    plots = {
        "predicted_vs_measured": plot_predictions(predictions, metrics, notes, png["predicted_vs_measured"]),
        "low_data": plot_low_data(low, png["low_data"]),
        "model_vs_baselines": plot_baselines(metrics, notes, png["model_vs_baselines"]),
    }
    paths = {
        "table_csv": out_dir / TABLE_CSV,
        "low_data_csv": out_dir / PROBE_LOW_DATA,
        "markdown": out_dir / PROBE_TABLE,
        "html": out_dir / PROBE_REPORT,
        **plots,
    }
    results_table(metrics).to_csv(paths["table_csv"], index=False)
    low.to_csv(paths["low_data_csv"], index=False)
    paths["markdown"].write_text(markdown_report(metrics, notes, low, probe_cfg))
    paths["html"].write_text(html_report(metrics, notes, low, probe_cfg, plots))
    return paths
