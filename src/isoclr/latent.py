"""The `latent` stage: is gene function visible in the embedding space, beyond what a random encoder gives?

The trained encoder and the same architecture randomly initialised (several
seeds) embed the same annotation transcripts, frozen. Two kinds of evidence:

* a number: k-nearest-neighbour label agreement (:mod:`isoclr.neighbours`) for
  the GO root terms of BP, MF and CC (multilabel: Jaccard of term sets), the
  homology group (paralog family) and the biotype, with a row's own gene
  excluded from its neighbours (isoforms are near-copies that share every
  gene-level label). Model and random init are paired over disjoint folds of
  genes; fold r uses random seed r mod len(seeds), so the 95% CI of the
  difference covers both the rows and the random initialisation;
* a picture: t-SNE and UMAP maps (:mod:`isoclr.maps`) of the model and random
  init side by side, coloured by each label set.

One fold assignment (by gene, over all embedded rows) serves every label set,
so each random seed only embeds the rows of its own folds (the first seed, which
the maps show, embeds all rows): about 2.8 encoder passes instead of 1 + seeds.

Writes under ``paths.latent``: latent.json (every number, the config used,
the GO terms chosen, seconds), metrics.json (the headline numbers, flat),
report.html (self-contained) and maps/*.png.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from isoclr import go_terms, latent_report, maps, neighbours, schemas
from isoclr.artifacts import LATENT_MAPS, LATENT_SUMMARY, Paths
from isoclr.config import Config, LatentConfig, ModelConfig
from isoclr.metrics import StageRun
from isoclr.scores import CANDIDATE, RANDOM_INIT

log = logging.getLogger(__name__)

REPORT = "report.html"  # in Paths.latent
METRICS = "metrics.json"  # in Paths.latent: the headline numbers only, flat, for `dvc metrics show`
GO_LABELS = {"go_bp": "BP", "go_mf": "MF", "go_cc": "CC"}
CHANCE = "chance"
MAP_MODEL = "IsoCLR (trained)"
_ROW_COLUMNS = ["transcript_id", "gene_id", "gene_name", "biotype", "seq", "cds_start", "cds_end", "exon_ends"]


@dataclass(frozen=True)
class LatentResult:
    """What the latent stage measured and wrote."""

    scores: dict  # label set -> entry (latent.json "labels")
    skipped: dict  # label set -> why it was not scored
    rows: int  # transcripts embedded
    seconds: float  # wall
    cpu_seconds: float  # every thread of this process: the stage's own cost on a shared machine
    k: int
    folds: int
    summary_file: Path  # latent.json
    report: Path  # report.html
    maps: Path  # the PNG folder

    def record(self, meter: StageRun) -> None:
        """``isoclr_knn_agreement`` per label set and model (and chance); the paired difference and its p-value."""
        for label, entry in self.scores.items():
            for model in (CANDIDATE, RANDOM_INIT):
                meter.set("isoclr_knn_agreement", entry[model]["mean"], label=label, model=model)
            meter.set("isoclr_knn_agreement", entry[CHANCE], label=label, model=CHANCE)
            meter.set("isoclr_knn_agreement_difference", entry["difference"]["mean"], label=label)
            p_value = entry["difference"]["p_value"]
            meter.set("isoclr_knn_agreement_p_value", math.nan if p_value is None else p_value, label=label)
        meter.set("isoclr_latent_transcripts", self.rows)

    def flat_scores(self) -> dict[str, float]:
        """``{"<label>.<key>": value}`` of :func:`headline`, finite values only (a Kubeflow Metrics artifact)."""
        return {
            f"{label}.{key}": float(value)
            for label, values in headline(self.scores).items()
            for key, value in values.items()
            if value is not None and math.isfinite(value)
        }

    def summary(self) -> str:
        table = latent_report.markdown(self.scores, self.skipped, self.k, self.folds)
        timing = f"{self.rows} transcripts, {self.seconds:.1f} s ({self.cpu_seconds:.1f} s CPU)"
        return f"{table}{timing}\nreport: {self.report}\nmaps: {self.maps}"


# --------------------------------------------------------------------------- rows and labels


def annotation_rows(transcripts: pd.DataFrame, groups: pd.DataFrame, max_points: int, seed: int) -> pd.DataFrame:
    """The transcripts to embed, in transcript-id order: all, or a seeded ``max_points`` of them, with their
    ``homology_group`` (missing when the groups table lacks the transcript)."""
    rows = transcripts[_ROW_COLUMNS].merge(groups[["transcript_id", "homology_group"]], on="transcript_id", how="left")
    rows = rows.sort_values("transcript_id", kind="stable").reset_index(drop=True)
    return rows.iloc[maps.subsample(len(rows), max_points, seed)].reset_index(drop=True)


def family_labels(rows: pd.DataFrame, min_genes: int) -> np.ndarray:
    """(n,) homology group of rows whose group has ``min_genes`` or more genes among the rows, else None: with a
    row's own gene excluded, a one-gene family has no neighbour that could agree."""
    genes = rows.drop_duplicates("gene_id").groupby("homology_group")["gene_id"].size()
    kept = genes.index[genes >= min_genes]
    family = rows["homology_group"].astype(object)
    return family.where(family.isin(kept), None).to_numpy(dtype=object)


