"""Latent-space maps: t-SNE and UMAP of frozen embeddings, model and random init side by side, as PNG.

The picture shows *where* structure is; :mod:`isoclr.neighbours` gives the
number that says whether it is there. Rows are L2-normalised before
projecting, so both methods see cosine geometry, as the kNN agreement does.

Libraries, chosen by measuring 2,000 and 5,000 x 128 embeddings on the 2-core
build machine (benchmarks/maps.py): openTSNE (20-35% less CPU than
scikit-learn's TSNE at the same silhouette) and umap-learn (the maintained
UMAP). Both are imported when first used, so plotting alone or t-SNE alone does
not load numba and pynndescent; umap-learn JIT-compiles its layout code at its
first fit in every process (~18 s of CPU), which tests and budgets must allow for.

Projections are computed once per (method, model) by :func:`project_all` and
drawn by :func:`plot_maps` for as many label columns as wanted (GO root terms
of BP, MF, CC; family; biotype).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

METHODS = ("tsne", "umap")
TITLES = {"tsne": "t-SNE", "umap": "UMAP"}
OTHER = "other"
UNLABELLED = "unlabelled"
PERPLEXITY = 30
UMAP_NEIGHBOURS = 15
UMAP_MIN_DIST = 0.1
# Colours of the most common categories (18 distinct, none grey); the rest are "other" in grey.
MAX_CATEGORIES = 10
# Rows mapped at most (a seeded subsample beyond). Below 4,096 rows umap-learn finds neighbours exactly;
# from 4,096 it JIT-compiles pynndescent in every new process (measured: 53 s of CPU at 5,000 rows vs 18 s).
MAX_POINTS = 4000
# openTSNE threads: on the shared 2-core machine 2 threads took 5x the CPU time of 1 (and longer wall time),
# spinning while they wait for each other; pass more on a machine of one's own.
THREADS = 1
# Legend width per character of its longest entry at 8 pt, and for the marker and padding (inches).
LEGEND_INCH_PER_CHAR = 0.072
LEGEND_MARKER_IN = 0.5
_GREY = (0.6, 0.6, 0.6, 0.5)
_LIGHT = (0.85, 0.85, 0.85, 0.4)


def _unit(emb: np.ndarray) -> np.ndarray:
    x = np.asarray(emb, dtype=np.float64)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"embeddings must be (n >= 3, d), got {x.shape}")
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def tsne(emb: np.ndarray, seed: int = 0, threads: int = THREADS) -> np.ndarray:
    """(n, d) embeddings -> (n, 2) openTSNE coordinates (PCA init, perplexity 30 or less for tiny n)."""
    from openTSNE import TSNE

    x = _unit(emb)
    perplexity = min(PERPLEXITY, (len(x) - 1) / 3)
    return np.asarray(
        TSNE(perplexity=perplexity, initialization="pca", random_state=seed, n_jobs=threads, verbose=False).fit(x)
    )


def umap(emb: np.ndarray, seed: int = 0, threads: int = THREADS) -> np.ndarray:
    """(n, d) embeddings -> (n, 2) UMAP coordinates (15 neighbours, min_dist 0.1; seeded, so one thread)."""
    import umap as umap_learn

    x = _unit(emb)
    reducer = umap_learn.UMAP(
        n_neighbors=min(UMAP_NEIGHBOURS, len(x) - 1), min_dist=UMAP_MIN_DIST, random_state=seed, n_jobs=1
    )
    return np.asarray(reducer.fit_transform(x))


PROJECT = {"tsne": tsne, "umap": umap}


def subsample(n: int, max_points: int | None, seed: int = 0) -> np.ndarray:
    """(m,) sorted row indices: all n rows, or a seeded ``max_points`` of them (the same for every model)."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def project_all(
    embeddings: Mapping[str, np.ndarray], methods: Sequence[str] = METHODS, seed: int = 0, threads: int = THREADS
) -> dict[tuple[str, str], np.ndarray]:
    """{(method, model): (n, 2) coordinates} for every method and every (n, d_model) embedding of the same rows."""
    unknown = [m for m in methods if m not in PROJECT]
    if unknown:
        raise ValueError(f"map methods must be among {METHODS}, got {unknown}")
    sizes = {name: len(emb) for name, emb in embeddings.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"every embedding needs the same rows: {sizes}")
    return {(m, name): PROJECT[m](emb, seed, threads) for m in methods for name, emb in embeddings.items()}


def categories(labels: Sequence, max_categories: int = MAX_CATEGORIES) -> tuple[np.ndarray, list[str]]:
    """(n,) labels -> ((n,) display labels, legend order): the ``max_categories`` most common labels by
    count (ties by name), the rest "other", missing values "unlabelled"."""
    values = pd.Series(labels, dtype=object)
    missing = values.isna()
    values = values.where(missing, values.astype(str))
    counts = values[~missing].value_counts()
    counts = counts.rename_axis("label").reset_index().sort_values(["count", "label"], ascending=[False, True])
    named = counts[~counts["label"].isin([OTHER, UNLABELLED])]  # a label spelled "other" joins the grey rest
    kept = named["label"].head(max_categories).tolist()
    shown = values.where(values.isin(kept) | missing, OTHER).where(~missing, UNLABELLED)
    order = kept + [c for c in (OTHER, UNLABELLED) if (shown == c).any()]
    return shown.to_numpy(dtype=object), order


