"""Latent maps on tiny planted data: PNGs with one panel per (method, model), planted clusters kept apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from sklearn.metrics import silhouette_score

from isoclr import maps


def _planted(n_per: int = 30, clusters: int = 3, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    label = np.repeat([f"term{i}" for i in range(clusters)], n_per)
    centres = rng.normal(size=(clusters, d)) * 4
    emb = centres[np.repeat(np.arange(clusters), n_per)] + rng.normal(size=(n_per * clusters, d))
    return emb, label, rng.normal(size=emb.shape)


def test_categories_keep_the_most_common_and_group_the_rest():
    shown, order = maps.categories(["b", "a", "a", "c", None, "b", "d", "a"], max_categories=2)
    assert order == ["a", "b", "other", "unlabelled"]
    assert shown.tolist() == ["b", "a", "a", "other", "unlabelled", "b", "other", "a"]


def test_tsne_map_of_model_and_random_init(tmp_path: Path):
    emb, label, noise = _planted()
    result = maps.latent_maps({"isoclr": emb, "random init": noise}, {"family": label}, tmp_path, methods=["tsne"])
    figure = result["figures"]["family"]
    assert figure.path == tmp_path / "map_family.png" and figure.panels == 2
    image = imread(figure.path)
    assert image.shape[1] > image.shape[0] > 100 and image.std() > 0  # two panels side by side, not blank
    planted = result["coords"][("tsne", "isoclr")]
    assert planted.shape == (90, 2)
    assert silhouette_score(planted, label) > 0.5
    assert silhouette_score(result["coords"][("tsne", "random init")], label) < 0.2


def test_plot_panel_grid_and_label_checks(tmp_path: Path):
    rng = np.random.default_rng(1)
    coords = {(m, name): rng.normal(size=(20, 2)) for m in ("tsne", "umap") for name in ("a", "b", "c")}
    figure = maps.plot_maps(coords, ["x"] * 10 + [None] * 10, tmp_path / "sub" / "grid.png")
    assert figure.panels == 6 and figure.categories == ["x", "unlabelled"] and figure.path.stat().st_size > 0
    height, width = imread(figure.path).shape[:2]
    assert width > height  # 3 model columns, 2 method rows
    with pytest.raises(ValueError, match="labels"):
        maps.plot_maps(coords, ["x"] * 5, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="map methods"):
        maps.project_all({"a": rng.normal(size=(20, 3))}, methods=["pca"])


def test_subsample_is_seeded_and_shared():
    rows = maps.subsample(100, 10, seed=3)
    assert len(rows) == 10 and (np.diff(rows) > 0).all() and rows.tolist() == maps.subsample(100, 10, 3).tolist()
    assert maps.subsample(5, 10).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.slow  # umap-learn compiles its numba layout code in every new process (~12 s of CPU)
def test_umap_map_separates_planted_clusters(tmp_path: Path):
    emb, label, noise = _planted(seed=2)
    result = maps.latent_maps({"isoclr": emb, "random init": noise}, {"go_mf": label}, tmp_path)
    assert result["figures"]["go_mf"].panels == 4
    assert silhouette_score(result["coords"][("umap", "isoclr")], label) > 0.5
    assert silhouette_score(result["coords"][("umap", "random init")], label) < 0.2
