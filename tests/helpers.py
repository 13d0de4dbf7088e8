"""Test helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from isoclr.artifacts import Paths
from isoclr.config import Config
from isoclr.schemas import GROUPS, TRANSCRIPTS
from tests.conftest import tiny_params

# --------------------------------------------------------------------------- registry and the register stage

MODEL_FILES = {"encoder.pt": b"\x00weights" * 500, "meta.json": b'{"out_dim": 16}', "sub/extra.txt": b"nested"}


def make_model(root: Path, tag: str) -> Path:
    """A model folder (nested files included) whose bytes differ by ``tag``."""
    for name, data in MODEL_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data + tag.encode())
    return root


def registry_config(uri: str) -> Config:
    """The tiny test config with its registry at ``uri``."""
    params = tiny_params()
    params["registry"] = {"uri": uri}
    return Config.model_validate(params)


def write_inputs(folder: Path, passed: bool) -> tuple[Path, Path]:
    """Probe metrics and a gate decision (``passed`` or not) in ``folder``: (metrics.json, gate.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = folder / "metrics.json"
    metrics.write_text(json.dumps({"halflife": {"isoclr": {"pearson_r": 0.3}}}))
    decision = folder / "gate.json"
    rule = {"task": "mrl", "metric": "pearson_r", "passed": passed, "reason": "ok" if passed else "metric missing"}
    decision.write_text(json.dumps({"passed": passed, "rules": [rule]}))
    return metrics, decision


# --------------------------------------------------------------------------- training data and the train stage

BASES = np.array(list("ACGT"))


def synthetic_annotation(seed: int = 0, n_genes: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """~40 transcripts of ``n_genes`` genes: isoforms skip exons of their gene, so they share sequence,
    and each gene has its own base composition (as real genes differ in GC content).

    Genes 0-1 and 2-3 are paralog families (one homology group each); gene 9 is in
    the test split; gene 4 has a single isoform.
    """
    rng = np.random.default_rng(seed)
    transcripts, groups = [], []
    for g in range(n_genes):
        composition = rng.dirichlet(np.full(4, 2.0))
        exons = ["".join(rng.choice(BASES, rng.integers(40, 160), p=composition)) for _ in range(5)]
        n_isoforms = 1 if g == 4 else 4 + g % 2
        skips = [None, 1, 2, 3, 1][:n_isoforms]
        for i, skip in enumerate(skips):
            used = [e for k, e in enumerate(exons) if k != skip]
            seq = "".join(used)
            ends = np.cumsum([len(e) for e in used]) - 1
            cds_start = len(used[0])
            cds_end = cds_start + 3 * ((len(seq) - cds_start - 20) // 3)
            transcripts.append(
                {
                    "transcript_id": f"T{g:02d}_{i}",
                    "gene_id": f"G{g:02d}",
                    "gene_name": f"GENE{g}",
                    "annotation": "synthetic",
                    "species": "homo_sapiens",
                    "assembly": "none",
                    "biotype": "protein_coding",
                    "seq": seq,
                    "length": len(seq),
                    "cds_start": cds_start if g % 3 else None,  # some transcripts have no CDS
                    "cds_end": cds_end if g % 3 else None,
                    "exon_ends": ends.tolist(),
                }
            )
            groups.append(
                {
                    "transcript_id": f"T{g:02d}_{i}",
                    "gene_id": f"G{g:02d}",
                    "gene_name": f"GENE{g}",
                    "n_isoforms": n_isoforms,
                    "homology_group": f"hg{min(g, 2 * (g // 2)) if g < 4 else g}",
                    "split": "test" if g == 9 else "train",
                }
            )
    return TRANSCRIPTS.validate(pd.DataFrame(transcripts)), GROUPS.validate(pd.DataFrame(groups))


def write_tables(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """:func:`synthetic_annotation` written as the transcripts and groups tables; returns their paths."""
    transcripts, groups = synthetic_annotation(seed)
    paths = Path(folder) / "transcripts.parquet", Path(folder) / "groups.parquet"
    transcripts.to_parquet(paths[0])
    groups.to_parquet(paths[1])
    return paths


def tiny_config(**train) -> Config:
    """A model and training run of seconds on :func:`synthetic_annotation`; ``train`` overrides train settings."""
    params = tiny_params()
    params["model"].update(stem_filters=8, stage_filters=[8, 8, 16, 16], projection_dims=[32, 16])
    params["train"].update(
        dict(steps=4, batch_genes=4, max_length=256, warmup_steps=1, learning_rate=0.003, seed=0), **train
    )
    return Config.model_validate(params)


def train_paths(root: Path, tables: tuple[Path, Path], tracks: Path | None = None) -> Paths:
    """The train stage's paths under ``root``, reading ``tables`` (and the track store ``tracks``)."""
    paths = Paths.under(Path(root)).replace(transcripts=tables[0], groups=tables[1])
    return paths.replace(tracks=tracks)


def write_params(path: Path, **train) -> Path:
    """:func:`tiny_config` as a params.yaml."""
    path.write_text(yaml.safe_dump(tiny_config(**train).to_dict()))
    return path


def train_command(params: Path, tables: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    """`isoclr train` options for the tables, reading the track store beside them (built on first use)."""
    store = Path(tables[0]).with_name("tracks")
    if not store.exists():
        write_track_store(tables)
    return [
        "--params",
        str(params),
        "--transcripts",
        str(tables[0]),
        "--groups",
        str(tables[1]),
        "--tracks",
        str(store),
        "--model-dir",
        str(out / "model"),
        "--train-log",
        str(out / "log.csv"),
        "--metrics",
        str(out / "train.json"),
        "--checkpoint-dir",
        str(out / "checkpoints"),
        *extra,
    ]


def write_track_store(tables: tuple[Path, Path]) -> Path:
    """The track store of the tables' transcripts beside them, as `isoclr encode` writes it."""
    from isoclr.store import write_store

    store = Path(tables[0]).with_name("tracks")
    write_store(tables[0], store)
    return store


def train_tiny_model(root: Path, **train) -> tuple[Path, Config]:
    """A model folder written by the train stage on :func:`synthetic_annotation` (2 steps of :func:`tiny_config`
    unless ``train`` says otherwise), and the config it was trained with."""
    from isoclr import stage

    cfg = tiny_config(**{"steps": 2, **train})
    paths = train_paths(root, write_tables(root))
    stage.run("train", cfg, paths, tracks=False, progress=False)
    return paths.model, cfg
