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
from isoclr.probe import (
    LabelJoinError,
    _fit_predict,
    _ridge_select,
    evaluate,
    kmer_features,
    low_data_rows,
    mean_ci,
    paired_difference,
    probe_splits,
    task_table,
)
from isoclr.store import StoreError
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


def full_split(result: dict) -> pd.DataFrame:
    return result["per_seed"].query("train_fraction == 1.0")


def test_linear_target_is_recovered_and_noise_is_not():
    rng, x, groups = synthetic()
    y = x @ rng.normal(size=x.shape[1]) + 0.1 * rng.normal(size=len(x))
    cfg = probe_cfg(seeds=3)
    good = evaluate(x, y, groups, cfg)
    assert good["pearson_r"] > 0.9 and good["spearman_r"] > 0.9
    lo, hi = good["pearson_r_ci95"]
    assert lo <= good["pearson_r"] <= hi
    assert full_split(good)["seed"].tolist() == [0, 1, 2]
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
    assert full_split(result)["n_test"].tolist() == [int((s == "test").sum()) for s in splits]
    # fitted on the train rows only: val chooses the penalty, test scores
    assert full_split(result)["n_train"].tolist() == [int((s == "train").sum()) for s in splits]


def test_evaluate_rejects_too_few_groups():
    x = np.arange(10.0)[:, None]
    with pytest.raises(ValueError, match="too few groups"):
        evaluate(x, x[:, 0], np.zeros(10), probe_cfg())


def test_penalty_is_chosen_on_val_and_features_are_scaled_on_train_only():
    rng, x, groups = synthetic(n=400, d=6)
    y = x[:, 0] + 0.5 * rng.normal(size=len(x))
    cfg = probe_cfg(seeds=2)
    split = probe_splits(groups, cfg)[0]
    fit, val, test = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    pred, alpha = _fit_predict("regression", x, y, fit, val, test, cfg.alphas)
    assert alpha in cfg.alphas
    # Scaling a feature on val/test rows only changes nothing the fit saw: the same model, rescaled inputs.
    shifted = x.copy()
    shifted[test, 1] += 1000.0
    pred_shifted, alpha_shifted = _fit_predict("regression", shifted, y, fit, val, test, cfg.alphas)
    train_only = x.copy()
    train_only[fit, 1] *= 3.0
    _, alpha_train = _fit_predict("regression", train_only, y, fit, val, test, cfg.alphas)
    assert alpha_shifted == alpha
    assert not np.allclose(pred_shifted, pred)  # the test rows moved ...
    np.testing.assert_allclose(pred_shifted - pred, (pred_shifted - pred)[0])  # ... by one constant shift
    # and the val rows alone pick the penalty: a target the val rows cannot see picks the strongest one
    y_noise = y.copy()
    y_noise[val] = rng.normal(size=len(val))
    _, alpha_noise = _fit_predict("regression", x, y_noise, fit, val, test, cfg.alphas)
    assert alpha_noise >= alpha and alpha_train in cfg.alphas


def test_ridge_path_matches_sklearn_ridge():
    from sklearn.linear_model import Ridge

    rng, x, _ = synthetic(n=120, d=8)
    y = x @ rng.normal(size=8) + rng.normal(size=120)
    xv, yv = rng.normal(size=(40, 8)), rng.normal(size=40)
    alpha, w, b = _ridge_select(x - x.mean(0), y, xv, yv, [alpha_only := 3.0])
    reference = Ridge(alpha=alpha_only).fit(x - x.mean(0), y)
    assert alpha == alpha_only
    np.testing.assert_allclose(w, reference.coef_, rtol=1e-8)
    assert b == pytest.approx(reference.intercept_)


def test_classification_reports_auroc_and_auprc():
    rng, x, groups = synthetic()
    y = (x[:, 0] + 0.3 * rng.normal(size=len(x)) > 0.5).astype(float)
    cfg = probe_cfg(seeds=3)
    good = evaluate(x, y, groups, cfg, task_type="classification")
    assert good["auroc"] > 0.9 and good["auprc"] > 0.8 and "pearson_r" not in good
    chance = evaluate(rng.normal(size=x.shape), y, groups, cfg, task_type="classification")
    assert abs(chance["auroc"] - 0.5) < 0.1
    assert chance["auprc"] < good["auprc"]
    probabilities = np.asarray(good["predictions"]["predicted"])
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_low_data_points_share_subsets_across_models_and_skip_when_too_small():
    rng, x, groups = synthetic(n=600)
    y = x[:, 0] + rng.normal(size=len(x))
    cfg = probe_cfg(seeds=3, train_fractions=[1.0, 0.1, 0.01], min_train_rows=20)
    a = evaluate(x, y, groups, cfg)
    b = evaluate(rng.normal(size=x.shape), y, groups, cfg)
    # ~420 train rows: 0.1 leaves ~42 (runs), 0.01 leaves ~4 (skipped, with the reason)
    assert set(a["per_seed"]["train_fraction"]) == {1.0, 0.1}
    assert 0.01 in a["skipped"] and "min_train_rows 20" in a["skipped"][0.01]
    tenth = a["per_seed"].query("train_fraction == 0.1")
    full = full_split(a)
    assert (tenth["n_train"].to_numpy() < full["n_train"].to_numpy() / 5).all()
    assert (tenth["n_test"].to_numpy() == full["n_test"].to_numpy()).all()  # the test rows never change
    # the same rows for every model: identical sizes seed by seed
    assert a["per_seed"]["n_train"].tolist() == b["per_seed"]["n_train"].tolist()
    train_rows = np.arange(100)
    assert (low_data_rows(train_rows, 0.1, 0) == low_data_rows(train_rows, 0.1, 0)).all()
    assert len(low_data_rows(train_rows, 0.1, 0)) == 10 and (low_data_rows(train_rows, 1.0, 3) == train_rows).all()


