"""Test helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from isoclr.artifacts import MODEL_CHECKPOINT, Paths
from isoclr.config import Annotation, Config
from isoclr.schemas import GROUPS, TRANSCRIPTS, with_cds_source
from tests.conftest import ROOT, tiny_params

# --------------------------------------------------------------------------- annotation files (ingest, validate)

MAX_LENGTH = 1000


def rand_seq(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("ACGT") for _ in range(n))


def gtf_line(tid, start, end, strand="+", feature="exon", gene="G", frame=".", extra="") -> str:
    attrs = "".join(f'{k} "{v}"; ' for k, v in (("transcript_id", tid), ("gene_id", gene)) if v is not None)
    return f"chr1\ttest\t{feature}\t{start}\t{end}\t.\t{strand}\t{frame}\t{attrs}{extra}".rstrip() + "\n"


def fasta(records: dict[str, str] | list[tuple[str, str]]) -> str:
    items = records.items() if isinstance(records, dict) else records
    return "".join(f">{h}\n" + "".join(s[i : i + 10] + "\n" for i in range(0, len(s), 10)) for h, s in items)


def gtf_annotation(tmp_path, gtf_text: str, fasta_text: str, name="toy", gzip_fasta=False) -> Annotation:
    (tmp_path / f"{name}.gtf").write_text(gtf_text)
    fa = tmp_path / f"{name}.fa"
    fa.write_bytes(gzip.compress(fasta_text.encode()) if gzip_fasta else fasta_text.encode())
    return Annotation(
        name=name,
        format="gtf_transcript_fasta",
        gtf=f"{name}.gtf",
        fasta=f"{name}.fa",
        species="homo_sapiens",
        assembly="test",
    )


def gencode_annotation(tmp_path, fasta_text: str, name="gc", gzip_fasta=False) -> Annotation:
    fa = tmp_path / f"{name}.fa"  # deliberately no .gz suffix: gzip is told by magic bytes
    fa.write_bytes(gzip.compress(fasta_text.encode()) if gzip_fasta else fasta_text.encode())
    return Annotation(name=name, format="gencode_fasta", fasta=f"{name}.fa", species="homo_sapiens", assembly="GRCh38")


def gencode_header(tid, gene, length, extra="protein_coding|") -> str:
    return f"{tid}|{gene}|OTTHUMG1|OTTHUMT1|{tid}-201|NAME_{gene}|{length}|{extra}"


def make_config(annotations: list[Annotation], **limits) -> Config:
    """A config reading ``annotations``, with validate limits (``limits`` override) that tiny files pass."""
    return Config.model_validate(
        {
            "data": {"annotations": [a.model_dump() for a in annotations], "paralogs": "p.csv"},
            "validate": {"max_length": MAX_LENGTH, "min_transcripts": 1, "max_quarantine_fraction": 0.5, **limits},
            "probe": {"tasks": [{"name": "t", "file": "t.csv", "join": "gene_id", "id_column": "g", "target": "y"}]},
            "gate": {"rules": [{"task": "t", "min": 0.0}]},
            "finetune": {"tasks": ["t"]},
        }
    )


def rules_of(quarantine: pd.DataFrame) -> dict[str, tuple[str, str, str]]:
    """record -> (rule, action, file name)."""
    return {r.record: (r.rule, r.action, r.file.rsplit("/", 1)[-1]) for r in quarantine.itertuples()}


# Plus strand: exons 101-110 and 201-215 (25 nt); CDS 105-110 + 201-209 crosses the
# junction, stop codon 210-212 -> transcript CDS [4, 22).
# Minus strand: exons 301-312 and 401-408 (20 nt); transcript order starts at 408.
# CDS 401-404 -> tx 4..7, 305-312 -> tx 8..15, stop 302-304 -> tx 16..18 -> [4, 19).
# Phase: CDS 602-630 with frame 2 -> first whole codon at tx 3 -> [3, 30).
GOOD_GTF = (
    "#!genome-build test\n"
    + gtf_line("TP", 101, 110, gene="GP", extra='gene_name "GENEP"; transcript_type "protein_coding";')
    + gtf_line("TP", 201, 215, gene="GP", extra='gene_name "GENEP";')
    + gtf_line("TP", 105, 110, feature="CDS", gene="GP", frame="0")
    + gtf_line("TP", 201, 209, feature="CDS", gene="GP", frame="0")
    + gtf_line("TP", 210, 212, feature="stop_codon", gene="GP", frame="0")
    + gtf_line("TM", 301, 312, "-", gene="GM")
    + gtf_line("TM", 302, 304, "-", feature="stop_codon", gene="GM", frame="0")
    + gtf_line("TM", 305, 312, "-", feature="CDS", gene="GM", frame="2")
    + gtf_line("TM", 401, 408, "-", gene="GM")
    + gtf_line("TM", 401, 404, "-", feature="CDS", gene="GM", frame="0")
    + gtf_line("TN", 501, 530, gene="GN", extra='gene_type "lncRNA";')
    + gtf_line("TF", 601, 630, gene="GF")
    + gtf_line("TF", 602, 630, feature="CDS", gene="GF", frame="2")
)
SEQS = {"TP": rand_seq(25, 1), "TM": rand_seq(20, 2), "TN": rand_seq(30, 3), "TF": rand_seq(30, 4)}


def gencode_records() -> list[tuple[str, str]]:
    """A GENCODE FASTA of 8 records: 4 kept (one without its CDS), 4 quarantined, one CDS stripped."""
    return [
        (gencode_header("ENST1.1", "ENSG1.1", 15, "UTR5:1-3|CDS:4-15|"), "cccATGAAAuuuTAA"),
        (gencode_header("ENST2.1", "ENSG1.1", 12), rand_seq(12, 1)),
        (gencode_header("ENST3.1", "ENSG2.1", 50), rand_seq(40, 2)),  # truncated
        ("ENST4.1 no bars here", rand_seq(12, 3)),
        (gencode_header("ENST5.1", "ENSG3.1", 12, "CDS:2-12|"), rand_seq(12, 4)),  # 11 nt CDS
        (gencode_header("ENST6.1", "ENSG3.1", 12, "CDS:4-15|"), rand_seq(12, 5)),  # CDS past the end
        (gencode_header("ENST2.1", "ENSG1.1", 12), rand_seq(12, 6)),  # duplicate id
        (gencode_header("ENST7.1", "ENSG4.1", 12), "ACGTNNRYACGT"),
    ]


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
                    "species": "homo_sapiens",
                    "orthologs": [],
                }
            )
    transcripts = with_cds_source(pd.DataFrame(rows))
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
    write_go_tables(data / "go_human", n_genes)
    # Localisation labels in the shipped formats: RNAlight by transcript (one conflicting), DM3Loc by gene.
    (data / "rnalight").mkdir()
    location = np.where(transcripts["seq"].str.count("A") / transcripts["length"] > 0.2, "nucleus", "cytoplasm")
    location[0] = "conflicting"
    pd.DataFrame(
        {
            "ensembl_transcript_id": transcripts["transcript_id"],
            "symbol": transcripts["gene_name"],
            "location": location,
        }
    ).assign(sources="synthetic:1").to_csv(
        data / "rnalight" / "rnalight_nucleus_cytoplasm.tsv.gz", sep="\t", index=False
    )
    (data / "dm3loc").mkdir()
    compartments = pd.DataFrame(
        {c: (np.arange(len(at)) % (k + 2) == 0).astype(int) for k, c in enumerate(DM3LOC_LABELS)}, index=at.index
    )
    compartments.insert(0, "ensembl_gene_id", hl["ensembl_gene_id"])
    compartments.to_csv(data / "dm3loc" / "dm3loc_localisation.tsv.gz", sep="\t", index=False)
    return root / "t.parquet", root / "g.parquet"


DM3LOC_LABELS = ("Nucleus", "Cytosol", "Ribosome", "Membrane", "ER")


# A 7-term molecular-function ontology: root R; level 1 A, B; level 2 C, D (is_a A), E, F (is_a B).
GO_SYNTH = {"R": "GO:0003674", "A": "GO:0000001", "B": "GO:0000002", "C": "GO:0000003", "D": "GO:0000004"}
GO_SYNTH |= {"E": "GO:0000005", "F": "GO:0000006"}


def write_go_tables(folder: Path, n_genes: int) -> Path:
    """GO tables in the shipped format (data/go_human) for the synthetic genes G0..: gene g (Entrez g + 1,
    Ensembl ENSG<g>) holds level-2 term C, D, E or F by g % 4, and C as well when g % 3 == 0."""
    folder.mkdir(parents=True)
    t = GO_SYNTH
    edges = [(t["A"], t["R"], "isa"), (t["B"], t["R"], "isa"), (t["C"], t["A"], "isa"), (t["D"], t["A"], "isa")]
    edges += [(t["E"], t["B"], "isa"), (t["F"], t["B"], "isa"), (t["R"], "all", "isa")]
    direct = [(g + 1, f"G{g}", t["CDEF"[g % 4]], "IDA") for g in range(n_genes)]
    direct += [(g + 1, f"G{g}", t["C"], "IEA") for g in range(0, n_genes, 3)]
    genes = [(g + 1, f"G{g}", "", "protein-coding", "1", f"ENSG{g:011d}", "") for g in range(n_genes)]
    tables = {
        "go_mf.tsv.gz": (direct, ["entrez_id", "symbol", "go_id", "evidence"]),
        "go_mf_parents.tsv.gz": (edges, ["child_go_id", "parent_go_id", "relationship"]),
        "go_terms.tsv.gz": ([(g, f"term {k}", "MF", "") for k, g in t.items()], ["go_id", "term", "ontology", "def"]),
        "genes_entrez_symbol_ensembl.tsv.gz": (
            genes,
            [
                "entrez_id",
                "symbol",
                "gene_name",
                "gene_type",
                "chromosome",
                "ensembl_gene_ids",
                "ensembl_transcript_ids",
            ],
        ),
    }
    for name, (rows, columns) in tables.items():
        with gzip.open(folder / name, "wt") as fh:
            pd.DataFrame(rows, columns=columns).to_csv(fh, sep="\t", index=False)
    return folder


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


# --------------------------------------------------------------------------- metrics


def metrics_config(**metrics_cfg) -> Config:
    """The tiny test config with ``metrics`` settings changed."""
    params = tiny_params()
    params["metrics"] = {**params.get("metrics", {}), **metrics_cfg}
    return Config.model_validate(params)


# --------------------------------------------------------------------------- training data and the train stage


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
                    "species": "homo_sapiens",
                    "orthologs": [],
                }
            )
    return TRANSCRIPTS.validate(with_cds_source(pd.DataFrame(transcripts))), GROUPS.validate(pd.DataFrame(groups))


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


# --------------------------------------------------------------------------- a repository copy for `dvc repro`


def run_checked(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``cmd`` with this interpreter's tools first on PATH; fail the test with its output if it fails."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def repro_workspace(dest: Path, params: dict) -> Path:
    """The repository's files (committed or not, minus ignored ones) in a new git repo at ``dest`` with
    ``params`` as params.yaml, data pulled by DVC, and the pipeline run once by `dvc repro`."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q"]
    run_checked(["git", "init", "-q"], dest)
    run_checked([*commit, "-am", "snapshot", "--allow-empty"], dest)
    run_checked(["git", "add", "-A"], dest)
    run_checked([*commit, "-m", "snapshot"], dest)
    run_checked(["dvc", "pull", "--quiet", "data.dvc"], dest)
    run_checked(["dvc", "repro"], dest)
    return dest
