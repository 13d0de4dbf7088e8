"""Test helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

from isoclr.artifacts import MODEL_CHECKPOINT
from isoclr.config import Config
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


# --------------------------------------------------------------------------- the probe stage

BASES = np.array(list("ACGT"))


def synthetic_inputs(root: Path, n_genes: int = 48) -> tuple[Path, Path]:
    """A transcripts + groups table of ENSG genes, and three label files in the shipped formats."""
    rng = np.random.default_rng(0)
    rows, groups = [], []
    for g in range(n_genes):
        for i in range(1 + g % 2):
            a_rich = 0.2 * (g % 3 == 0)
            seq = "".join(rng.choice(BASES, int(rng.integers(60, 160)), p=[0.1 + a_rich, 0.3, 0.3, 0.3 - a_rich]))
            tid = f"ENST{g:05d}{i}.1"
            rows.append(
                {
                    "transcript_id": tid,
                    "gene_id": f"ENSG{g:011d}.4",
                    "gene_name": f"G{g}",
                    "annotation": "syn",
                    "species": "homo_sapiens",
                    "assembly": "none",
                    "seq": seq,
                    "biotype": "protein_coding" if g % 2 else "lincRNA",
                    "length": len(seq),
                    "cds_start": 3,
                    "cds_end": 3 + 3 * ((len(seq) - 6) // 3),
                    "exon_ends": [len(seq) // 2, len(seq) - 1],
                }
            )
            groups.append(
                {
                    "transcript_id": tid,
                    "gene_id": f"ENSG{g:011d}.4",
                    "gene_name": f"G{g}",
                    "n_isoforms": 1 + g % 2,
                    "homology_group": f"H{g // 2}",
                    "split": "train",
                }
            )
    transcripts = pd.DataFrame(rows)
    transcripts["cds_start"] = transcripts["cds_start"].astype("Int64")
    transcripts["cds_end"] = transcripts["cds_end"].astype("Int64")
    transcripts.to_parquet(root / "t.parquet")
    pd.DataFrame(groups).to_parquet(root / "g.parquet")

    data = root / "data"
    data.mkdir()
    at = transcripts.drop_duplicates("gene_id")
    hl = pd.DataFrame(
        {
            "ensembl_gene_id": at["gene_id"].str.replace(r"\.\d+$", "", regex=True),
            "external_gene_name": at["gene_name"],
            "human_PC1": at["seq"].str.count("A") / at["length"] + 0.01 * rng.normal(size=len(at)),
        }
    )
    hl.to_csv(data / "saluki_human_halflife_pc1.tsv", sep="\t", index=False)
    utrs = ["".join(rng.choice(BASES, 50)) for _ in range(90)]
    pd.DataFrame(
        {"utr": utrs, "hrl": [u.count("G") / 10 for u in utrs], "mother": [f"m{i // 3}" for i in range(90)]}
    ).to_csv(data / "sample2019_native_5utr_mrl.csv")
    frags = ["".join(rng.choice(BASES, 160)) for _ in range(90)]
    stab = [f"{f}\t{f.count('T') / 160:.4f}\t{'NA' if i % 10 == 0 else '1.0'}" for i, f in enumerate(frags)]
    stab[5] = f"{frags[5]}\tNA\tNA"
    with gzip.open(data / "siegel2022_3utr_stability.tsv.gz", "wt") as fh:
        fh.write("\n".join(stab) + "\n")
    return root / "t.parquet", root / "g.parquet"


def save_encoder(cfg: Config, seed: int, folder: Path) -> Path:
    """A randomly initialised encoder saved as a trained one would be (a stand-in: no training here)."""
    import torch

    from isoclr import tracks
    from isoclr.embed import random_encoder

    folder.mkdir(parents=True)
    torch.save(
        {
            "state_dict": random_encoder(cfg.model, seed=seed).state_dict(),
            "model_config": cfg.model.model_dump(mode="json"),
            "channels": list(tracks.CHANNELS),
        },
        folder / MODEL_CHECKPOINT,
    )
    return folder