def test_paired_difference_is_tighter_than_unpaired_when_splits_share_noise():
    rng = np.random.default_rng(0)
    split_noise = rng.normal(scale=0.1, size=10)  # what a hard or easy split does to both models
    a = 0.5 + split_noise + rng.normal(scale=0.01, size=10)
    b = 0.4 + split_noise + rng.normal(scale=0.01, size=10)
    mean, lo, hi = paired_difference(a, b)
    assert mean == pytest.approx(0.1, abs=0.02) and lo > 0.05
    _, a_lo, a_hi = mean_ci(a)
    assert hi - lo < (a_hi - a_lo) / 4
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference(a, b[:5])


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
    assert notes["split_kind"] == "by homology group (genes known)"
    assert notes["tracks"].startswith("annotation: CDS track on 1 of 3 rows")


def annotated() -> tuple[pd.DataFrame, pd.DataFrame]:
    """transcripts_table() with gene names and biotypes."""
    t, groups = transcripts_table()
    t["gene_name"] = ["ONE", "ONE", "TWO", "FOUR", None]
    t["biotype"] = ["protein_coding", "retained_intron", "lincRNA", "protein_coding", None]
    return t, groups


def test_transcript_id_and_gene_name_joins(tmp_path):
    (tmp_path / "tx.csv").write_text("tx,y\nENST2,1.0\nENST3.7,2.0\nENST9,3.0\n")
    task = ProbeTask(name="tx", file="tx.csv", join="transcript_id", id_column="tx", target="y")
    table, notes = task_table(task, tmp_path, *annotated())
    assert table["transcript_id"].tolist() == ["ENST2.1", "ENST3.2"] and notes["unmatched"] == 1
    assert table["group"].tolist() == ["H1", "H2"]

    (tmp_path / "sym.csv").write_text("symbol,y\nONE,1.0\nFOUR,2.0\nNOPE,3.0\n")
    task = ProbeTask(name="sym", file="sym.csv", join="gene_name", id_column="symbol", target="y", group_by="none")
    table, notes = task_table(task, tmp_path, *annotated())
    assert dict(zip(table["id"], table["transcript_id"])) == {"ONE": "ENST2.1", "FOUR": "ENST4.1"}  # longest isoform
    assert notes["split_kind"] == "random (no grouping known)" and table["group"].nunique() == 2


def test_classification_task_from_the_annotation_with_sequence_only_tracks(tmp_path):
    task = ProbeTask(
        name="coding", source="annotation", join="transcript_id", id_column="transcript_id", target="biotype",
        type="classification", positive=["protein_coding"], negative=["lincRNA"], tracks="sequence",
    )
    table, notes = task_table(task, tmp_path, *annotated())
    assert dict(zip(table["transcript_id"], table["target"])) == {"ENST1.1": 1.0, "ENST3.2": 0.0, "ENST4.1": 1.0}
    assert notes["dropped_other_class"] == 1 and notes["dropped_na"] == 1 and notes["n_positive"] == 2
    # ENST1 has a CDS in the annotation: with tracks: sequence it must not reach the encoder
    assert not {"cds_start", "cds_end", "exon_ends"} & set(table.columns)
    assert notes["tracks"].startswith("sequence only") and notes["cds_track_rows"] == 0


def test_task_declarations_are_checked():
    with pytest.raises(ValueError, match="positive target values"):
        ProbeTask(name="c", file="f", join="gene_id", id_column="g", target="t", type="classification")
    with pytest.raises(ValueError, match="homology needs an annotation join"):
        ProbeTask(name="s", file="f", join="sequence", id_column="s", target="t")
    with pytest.raises(ValueError, match="takes no file"):
        ProbeTask(name="a", source="annotation", file="f", join="transcript_id", id_column="t", target="b")


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
                 "species": "homo_sapiens", "assembly": "none", "seq": seq,
                 "biotype": "protein_coding" if g % 2 else "lincRNA",
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


def save_encoder(cfg: Config, seed: int, folder: Path) -> Path:
    """A randomly initialised encoder saved as a trained one would be (a stand-in: no training here)."""
    import torch

    from isoclr import tracks
    from isoclr.embed import random_encoder

    folder.mkdir(parents=True)
    torch.save(
        {"state_dict": random_encoder(cfg.model, seed=seed).state_dict(),
         "model_config": cfg.model.model_dump(mode="json"), "channels": list(tracks.CHANNELS)},
        folder / "encoder.pt",
    )
    return folder


