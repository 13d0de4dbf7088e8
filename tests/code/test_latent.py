"""The latent stage: labels from hand-made GO tables and families, a planted label that the model's embedding
carries beating random init, and the stage end to end on synthetic inputs (latent.json, maps, report)."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from isoclr import latent, stage
from isoclr.artifacts import LATENT_MAPS, LATENT_SUMMARY, Paths
from isoclr.config import Config, LatentConfig
from isoclr.metrics import StageRun
from tests.conftest import tiny_params
from tests.helpers import save_encoder, synthetic_inputs

ONTOLOGY_OFFSET = {"BP": 100, "MF": 200, "CC": 300}
LEVEL1 = ("alpha", "beta", "gamma")


def _go_id(ontology: str, i: int) -> str:
    return f"GO:{ONTOLOGY_OFFSET[ontology] + i:07d}"


def write_go_tables(folder: Path, n_genes: int, gene_terms) -> Path:
    """A GO folder in the shipped format for genes ENSG{g:011d} / G{g} (Entrez g + 1), per ontology a root with
    three level-1 terms (0 alpha, 1 beta, 2 gamma) and one level-2 child of each; ``gene_terms(g)`` -> the
    level-2 child indices gene g holds directly (propagation gives it their level-1 parents)."""
    folder.mkdir(parents=True)
    terms = []
    for ontology in ONTOLOGY_OFFSET:
        root = _go_id(ontology, 0)
        edges = [(root, "all", "isa")]
        terms.append((root, f"{ontology} root", ontology))
        for i, name in enumerate(LEVEL1):
            top, child = _go_id(ontology, 1 + i), _go_id(ontology, 11 + i)
            edges += [(top, root, "isa"), (child, top, "isa")]
            terms += [(top, f"{ontology} {name}", ontology), (child, f"{ontology} {name} child", ontology)]
        direct = [
            (g + 1, f"G{g}", _go_id(ontology, 11 + c), "IDA") for g in range(n_genes) for c in gene_terms(g, ontology)
        ]
        pd.DataFrame(direct, columns=["entrez_id", "symbol", "go_id", "evidence"]).to_csv(
            folder / f"go_{ontology.lower()}.tsv.gz", sep="\t", index=False
        )
        pd.DataFrame(edges, columns=["child_go_id", "parent_go_id", "relationship"]).to_csv(
            folder / f"go_{ontology.lower()}_parents.tsv.gz", sep="\t", index=False
        )
    pd.DataFrame(terms, columns=["go_id", "term", "ontology"]).to_csv(folder / "go_terms.tsv.gz", sep="\t", index=False)
    genes = pd.DataFrame(
        {
            "entrez_id": [g + 1 for g in range(n_genes)],
            "symbol": [f"G{g}" for g in range(n_genes)],
            "ensembl_gene_ids": [f"ENSG{g:011d}" for g in range(n_genes)],
        }
    )
    with gzip.open(folder / "genes_entrez_symbol_ensembl.tsv.gz", "wt") as fh:
        genes.to_csv(fh, sep="\t", index=False)
    return folder


def _rows(n_genes: int, isoforms: int = 2) -> pd.DataFrame:
    genes = np.repeat(np.arange(n_genes), isoforms)
    return pd.DataFrame(
        {
            "transcript_id": [f"ENST{g:05d}{i}" for g, i in zip(genes, np.tile(range(isoforms), n_genes), strict=True)],
            "gene_id": [f"ENSG{g:011d}.3" for g in genes],
            "gene_name": [f"G{g}" for g in genes],
            "homology_group": [f"H{g // 3}" for g in genes],
        }
    )


def test_family_labels_keep_families_with_enough_genes_among_the_rows():
    rows = _rows(7)  # H0 = genes 0-2, H1 = 3-5, H2 = gene 6 alone
    rows.loc[rows["gene_id"] == "ENSG00000000002.3", "homology_group"] = "H9"  # H0 now has 2 genes, H9 one
    family = latent.family_labels(rows, min_genes=2)
    expected = [f"H{g // 3}" if g in (0, 1, 3, 4, 5) else None for g in np.repeat(range(7), 2)]
    assert family.tolist() == expected
    assert latent.family_labels(rows, min_genes=3).tolist() == [f if f == "H1" else None for f in expected]


def test_go_labels_are_the_propagated_top_terms_of_each_transcripts_gene(tmp_path):
    # gene g holds the child of term g % 3, and gene 0 also the child of term 1; gene 5 has no annotation
    held = {g: ([g % 3] + ([1] if g == 0 else []) if g != 5 else []) for g in range(6)}
    go_dir = write_go_tables(tmp_path / "go", 6, lambda g, _: held[g])
    rows = _rows(6)
    rows.loc[rows["gene_id"] == "ENSG00000000004.3", "gene_id"] = "XLOC_4"  # joins by symbol G4 instead
    gene_map = pd.read_csv(go_dir / "genes_entrez_symbol_ensembl.tsv.gz", sep="\t")
    cfg = LatentConfig(go_top_terms=2)
    go = latent.go_labels(rows, go_dir, "MF", 1, cfg, gene_map)
    # counts among the joined genes 0-4: alpha {0, 3}, beta {0, 1, 4}, gamma {2}: top 2 = beta, alpha
    assert [t["term"] for t in go.terms] == ["MF beta", "MF alpha"]
    assert [t["n_genes"] for t in go.terms] == [3, 2]
    per_gene = {g: go.y[2 * g].tolist() for g in range(6)}
    assert per_gene == {0: [1, 1], 1: [1, 0], 2: [0, 0], 3: [0, 1], 4: [1, 0], 5: [0, 0]}
    assert (go.y[::2] == go.y[1::2]).all()  # isoforms carry their gene's terms
    # map colour: a gene's least common top term; gene 2 holds none of the top 2 ("other"), gene 5 no GO at all
    assert go.colour[::2].tolist() == ["MF alpha", "MF beta", "other", "MF alpha", "MF beta", None]
    assert go.notes["matched_symbol"] == 2 and go.notes["matched"] == 10


def _planted(n_genes: int, seed: int, carries: bool):
    """Two isoforms per gene, 4 gene-level classes; the 'model' embedding carries the class (plus noise) or not."""
    rng = np.random.default_rng(seed)
    genes = np.repeat(np.arange(n_genes), 2)
    label = (genes % 4).astype(str)
    centres = rng.normal(size=(4, 16)) * 1.5
    noise = rng.normal(size=(len(genes), 16))
    model = (centres[genes % 4] if carries else 0) + noise
    randoms = [rng.normal(size=model.shape) for _ in range(3)]
    return model, randoms, label.astype(object), np.array([f"g{g}" for g in genes], dtype=object)


@pytest.mark.parametrize("carries", [True, False])
def test_an_embedding_that_carries_the_label_beats_random_init_and_one_that_does_not_does_not(carries):
    model, randoms, label, genes = _planted(120, seed=3, carries=carries)
    cfg = LatentConfig(k=5, folds=6, random_seeds=[0, 1, 2])
    fold_of = latent.neighbours.fold_assignment(len(label), cfg.folds, 0, groups=genes)
    entry = latent.score_label(label, np.ones(len(label), bool), model, randoms, genes, fold_of, cfg)
    assert entry["n"] == 240 and entry["genes"] == 120
    assert entry["random_init"]["mean"] == pytest.approx(entry["chance"], abs=0.06)
    assert [f["random_seed"] for f in entry["per_fold"]] == [0, 1, 2, 0, 1, 2]
    if carries:
        assert entry["isoclr"]["mean"] > 0.9
        assert entry["difference"]["ci95"][0] > 0.5 and entry["difference"]["p_value"] < 1e-4
        assert entry["difference"]["significant"]
    else:
        assert abs(entry["difference"]["mean"]) < 0.06 and not entry["difference"]["significant"]
        assert entry["difference"]["p_value"] > 0.05


def test_each_random_seed_is_used_only_on_its_folds():
    """Rows a seed is not used for may be left unembedded (NaN): the result is that of full embeddings."""
    model, randoms, label, genes = _planted(60, seed=5, carries=True)
    cfg = LatentConfig(k=3, folds=3, random_seeds=[0, 1, 2])
    fold_of = latent.neighbours.fold_assignment(len(label), cfg.folds, 0, groups=genes)
    partial = [r.copy() for r in randoms]
    for i, run in enumerate(partial):
        run[fold_of % 3 != i] = np.nan
    keep = np.ones(len(label), bool)
    full = latent.score_label(label, keep, model, randoms, genes, fold_of, cfg)
    assert latent.score_label(label, keep, model, partial, genes, fold_of, cfg) == full
    partial[0][np.flatnonzero(fold_of == 0)[0]] = np.nan
    with pytest.raises(ValueError, match="not embedded"):
        latent.score_label(label, keep, model, partial, genes, fold_of, cfg)


def test_config_rejects_seeds_that_no_fold_uses():
    with pytest.raises(ValueError, match="never be used"):
        LatentConfig(folds=2, random_seeds=[0, 1, 2])
    with pytest.raises(ValueError, match="unique"):
        LatentConfig(labels=["family", "family"])


def _stage_config(**latent_cfg) -> Config:
    params = tiny_params()
    params["data"]["go"] = "go"
    params["latent"] = {
        **params["latent"],
        **dict(k=3, folds=3, random_seeds=[7, 8, 9], max_points=60, methods=["tsne"], threads=1),
        **latent_cfg,
    }
    return Config.model_validate(params)


def _stage_inputs(tmp_path: Path, cfg: Config) -> Paths:
    t_path, g_path = synthetic_inputs(tmp_path)  # 48 genes, 72 transcripts, families of 2 genes
    # GO: MF by A-richness (gene g % 3 == 0 is A-rich in the synthetic sequences), BP and CC by g % 3 and g % 2
    write_go_tables(tmp_path / "data" / "go", 48, lambda g, o: {"MF": [g % 3], "BP": [g % 3, 2], "CC": [g % 2]}[o])
    model_dir = save_encoder(cfg, 123, tmp_path / "model")
    return Paths.under(tmp_path / "out", data_dir=tmp_path / "data").replace(
        transcripts=t_path, groups=g_path, model=model_dir
    )


def test_latent_stage_end_to_end(tmp_path):
    cfg = _stage_config()
    paths = _stage_inputs(tmp_path, cfg)
    result = stage.run("latent", cfg, paths, tracks=False)

    summary = json.loads((paths.latent / LATENT_SUMMARY).read_text())
    assert summary["rows"] == {"embedded": 60, "transcripts": 72, "genes": summary["rows"]["genes"]}
    assert summary["config"] == cfg.latent.model_dump(mode="json")
    assert set(summary["labels"]) == {"go_bp", "go_mf", "go_cc", "family", "biotype"} and summary["skipped"] == {}
    for label, entry in summary["labels"].items():
        assert entry == result.scores[label]
        assert len(entry["per_fold"]) == 3 and sum(f["n"] for f in entry["per_fold"]) == entry["n"]
        for model in ("isoclr", "random_init"):
            assert 0 <= entry[model]["mean"] <= 1 and entry[model]["ci95"][0] <= entry[model]["mean"]
        assert entry["difference"]["mean"] == pytest.approx(entry["isoclr"]["mean"] - entry["random_init"]["mean"])
    assert sorted(t["term"] for t in summary["go_terms"]["go_mf"]) == ["MF alpha", "MF beta", "MF gamma"]

    map_dir = paths.latent / LATENT_MAPS
    for label in summary["labels"]:
        image = imread(map_dir / f"map_{label}.png")
        assert image.shape[0] > 200 and image.shape[1] > 600  # one method row, two model columns
    assert (map_dir / "agreement.png").is_file()
    page = (paths.latent / latent.REPORT).read_text()
    embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(embedded) == 6 and base64.b64decode(embedded[0])[:4] == b"\x89PNG"
    assert "MF alpha" in page and "random init" in page
    assert result.report == paths.latent / latent.REPORT and result.rows == 60
    assert "go_mf" in result.summary() and "report:" in result.summary()

    meter = StageRun(cfg.metrics, "latent")
    result.record(meter)
    sample = meter.registry.get_sample_value
    assert sample("isoclr_knn_agreement", {"label": "family", "model": "random_init"}) == pytest.approx(
        summary["labels"]["family"]["random_init"]["mean"]
    )
    assert sample("isoclr_latent_transcripts") == 60
    assert result.flat_scores()["go_mf.isoclr"] == summary["labels"]["go_mf"]["isoclr"]["mean"]
    headline = json.loads((paths.latent / latent.METRICS).read_text())
    assert headline["family"]["isoclr_minus_random_init"] == summary["labels"]["family"]["difference"]["mean"]
    assert set(headline) == set(summary["labels"])


def test_latent_stage_without_go_tables_scores_the_rest_and_says_why(tmp_path):
    cfg = _stage_config(methods=[])
    paths = _stage_inputs(tmp_path, cfg)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"go": None})})
    result = stage.run("latent", cfg, paths, tracks=False)
    assert set(result.scores) == {"family", "biotype"}
    assert set(result.skipped) == {"go_bp", "go_mf", "go_cc"} and "data.go" in result.skipped["go_mf"]
    assert not list((paths.latent / LATENT_MAPS).glob("map_*.png"))


@pytest.mark.slow
def test_latent_cli_with_umap_and_the_track_store(tmp_path):
    """`isoclr latent` as dvc runs it: t-SNE and UMAP, tracks from the store (umap-learn JIT-compiles: slow)."""
    import yaml
    from typer.testing import CliRunner

    from isoclr.cli import app
    from isoclr.store import write_store

    cfg = _stage_config(methods=["tsne", "umap"])
    paths = _stage_inputs(tmp_path, cfg)
    write_store(paths.transcripts, tmp_path / "tracks")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(cfg.to_dict()))
    args = ["latent", "--params", str(params), "--data-dir", str(paths.data_dir), "--transcripts"]
    args += [str(paths.transcripts), "--groups", str(paths.groups), "--model-dir", str(paths.model)]
    args += ["--out-dir", str(tmp_path / "latent"), "--tracks", str(tmp_path / "tracks")]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    assert "isoclr - random init" in outcome.output
    image = imread(tmp_path / "latent" / LATENT_MAPS / "map_family.png")
    assert image.shape[0] > 2 * 300  # two method rows: t-SNE and UMAP
    summary = json.loads((tmp_path / "latent" / LATENT_SUMMARY).read_text())
    assert set(summary["maps"]) == {"go_bp", "go_mf", "go_cc", "family", "biotype"}


@pytest.mark.slow  # t-SNE of two encoders, in the component
def test_latent_component_hands_maps_and_agreement_to_the_ui(tmp_path):
    """The Kubeflow component: the report (maps inlined) as an HTML artifact, the agreement as a Metrics artifact."""
    from kfp import dsl

    from components.latent.component import latent as component
    from isoclr.store import write_store

    def artifact(kind, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        return kind(name=path.name, uri=str(path), metadata={})

    cfg = _stage_config(labels=["go_mf", "family"])
    paths = _stage_inputs(tmp_path, cfg)
    write_store(paths.transcripts, tmp_path / "tracks")
    metrics = artifact(dsl.Metrics, tmp_path / "ui" / "metrics.json")
    component.python_func(
        params=cfg.to_dict(),
        data_dir=str(paths.data_dir),
        transcripts=artifact(dsl.Dataset, paths.transcripts),
        groups=artifact(dsl.Dataset, paths.groups),
        tracks=artifact(dsl.Dataset, tmp_path / "tracks"),
        model=artifact(dsl.Model, paths.model),
        results=artifact(dsl.Dataset, tmp_path / "ui" / "results"),
        metrics=metrics,
        maps=artifact(dsl.HTML, tmp_path / "ui" / "maps.html"),
    )
    assert (tmp_path / "ui" / "maps.html").read_text().count("data:image/png;base64,") == 3
    summary = json.loads((tmp_path / "ui" / "results" / LATENT_SUMMARY).read_text())
    assert metrics.metadata["go_mf.isoclr"] == summary["labels"]["go_mf"]["isoclr"]["mean"]
    assert metrics.metadata["family.isoclr_minus_random_init"] == summary["labels"]["family"]["difference"]["mean"]
    assert (tmp_path / "ui" / "results" / LATENT_MAPS / "map_family.png").is_file()
