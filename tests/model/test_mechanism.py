"""Mechanism check: contrastive pretraining on isoforms and paralogs learns what a family shares.

Generated data where function is planted by family: every family carries a
random subset of a small motif vocabulary, in every isoform of every paralog,
on an otherwise random background (paralogs share nothing else). The label of
a transcript is a fixed linear function of which motifs its family carries.
Isoforms and paralogs are the positive pairs, so the only thing a positive pair
always shares across paralogs is the motif set: pretraining should turn the
encoder towards it, and a linear probe on the frozen embedding of families never
seen in pretraining should recover the label far better than the same encoder
randomly initialised.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from isoclr.config import Config
from isoclr.schemas import with_cds_source
from tests.conftest import tiny_params

BASES = np.array(list("ACGT"))
# The world: motif vocabulary, families, paralogs per family, isoforms per gene, lengths.
N_MOTIFS = 6
MOTIF_LENGTH = 8
MOTIF_SHARE = 0.5  # each motif is in a family with this probability
COPIES = 3  # copies of each of the family's motifs per transcript
PRETRAIN_FAMILIES = 120
PROBE_FAMILIES = 480  # the probe sees only families pretraining never saw; many, so its r is precise
N_FAMILIES = PRETRAIN_FAMILIES + PROBE_FAMILIES
PARALOGS = 2
ISOFORMS = 2
LENGTH = (100, 160)  # background nucleotides per gene, before the motifs go in
GC_RANGE = (0.2, 0.8)  # background GC content of each gene
SKIPPED_EXON = 40  # an isoform drops a segment of this length somewhere in the gene
NOISE = 0.1  # label noise, in units of the label's spread
# Pretraining and probing sizes: the whole test runs in well under a minute on 2 CPU cores.
STEPS = 300
BATCH_GENES = 16
# Half the positives are paralogs (motifs shared, background not); at 0.8 the task is too hard
# to start learning within the budget, at 0.3 isoforms (same background) teach less.
PARALOG_SHARE = 0.5
LEARNING_RATE = 0.005
PROBE_SEEDS = 10
# What "well above random init" means here, in Pearson r of the probe on held-out families.
MIN_TRAINED_R = 0.45
MIN_LIFT = 0.15


def planted_families(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A transcripts table and a groups table (isoclr schemas) of ``N_FAMILIES`` planted families.

    Columns beyond the schemas are dropped by the caller; ``label`` holds the
    family's planted function and the first ``PRETRAIN_FAMILIES`` families form the
    pretraining ("train") split.
    """
    rng = np.random.default_rng(seed)
    motifs = ["".join(rng.choice(BASES, MOTIF_LENGTH)) for _ in range(N_MOTIFS)]
    weights = rng.normal(size=N_MOTIFS)
    transcripts, groups = [], []
    for family in range(N_FAMILIES):
        carried = np.flatnonzero(rng.random(N_MOTIFS) < MOTIF_SHARE)
        label = float(weights[carried].sum())
        split = "train" if family < PRETRAIN_FAMILIES else "test"
        for paralog in range(PARALOGS):
            gene = f"F{family:03d}P{paralog}"
            # Paralogs differ in composition too, a nuisance that dominates untrained features.
            gc = rng.uniform(*GC_RANGE)
            background = rng.choice(BASES, int(rng.integers(*LENGTH)), p=[(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
            for isoform in range(ISOFORMS):
                seq = background.copy()
                if isoform:  # a skipped exon: drop one segment
                    start = int(rng.integers(0, len(seq) - SKIPPED_EXON))
                    seq = np.delete(seq, np.arange(start, start + SKIPPED_EXON))
                seq = list("".join(seq))
                for m in carried:
                    for _ in range(COPIES):
                        at = int(rng.integers(0, len(seq)))
                        seq[at:at] = motifs[m]
                seq = "".join(seq)
                tid = f"T{gene}.{isoform}"
                transcripts.append(
                    {
                        "transcript_id": tid,
                        "gene_id": gene,
                        "gene_name": gene,
                        "annotation": "planted",
                        "species": "none",
                        "assembly": "none",
                        "biotype": None,
                        "seq": seq,
                        "length": len(seq),
                        "cds_start": None,
                        "cds_end": None,
                        "exon_ends": None,
                        "label": label,
                    }
                )
                groups.append(
                    {
                        "transcript_id": tid,
                        "gene_id": gene,
                        "gene_name": gene,
                        "n_isoforms": ISOFORMS,
                        "homology_group": f"F{family:03d}",
                        "split": split,
                        "species": "homo_sapiens",
                        "orthologs": [],
                    }
                )
    transcripts = pd.DataFrame(transcripts)
    transcripts["label"] += NOISE * transcripts["label"].std() * rng.normal(size=len(transcripts))
    for column in ("cds_start", "cds_end"):
        transcripts[column] = transcripts[column].astype("Int64")
    return with_cds_source(transcripts), pd.DataFrame(groups)


def mechanism_config() -> Config:
    params = tiny_params()
    params["model"].update(stem_filters=16, stage_filters=[16, 32, 32, 64], projection_dims=[64, 32])
    params["train"].update(
        steps=STEPS,
        batch_genes=BATCH_GENES,
        max_length=512,
        warmup_steps=10,
        paralog_share=PARALOG_SHARE,
        mask_prob=0.1,
        seed=0,
        learning_rate=LEARNING_RATE,
    )
    params["probe"]["seeds"] = PROBE_SEEDS
    return Config.model_validate(params)


@pytest.mark.slow
def test_contrastive_pretraining_lifts_the_probe_above_random_init(tmp_path, one_thread):
    from isoclr import embed, stage
    from isoclr.fitting import evaluate
    from isoclr.statistics import paired_difference
    from tests.helpers import train_paths

    transcripts, groups = planted_families()
    t_path, g_path = tmp_path / "transcripts.parquet", tmp_path / "groups.parquet"
    transcripts.drop(columns="label").to_parquet(t_path)
    groups.to_parquet(g_path)
    cfg = mechanism_config()
    paths = train_paths(tmp_path, (t_path, g_path))
    stage.run("train", cfg, paths, tracks=False, progress=False)

    # Probe the families pretraining never saw: one transcript per gene, split by family.
    held_out = transcripts.merge(groups[["transcript_id", "homology_group", "split"]], on="transcript_id")
    held_out = held_out[(held_out["split"] == "test") & held_out["transcript_id"].str.endswith(".0")]
    y, families = held_out["label"].to_numpy(), held_out["homology_group"].to_numpy()
    results = {}
    for name, encoder in (
        ("trained", embed.load_encoder(paths.model)),
        ("random_init", embed.random_encoder(cfg.model, seed=cfg.train.seed)),
    ):
        features = embed.embed_table(encoder, held_out[["seq"]], batch_size=64)
        results[name] = evaluate(features, y, families, cfg.probe)
    trained, random_init = results["trained"]["pearson_r"], results["random_init"]["pearson_r"]
    per_seed = {k: v["per_seed"].query("train_fraction == 1.0")["pearson_r"].to_numpy() for k, v in results.items()}
    lift, lo, hi = paired_difference(per_seed["trained"], per_seed["random_init"])
    print(
        f"\nplanted families: probe r trained {trained:.3f}, random init {random_init:.3f}, "
        f"paired lift {lift:+.3f} [95% CI {lo:+.3f}, {hi:+.3f}] over {PROBE_SEEDS} seeds, {len(y)} held-out genes"
    )
    assert trained > MIN_TRAINED_R
    assert lift > MIN_LIFT and lo > 0