@pytest.mark.slow
def test_run_probes_end_to_end(tmp_path):
    from isoclr.probe import run_probes
    from isoclr.registry import register, set_champion

    params = tiny_params()
    params["probe"]["tasks"][2]["max_rows"] = 60
    params["probe"]["seeds"] = 3
    params["probe"]["min_train_rows"] = 5  # the tiny tasks then have a 0.1 point too
    params["registry"] = {"uri": f"file://{tmp_path / 'registry'}"}
    cfg = Config.model_validate(params)
    t_path, g_path = synthetic_inputs(tmp_path)
    model_dir = save_encoder(cfg, 123, tmp_path / "model")  # not the random_init seed
    champion = save_encoder(cfg, 456, tmp_path / "champion")
    set_champion(cfg.registry.uri, version := register(cfg.registry.uri, champion, {}, {"metrics": {}}))
    out = tmp_path / "probe"
    metrics = run_probes(cfg, tmp_path / "data", t_path, g_path, model_dir, out)

    assert set(metrics) == {"halflife", "mrl", "utr3_stability", "coding"}
    models = {"isoclr", "random_init", "kmer", "champion"}
    paired = {"isoclr_minus_random_init", "isoclr_minus_kmer", "isoclr_minus_champion"}
    for task, entries in metrics.items():
        assert set(entries) == models | paired
        metric = "auroc" if task == "coding" else "pearson_r"
        for name in models:
            assert {metric, f"{metric}_ci95", "n", "n_train", "n_test", "seeds"} <= set(entries[name])
            assert entries[name]["seeds"] == 3
        for name in paired:
            assert entries[name]["paired"] is True and len(entries[name][f"{metric}_ci95"]) == 2
        assert entries["champion"]["version"] == version
        # the paired difference is the mean of per-seed differences on the same splits
        assert entries["isoclr_minus_kmer"][metric] == pytest.approx(entries["isoclr"][metric] - entries["kmer"][metric])
    assert metrics["halflife"]["kmer"]["n"] == 48
    assert metrics["mrl"]["kmer"]["pearson_r"] > 0.5  # G content is a k-mer feature
    assert metrics["utr3_stability"]["kmer"]["n"] == 60
    assert metrics["mrl"]["isoclr"]["pearson_r"] != metrics["mrl"]["champion"]["pearson_r"]
    assert metrics["mrl"]["isoclr"]["n_test"] == metrics["mrl"]["kmer"]["n_test"]

    assert json.loads((out / "metrics.json").read_text()) == metrics
    per_seed = pd.read_csv(out / "per_seed.csv")
    assert set(per_seed["model"]) == models and set(per_seed["train_fraction"]) >= {1.0, 0.1}
    low = pd.read_csv(out / "low_data.csv")
    assert set(low["task"]) == set(metrics) and (low.groupby(["task", "model"]).size() >= 1).all()
    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == ["task", "model", "measured", "predicted"]
    notes = json.loads((out / "tasks.json").read_text())
    assert notes["utr3_stability"]["dropped_na"] == 1
    assert notes["mrl"]["tracks"].startswith("sequence only") and notes["halflife"]["champion"] == version
    assert "0.005" in notes["halflife"]["skipped_fractions"]

    summary = (out / "table.md").read_text()
    for heading in ("## Results", "## Model vs baselines (paired, same splits)", "## Low-data curves",
                    "## Label sets", "## Remarks"):
        assert heading in summary
    assert "isoclr - champion" in summary and "skipped" in summary and "by homology group" in summary
    report = (out / "report.html").read_text()
    assert report.count('src="data:image/png;base64,') == 3
    assert "http://" not in report and "https://" not in report  # self-contained
    for plot in ("predicted_vs_measured", "low_data", "model_vs_baselines"):
        assert (out / "plots" / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"


def test_kmer_features_ignore_non_ascii_without_shifting_positions():
    f = kmer_features(["AßC", "ACGT"], k=2)  # "ß".upper() is "SS": must not shift the next sequence
    assert not f[0].any()
    np.testing.assert_allclose(f[1, [1, 6, 11]], 1 / 3)


def test_run_probes_reads_rows_from_the_track_store(tmp_path):
    """The probes embed annotated rows from the store: one built before a sequence changed is refused as stale."""
    from isoclr.probe import run_probes
    from isoclr.store import write_store

    cfg = Config.model_validate(tiny_params())  # the first task, half-life, joins its rows to the annotation
    t_path, g_path = synthetic_inputs(tmp_path)
    model_dir = save_encoder(cfg, 123, tmp_path / "model")
    older = pd.read_parquet(t_path)
    older.loc[0, "seq"] += "ACG"
    older.to_parquet(tmp_path / "older.parquet")
    write_store(tmp_path / "older.parquet", tmp_path / "tracks")
    with pytest.raises(StoreError, match=rf"{older.loc[0, 'transcript_id']}.*stale"):
        run_probes(cfg, tmp_path / "data", t_path, g_path, model_dir, tmp_path / "probe", tmp_path / "tracks")