@dataclass(frozen=True)
class GoLabels:
    """One ontology's labels of the rows. ``y``: (n, t) 0/1 top terms; ``colour``: (n,) the row's map term
    (None: no GO annotation); ``terms``: the chosen terms; ``notes``: the join counts."""

    y: np.ndarray
    colour: np.ndarray
    terms: list[dict]
    notes: dict


def go_labels(
    rows: pd.DataFrame, go_dir: Path, ontology: str, level: int, cfg: LatentConfig, gene_map: pd.DataFrame
) -> GoLabels:
    """The top ``go_top_terms`` terms at ``level`` of ``ontology`` among the genes of ``rows`` (propagated;
    a gene's terms apply to all its isoforms), as multilabel rows and as one map colour per row
    (:func:`isoclr.go_terms.root_terms`: a gene's least common top term). Raises GoJoinError when no row joins."""
    go = replace(go_terms.load_go(go_dir, ontology, genes=False), genes=gene_map)
    annotated = pd.DataFrame(index=pd.Index(np.sort(go.annotations["entrez_id"].unique()), name="entrez_id"))
    joined, notes = go_terms.join_transcripts(rows, annotated, gene_map, where=f"GO {ontology} labels")
    # Terms are chosen among the genes on the map: the common terms of these transcripts, and a fast propagation.
    go = replace(go, annotations=go.annotations[go.annotations["entrez_id"].isin(joined["entrez_id"])])
    selection = go_terms.select_terms(
        go, n=cfg.go_top_terms, level=level, min_share=0.0, max_share=1.0, drop_iea=cfg.go_drop_iea
    )
    colours = go_terms.root_terms(go, drop_iea=cfg.go_drop_iea, top=cfg.go_top_terms, level=level)
    entrez = rows["transcript_id"].map(joined.set_index("transcript_id")["entrez_id"])
    y = selection.labels.reindex(entrez.fillna(-1).astype(int).to_numpy()).fillna(0).to_numpy(dtype=np.uint8)
    colour = entrez.map(colours["term"]).astype(object)
    terms = selection.terms.assign(share=selection.terms["share"].round(4)).to_dict(orient="records")
    return GoLabels(y=y, colour=colour.where(colour.notna(), None).to_numpy(dtype=object), terms=terms, notes=notes)


# --------------------------------------------------------------------------- embeddings


