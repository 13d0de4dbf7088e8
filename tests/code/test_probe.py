"""Probe stage: label joins, k-mer features, the ridge evaluation and the stage end to end."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isoclr.config import Config, ProbeConfig, ProbeTask
from isoclr.probe import LabelJoinError, evaluate, kmer_features, probe_splits, task_table
from tests.conftest import tiny_params

BASES = np.array(list("ACGT"))


def probe_cfg(**update) -> ProbeConfig:
    task = ProbeTask(name="t", file="x.csv", join="sequence", id_column="seq", target="y", group_by="prefix5")
    return ProbeConfig(tasks=[task], **update)


# --------------------------------------------------------------------------- k-mers


def test_kmer_frequencies_by_hand():
    f = kmer_features(["ACGTA", "AANAA", "A"], k=2)
    assert f.shape == (3, 16)
    # ACGTA: AC, CG, GT, TA once each (index = 4 * first + second, A=0 C=1 G=2 T=3)
    expected = np.zeros(16)
    expected[[1, 6, 11, 12]] = 0.25
    np.testing.assert_allclose(f[0], expected)
    # N breaks k-mers: only the two AA windows count
    assert f[1, 0] == 1.0 and f[1].sum() == 1.0
    # too short for one k-mer: an all-zero row, not NaN
    assert not f[2].any()


def test_kmers_do_not_cross_sequence_boundaries():
    f = kmer_features(["AC", "GT"], k=2)
    assert f[0, 1] == 1.0 and f[1, 11] == 1.0  # AC, GT
    assert f[:, 6].sum() == 0  # "CG" only exists across the boundary


def test_kmer_features_match_a_naive_count():
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(BASES, rng.integers(3, 40))) for _ in range(30)] + ["acgun", "GGG"]
    k = 3
    index = {"".join(p): i for i, p in enumerate(itertools.product("ACGT", repeat=k))}
    f = kmer_features(seqs, k)
    for row, seq in zip(f, seqs):
        seq = seq.upper().replace("U", "T")
        counts = Counter(seq[i : i + k] for i in range(len(seq) - k + 1))
        counts = {kmer: c for kmer, c in counts.items() if kmer in index}
        expected = np.zeros(4**k)
        for kmer, c in counts.items():
            expected[index[kmer]] = c / sum(counts.values())
        np.testing.assert_allclose(row, expected)


# --------------------------------------------------------------------------- evaluation


def synthetic(n: int = 600, d: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    groups = rng.integers(0, n // 3, n).astype(str)
    return rng, x, groups


def test_linear_target_is_recovered_and_noise_is_not():
    rng, x, groups = synthetic()
    y = x @ rng.normal(size=x.shape[1]) + 0.1 * rng.normal(size=len(x))
    cfg = probe_cfg(seeds=3)
    good = evaluate(x, y, groups, cfg)
    assert good["pearson_r"] > 0.9 and good["spearman_r"] > 0.9
    lo, hi = good["pearson_r_ci95"]
    assert lo <= good["pearson_r"] <= hi
    assert len(good["per_seed"]["pearson_r"]) == 3
    noise = evaluate(rng.normal(size=x.shape), y, groups, cfg)
    assert abs(noise["pearson_r"]) < 0.2
    assert noise["mse"] > 10 * good["mse"]


def test_no_group_in_two_splits_for_any_seed():
    _, x, groups = synthetic()
    cfg = probe_cfg(seeds=4)
    splits = probe_splits(groups, cfg)
    assert len(splits) == 4
    for split in splits:
        per_group = pd.Series(split).groupby(groups).nunique()
        assert (per_group == 1).all()
        assert set(split) == {"train", "val", "test"}
    # seeds differ, and the seed-0 predictions are exactly the seed-0 test rows
    assert (splits[0] != splits[1]).any()
    result = evaluate(x, x[:, 0], groups, cfg)
    assert result["predictions"]["index"] == np.flatnonzero(splits[0] == "test").tolist()
    assert result["per_seed"]["n_test"] == [int((s == "test").sum()) for s in splits]


def test_evaluate_rejects_too_few_groups():
    x = np.arange(10.0)[:, None]
    with pytest.raises(ValueError, match="too few groups"):
        evaluate(x, x[:, 0], np.zeros(10), probe_cfg())


# --------------------------------------------------------------------------- label joins


def transcripts_table() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [
        ("ENST1.1", "ENSG01.3", "A" * 10),
        ("ENST2.1", "ENSG01.3", "C" * 20),  # the longest of ENSG01: its representative
        ("ENST3.2", "ENSG02.1", "G" * 15),
        ("ENST4.1", "ENSG04.7_PAR_Y", "T" * 12),
        ("TCONS_1", "XLOC_000001", "ACGT" * 5),
    ]
    t = pd.DataFrame(rows, columns=["transcript_id", "gene_id", "seq"])
    t["cds_start"] = pd.array([0, 2, None, None, None], dtype="Int64")
    t["cds_end"] = pd.array([9, 11, None, None, None], dtype="Int64")
    t["exon_ends"] = [[9], [5, 19], None, None, None]
    groups = pd.DataFrame(
        {"transcript_id": t["transcript_id"], "gene_id": t["gene_id"], "homology_group": ["H1", "H1", "H2", "H4", "H9"]}
    )
    return t, groups


def test_gene_id_join_strips_versions_and_takes_the_longest_isoform(tmp_path):
    (tmp_path / "hl.tsv").write_text(
        "ensembl_gene_id\tname\thl\n"
        "ENSG01\tA\t1.5\n"
        "ENSG02.9\tB\t-0.5\n"
        "ENSG04\tD\t2.0\n"
        "ENSG03\tC\tNA\n"
        "ENSG99\tZ\t3.0\n"
    )
    task = ProbeTask(name="hl", file="hl.tsv", sep="\t", join="gene_id", id_column="ensembl_gene_id", target="hl")
    transcripts, groups = transcripts_table()
    table, notes = task_table(task, tmp_path, transcripts, groups)

    by_gene = table.set_index("id")
    assert list(by_gene.index) == ["ENSG01", "ENSG02", "ENSG04"]
    assert by_gene.loc["ENSG01", "transcript_id"] == "ENST2.1"
    assert by_gene.loc["ENSG01", "seq"] == "C" * 20
    assert by_gene.loc["ENSG01", "cds_start"] == 2 and list(by_gene.loc["ENSG01", "exon_ends"]) == [5, 19]
    assert by_gene.loc["ENSG02", "target"] == -0.5
    assert list(by_gene["group"]) == ["H1", "H2", "H4"]
    assert notes["n"] == 3 and notes["dropped_na"] == 1 and notes["unmatched"] == 1
    assert notes["unmatched_examples"] == ["ENSG99"]
    assert notes["split_kind"] == "homology_group"


def test_no_matching_id_raises_a_label_join_error(tmp_path):
    (tmp_path / "hl.tsv").write_text("gene\thl\nENSG77\t1.0\nENSG78\t2.0\n")
    task = ProbeTask(name="hl", file="hl.tsv", sep="\t", join="gene_id", id_column="gene", target="hl")
    with pytest.raises(LabelJoinError) as err:
        task_table(task, tmp_path, *transcripts_table())
    message = str(err.value)
    assert "hl.tsv" in message and "'gene'" in message and "ENSG77" in message


def test_missing_column_is_named(tmp_path):
    (tmp_path / "hl.tsv").write_text("gene\tvalue\nENSG01\t1.0\n")
    task = ProbeTask(name="hl", file="hl.tsv", sep="\t", join="gene_id", id_column="gene", target="hl")
    with pytest.raises(ValueError, match=r"hl\.tsv.*\['hl'\]"):
        task_table(task, tmp_path, *transcripts_table())


def test_sequence_join_groups_by_prefix_and_counts_na(tmp_path):
    import gzip

    lines = [
        "AAAAACGTAC\t0.5\tNA",
        "AAAAAGGGGG\t0.7\t1.0",  # shares the 5-nt prefix with the first row
        "ccccuacgua\t0.1\t2.0",  # lower case and U are normalised
        "CCCCCTTTTT\tNA\t3.0",  # no target: dropped, counted
        "GGXGG\t0.2\t4.0",  # not a nucleotide sequence: dropped, counted
    ]
    with gzip.open(tmp_path / "stab.tsv.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    task = ProbeTask(
        name="stab", file="stab.tsv.gz", sep="\t", header=["sequence", "a", "b"], join="sequence",
        id_column="sequence", target="a", group_by="prefix5",
    )
    table, notes = task_table(task, tmp_path, *transcripts_table())
    assert table["seq"].tolist() == ["AAAAACGTAC", "AAAAAGGGGG", "CCCCTACGTA"]
    assert table["group"].tolist() == ["AAAAA", "AAAAA", "CCCCT"]
    assert table["target"].tolist() == [0.5, 0.7, 0.1]
    assert "cds_start" not in table.columns
    assert notes["dropped_na"] == 1 and notes["dropped_bad_sequence"] == 1 and notes["n_groups"] == 2


def test_sequence_join_groups_by_a_column_and_subsamples_reproducibly(tmp_path):
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(BASES, 20)) for _ in range(50)]
    labels = pd.DataFrame({"utr": seqs, "mrl": rng.normal(size=50), "mother": [f"m{i // 5}" for i in range(50)]})
    labels.to_csv(tmp_path / "mrl.csv")
    task = ProbeTask(
        name="mrl", file="mrl.csv", join="sequence", id_column="utr", target="mrl", group_by="mother", max_rows=20
    )
    table, notes = task_table(task, tmp_path, *transcripts_table())
    again, _ = task_table(task, tmp_path, *transcripts_table())
    other, _ = task_table(task, tmp_path, *transcripts_table(), sample_seed=1)
    assert len(table) == 20 and notes["subsampled_from"] == 50
    pd.testing.assert_frame_equal(table, again)
    assert set(table["seq"]) != set(other["seq"])
    mother = labels.set_index("utr")["mother"]
    assert (table["group"] == table["seq"].map(mother)).all()


def test_all_sequences_unusable_raises(tmp_path):
    (tmp_path / "bad.csv").write_text("s,y\nXYZ,1\nHELLO,2\n")
    task = ProbeTask(name="b", file="bad.csv", join="sequence", id_column="s", target="y", group_by="prefix2")
    with pytest.raises(LabelJoinError, match="bad.csv"):
        task_table(task, tmp_path, *transcripts_table())


# --------------------------------------------------------------------------- the stage


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
                {"transcript_id": tid, "gene_id": f"ENSG{g:011d}.4", "gene_name": f"G{g}", "annotation": "syn",
                 "species": "homo_sapiens", "assembly": "none", "biotype": "protein_coding", "seq": seq,
                 "length": len(seq), "cds_start": 3, "cds_end": 3 + 3 * ((len(seq) - 6) // 3),
                 "exon_ends": [len(seq) // 2, len(seq) - 1]}
            )
            groups.append({"transcript_id": tid, "gene_id": f"ENSG{g:011d}.4", "gene_name": f"G{g}",
                           "n_isoforms": 1 + g % 2, "homology_group": f"H{g // 2}", "split": "train"})
    transcripts = pd.DataFrame(rows)
    transcripts["cds_start"] = transcripts["cds_start"].astype("Int64")
    transcripts["cds_end"] = transcripts["cds_end"].astype("Int64")
    transcripts.to_parquet(root / "t.parquet")
    pd.DataFrame(groups).to_parquet(root / "g.parquet")

    data = root / "data"
    data.mkdir()
    at = transcripts.drop_duplicates("gene_id")
    hl = pd.DataFrame({"ensembl_gene_id": at["gene_id"].str.replace(r"\.\d+$", "", regex=True),
                       "external_gene_name": at["gene_name"],
                       "human_PC1": at["seq"].str.count("A") / at["length"] + 0.01 * rng.normal(size=len(at))})
    hl.to_csv(data / "saluki_human_halflife_pc1.tsv", sep="\t", index=False)
    utrs = ["".join(rng.choice(BASES, 50)) for _ in range(90)]
    pd.DataFrame({"utr": utrs, "hrl": [u.count("G") / 10 for u in utrs], "mother": [f"m{i // 3}" for i in range(90)]}
                 ).to_csv(data / "sample2019_native_5utr_mrl.csv")
    frags = ["".join(rng.choice(BASES, 160)) for _ in range(90)]
    stab = [f"{f}\t{f.count('T') / 160:.4f}\t{'NA' if i % 10 == 0 else '1.0'}" for i, f in enumerate(frags)]
    stab[5] = f"{frags[5]}\tNA\tNA"
    import gzip

    with gzip.open(data / "siegel2022_3utr_stability.tsv.gz", "wt") as fh:
        fh.write("\n".join(stab) + "\n")
    return root / "t.parquet", root / "g.parquet"


@pytest.mark.slow
def test_run_probes_end_to_end(tmp_path):
    import torch

    from isoclr import tracks
    from isoclr.embed import random_encoder
    from isoclr.probe import run_probes

    params = tiny_params()
    params["probe"]["tasks"][2]["max_rows"] = 60
    cfg = Config.model_validate(params)
    t_path, g_path = synthetic_inputs(tmp_path)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    encoder = random_encoder(cfg.model, seed=123)  # stands in for a trained encoder: not the random_init seed
    torch.save(
        {"state_dict": encoder.state_dict(), "model_config": cfg.model.model_dump(mode="json"),
         "channels": list(tracks.CHANNELS)},
        model_dir / "encoder.pt",
    )
    out = tmp_path / "probe"
    metrics = run_probes(cfg, tmp_path / "data", t_path, g_path, model_dir, out)

    assert set(metrics) == {"halflife", "mrl", "utr3_stability"}
    for models in metrics.values():
        assert set(models) == {"isoclr", "random_init", "kmer"}
        for values in models.values():
            assert {"pearson_r", "pearson_r_ci95", "spearman_r", "mse", "n"} <= set(values)
    assert metrics["halflife"]["kmer"]["n"] == 48
    assert metrics["mrl"]["kmer"]["pearson_r"] > 0.5  # G content is a k-mer feature
    assert metrics["utr3_stability"]["kmer"]["n"] == 60
    # the trained and random encoders are different features, evaluated on identical splits
    assert metrics["mrl"]["isoclr"]["pearson_r"] != metrics["mrl"]["random_init"]["pearson_r"]
    assert metrics["mrl"]["isoclr"]["n_test"] == metrics["mrl"]["kmer"]["n_test"]

    assert json.loads((out / "metrics.json").read_text()) == metrics
    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == ["task", "model", "measured", "predicted"]
    assert set(predictions["model"]) == {"isoclr", "random_init", "kmer"}
    table = pd.read_csv(out / "table.csv")
    assert len(table) == 9
    notes = json.loads((out / "tasks.json").read_text())
    assert notes["utr3_stability"]["dropped_na"] == 1
    assert "| utr3_stability |" in (out / "table.md").read_text()
    assert (out / "predicted_vs_measured.png").stat().st_size > 0


def test_kmer_features_ignore_non_ascii_without_shifting_positions():
    f = kmer_features(["AßC", "ACGT"], k=2)  # "ß".upper() is "SS": must not shift the next sequence
    assert not f[0].any()
    np.testing.assert_allclose(f[1, [1, 6, 11]], 1 / 3)