def _colours(order: list[str]) -> dict[str, tuple]:
    """tab10 then tab20's light shades, both without their grey, which is kept for "other"."""
    from matplotlib import colormaps

    palette = [colormaps["tab10"](i) for i in range(10) if i != 7]
    palette += [colormaps["tab20"](i) for i in range(1, 20, 2) if i != 15]
    named = [c for c in order if c not in (OTHER, UNLABELLED)]
    out = {c: palette[i % len(palette)] for i, c in enumerate(named)}
    out.update({OTHER: _GREY, UNLABELLED: _LIGHT})
    return out


@dataclass(frozen=True)
class MapFigure:
    """A written map: its path, the panel count (methods x models) and the legend order."""

    path: Path
    panels: int
    categories: list[str]


def plot_maps(
    coords: Mapping[tuple[str, str], np.ndarray],
    labels: Sequence,
    path: Path,
    title: str = "",
    max_categories: int = MAX_CATEGORIES,
    point_size: float = 4.0,
) -> MapFigure:
    """One PNG: a row per method, a column per model, points coloured by ``labels`` (n,), one legend.

    Args:
        coords: {(method, model): (n, 2)} from :func:`project_all`.
    Uses matplotlib's Agg canvas directly (no pyplot, no global backend state).
    """
    methods = list(dict.fromkeys(m for m, _ in coords))
    models = list(dict.fromkeys(name for _, name in coords))
    shown, order = categories(labels, max_categories)
    if any(len(c) != len(shown) for c in coords.values()):
        raise ValueError(f"{len(shown)} labels for coordinates of {sorted({len(c) for c in coords.values()})} rows")
    colour = _colours(order)
    # Inches right of the panels for the legend: enough for its longest entry (GO term names run long).
    longest = max(len(f"{c} ({(shown == c).sum()})") for c in order)
    legend_in = max(2.6, LEGEND_INCH_PER_CHAR * longest + LEGEND_MARKER_IN)
    fig = Figure(figsize=(4.2 * len(models) + legend_in, 4.0 * len(methods)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(methods), len(models), squeeze=False)
    # Drawn back to front: unlabelled, other, then the named categories from rarest to most common.
    layers = [c for c in (UNLABELLED, OTHER) if c in order] + [
        c for c in reversed(order) if c not in (OTHER, UNLABELLED)
    ]
    for i, method in enumerate(methods):
        for j, model in enumerate(models):
            ax = axes[i][j]
            xy = coords[(method, model)]
            for category in layers:
                rows = shown == category
                ax.scatter(
                    xy[rows, 0],
                    xy[rows, 1],
                    s=point_size,
                    color=colour[category],
                    linewidths=0,
                    rasterized=True,
                    label=category,
                )
            ax.set_title(f"{model} - {TITLES.get(method, method)}", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
    handles = {h.get_label(): h for h in axes[0][0].collections}
    right = 1 - legend_in / fig.get_figwidth()
    fig.legend(
        [handles[c] for c in order],
        [f"{c} ({(shown == c).sum()})" for c in order],
        loc="center left",
        bbox_to_anchor=(right, 0.5),
        fontsize=8,
        markerscale=3,
        frameon=False,
    )
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, right, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return MapFigure(path=path, panels=len(methods) * len(models), categories=order)


def latent_maps(
    embeddings: Mapping[str, np.ndarray],
    labels: Mapping[str, Sequence],
    out_dir: Path,
    methods: Sequence[str] = METHODS,
    max_points: int | None = MAX_POINTS,
    seed: int = 0,
    threads: int = THREADS,
    titles: Mapping[str, str] | None = None,
    max_categories: int = MAX_CATEGORIES,
) -> dict:
    """Project every embedding once and write ``<out_dir>/map_<label column>.png`` per label column.

    Args:
        embeddings: {model: (n, d_model)} of the same n rows (e.g. "isoclr", "random init").
        labels: {column name: (n,) labels} (e.g. GO MF root term, family, biotype).
        max_points: a seeded subsample of rows keeps t-SNE / UMAP within budget on large annotations.
        titles: {column: figure title} (default "coloured by <column>").
    Returns: ``figures`` {column: MapFigure}, ``coords`` {(method, model): (m, 2)}, ``rows`` (m,) indices used.
    """
    n = len(next(iter(embeddings.values())))
    rows = subsample(n, max_points, seed)
    coords = project_all({k: np.asarray(v)[rows] for k, v in embeddings.items()}, methods, seed, threads)
    figures = {}
    for column, values in labels.items():
        if len(values) != n:
            raise ValueError(f"label column {column!r} has {len(values)} values for {n} rows")
        figures[column] = plot_maps(
            coords,
            np.asarray(values, dtype=object)[rows],
            Path(out_dir) / f"map_{column}.png",
            title=(titles or {}).get(column, f"coloured by {column}"),
            max_categories=max_categories,
        )
    return {"figures": figures, "coords": coords, "rows": rows}