def embed_runs(
    rows: pd.DataFrame, model_dir: Path, store, cfg: LatentConfig, fold_of: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(n, d) model embeddings of every row, and per random seed (n, d) embeddings of the rows it is used for
    (folds r with r mod len(seeds) = its index; the first seed: every row, for the maps), NaN elsewhere."""
    import torch  # loads only when the stage runs

    from isoclr import embed
    from isoclr.checkpoint import read_encoder

    encoder, meta = read_encoder(Path(model_dir))
    model_cfg = ModelConfig.model_validate(meta["model_config"])  # random init: the architecture that was trained
    previous = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        model_emb = embed.embed_table(encoder, rows, batch_size=cfg.embed_batch_size, store=store)
        runs = []
        for i, seed in enumerate(cfg.random_seeds):
            needed = np.ones(len(rows), dtype=bool) if i == 0 else (fold_of % len(cfg.random_seeds)) == i
            emb = np.full(model_emb.shape, np.nan, dtype=np.float32)
            if needed.any():
                random = embed.random_encoder(model_cfg, seed=seed)
                emb[needed] = embed.embed_table(random, rows[needed], batch_size=cfg.embed_batch_size, store=store)
            runs.append(emb)
    finally:
        torch.set_num_threads(previous)
    return model_emb, runs


# --------------------------------------------------------------------------- agreement


def _number(value) -> float | None:
    """A float for JSON; None for NaN (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def score_label(
    labels: np.ndarray,
    keep: np.ndarray,
    model_emb: np.ndarray,
    random_embs: list[np.ndarray],
    gene_ids: np.ndarray,
    fold_of: np.ndarray,
    cfg: LatentConfig,
) -> dict:
    """Paired agreement of model vs random init on the rows ``keep`` (n,) bool of ``labels`` ((n,) or (n, t)).

    Returns the latent.json entry: n, genes, isoclr / random_init {mean, ci95} over folds, chance,
    difference {mean, ci95, p_value, significant}, per_fold rows (with the random seed each fold used).
    """
    idx = np.flatnonzero(keep)
    result = neighbours.compare_agreement(
        model_emb[idx],
        [run[idx] for run in random_embs],
        labels[idx],
        k=cfg.k,
        folds=cfg.folds,
        seed=cfg.sample_seed,
        measure=cfg.measure,
        groups=gene_ids[idx],
        fold_of=fold_of[idx],
    )
    per_fold = result["per_fold"].assign(
        random_seed=[cfg.random_seeds[r % len(cfg.random_seeds)] for r in range(cfg.folds)]
    )

    def interval(column: str) -> dict:
        mean, lo, hi = neighbours.t_interval(per_fold[column].to_numpy())
        return {"mean": _number(mean), "ci95": [_number(lo), _number(hi)]}

    p_value = _number(result["p_value"])
    lo, hi = (_number(v) for v in result["diff_ci95"])
    return {
        "n": int(per_fold["n"].sum()),
        "genes": int(pd.Series(gene_ids[idx]).nunique()),
        CANDIDATE: interval("a"),
        RANDOM_INIT: interval("b"),
        CHANCE: _number(result["chance"]),
        "difference": {
            "mean": _number(result["diff"]),
            "ci95": [lo, hi],
            "p_value": p_value,
            "significant": bool(lo is not None and hi is not None and (lo > 0 or hi < 0)),
        },
        "per_fold": json.loads(per_fold.rename(columns={"a": CANDIDATE, "b": RANDOM_INIT}).to_json(orient="records")),
    }


def _label_sets(cfg: Config, paths: Paths, rows: pd.DataFrame) -> tuple[dict, dict, dict, dict]:
    """Per label set in ``latent.labels``: (labels, rows kept), map colours, GO terms and notes; and the skipped."""
    latent = cfg.latent
    sets, colours, terms, skipped = {}, {}, {}, {}
    wanted_go = [label for label in latent.labels if label in GO_LABELS]
    if wanted_go and cfg.data.go is None:
        skipped.update({label: "no GO tables (data.go is not set in params.yaml)" for label in wanted_go})
    elif wanted_go:
        go_dir = cfg.data.path(cfg.data.go, paths.data_dir)
        gene_map = go_terms.read_gene_map(go_dir / go_terms.GENE_MAP_FILE)
        for label in wanted_go:
            try:
                level = getattr(latent.go_level, label)
                go = go_labels(rows, go_dir, GO_LABELS[label], level, latent, gene_map)
            except (go_terms.GoJoinError, go_terms.GoDataError) as err:
                skipped[label] = str(err)
                continue
            sets[label] = (go.y, go.y.any(axis=1))
            colours[label] = go.colour
            terms[label] = go.terms
    if "family" in latent.labels:
        family = family_labels(rows, latent.family_min_genes)
        sets["family"] = (family, pd.notna(family))
        colours["family"] = family
    if "biotype" in latent.labels:
        biotype = rows["biotype"].astype(object).where(rows["biotype"].notna(), None).to_numpy(dtype=object)
        sets["biotype"] = (biotype, pd.notna(biotype))
        colours["biotype"] = biotype
    order = [label for label in latent.labels if label in sets]
    return {k: sets[k] for k in order}, {k: colours[k] for k in order}, terms, skipped


def _titles(cfg: LatentConfig) -> dict[str, str]:
    go = "top {} GO {} terms at level {} (a gene's least common one)"
    return {
        **{
            label: go.format(cfg.go_top_terms, ontology, getattr(cfg.go_level, label))
            for label, ontology in GO_LABELS.items()
        },
        "family": f"homology group (families of >= {cfg.family_min_genes} genes; others unlabelled)",
        "biotype": "biotype",
    }


def protocol(cfg: LatentConfig, n_rows: int, n_total: int) -> str:
    """One paragraph: what was embedded and how agreement is scored."""
    return (
        f"{n_rows} of {n_total} annotation transcripts (seeded subsample, max {cfg.max_points}) embedded, frozen, by "
        f"the trained encoder and by the same architecture randomly initialised (seeds {cfg.random_seeds}). "
        f"kNN label agreement: the share of a row's {cfg.k} nearest neighbours (cosine; rows of its own gene "
        f"excluded) sharing its label (GO: mean {cfg.measure} of term sets). Rows are dealt by gene into "
        f"{cfg.folds} folds; fold r compares the model with random seed r mod {len(cfg.random_seeds)} on its own "
        "rows, giving a mean, a 95% t-interval and a paired t-test over folds. Chance: the agreement of "
        "neighbours drawn at random. Maps: the model and the first random seed side by side."
    )


def headline(scores: dict) -> dict:
    """{label: {isoclr, random_init, chance, isoclr_minus_random_init, p_value}}: metrics.json."""
    return {
        label: {
            CANDIDATE: entry[CANDIDATE]["mean"],
            RANDOM_INIT: entry[RANDOM_INIT]["mean"],
            CHANCE: entry[CHANCE],
            f"{CANDIDATE}_minus_{RANDOM_INIT}": entry["difference"]["mean"],
            "p_value": entry["difference"]["p_value"],
        }
        for label, entry in scores.items()
    }


class _Clock:
    """Wall and CPU seconds (every thread of this process) per phase, and in total: on a shared machine the wall
    time mostly measures the other jobs, the CPU time the stage's own cost."""

    def __init__(self) -> None:
        self.start = self.mark = (time.perf_counter(), time.process_time())
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.wall[phase], self.cpu[phase] = now[0] - self.mark[0], now[1] - self.mark[1]
        self.wall["total"], self.cpu["total"] = now[0] - self.start[0], now[1] - self.start[1]
        self.mark = now

    @staticmethod
    def rounded(values: dict[str, float]) -> dict[str, float]:
        return {k: round(v, 2) for k, v in values.items()}


def run(cfg: Config, paths: Paths, *, tracks: bool = True) -> LatentResult:
    """Embed, score agreement, draw the maps; write latent.json, report.html and maps/ under ``paths.latent``.

    Reads ``paths.transcripts``, ``paths.groups``, ``paths.model``, the GO tables under
    ``data.go`` (of ``paths.data_dir``, default ``data.dir``) and, with ``tracks``, the
    track store ``paths.tracks`` (the same tracks as re-encoding the rows, read faster).
    """
    from isoclr.store import TrackStore

    latent = cfg.latent
    clock = _Clock()
    transcripts = schemas.TRANSCRIPTS.validate(pd.read_parquet(paths.transcripts))
    groups = schemas.GROUPS.validate(pd.read_parquet(paths.groups))
    rows = annotation_rows(transcripts, groups, latent.max_points, latent.sample_seed)
    gene_ids = rows["gene_id"].to_numpy(dtype=object)
    fold_of = neighbours.fold_assignment(len(rows), latent.folds, latent.sample_seed, groups=gene_ids)
    sets, colours, terms, skipped = _label_sets(cfg, paths, rows)
    clock.lap("labels")

    store = TrackStore(Path(paths.tracks)) if tracks else None
    model_emb, random_embs = embed_runs(rows, paths.model, store, latent, fold_of)
    clock.lap("embed")

    scores = {}
    for label, (values, keep) in sets.items():
        try:
            scores[label] = score_label(values, keep, model_emb, random_embs, gene_ids, fold_of, latent)
        except ValueError as err:  # too few rows (or genes) per fold for k neighbours
            skipped[label] = f"{int(keep.sum())} labelled rows: {err}"
    clock.lap("agreement")
    for label, reason in skipped.items():
        log.warning("latent: %s skipped: %s", label, reason)

    out_dir = Path(paths.latent)
    out_dir.mkdir(parents=True, exist_ok=True)
    map_dir = out_dir / LATENT_MAPS
    drawn = (
        maps.latent_maps(
            {MAP_MODEL: model_emb, f"random init (seed {latent.random_seeds[0]})": random_embs[0]},
            colours,
            map_dir,
            methods=latent.methods,
            max_points=None,  # the rows are already the subsample
            seed=latent.sample_seed,
            threads=latent.threads,
            titles=_titles(latent),
            max_categories=latent.max_categories,
        )
        if colours and latent.methods
        else {"figures": {}}
    )
    figures = {}
    if scores:
        figures["kNN label agreement"] = latent_report.plot_agreement(scores, map_dir / latent_report.AGREEMENT_PLOT)
    figures.update({_titles(latent)[c]: f.path for c, f in drawn["figures"].items()})
    clock.lap("maps")

    text = protocol(latent, len(rows), len(transcripts))
    summary = {
        "config": latent.model_dump(mode="json"),
        "protocol": text,
        "rows": {"embedded": len(rows), "transcripts": len(transcripts), "genes": int(pd.Series(gene_ids).nunique())},
        "labels": scores,
        "skipped": skipped,
        "go_terms": terms,
        "maps": {c: str(f.path.relative_to(out_dir)) for c, f in drawn["figures"].items()},
        "seconds": clock.rounded(clock.wall),
        "cpu_seconds": clock.rounded(clock.cpu),
    }
    (out_dir / LATENT_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / METRICS).write_text(json.dumps(headline(scores), indent=2) + "\n")
    (out_dir / REPORT).write_text(latent_report.html_page(scores, skipped, terms, figures, text))
    return LatentResult(
        scores=scores,
        skipped=skipped,
        rows=len(rows),
        seconds=clock.wall["total"],
        cpu_seconds=clock.cpu["total"],
        k=latent.k,
        folds=latent.folds,
        summary_file=out_dir / LATENT_SUMMARY,
        report=out_dir / REPORT,
        maps=map_dir,
    )
