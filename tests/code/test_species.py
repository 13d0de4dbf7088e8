"""`isoclr synth --species N`: related species whose one-to-one orthologs are diverged copies carrying the same
planted function, written so the validate stage ingests every species; one species is today's synth."""

from __future__ import annotations

import filecmp
import hashlib
import itertools

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from isoclr import species as species_module
from isoclr.cli import app
from isoclr.cli import synth as synth_command
from isoclr.species import species, species_code, species_name
from isoclr.synth import Plant, synth

N = 300
N_SPECIES = 3
DIVERGENCE = 0.1
FILES = ("annotation.gtf", "genome.fa", "genome.fa.fai", "paralog_pairs.csv")
# sha256 of synth(out, 400, seed=5, plant=Plant())'s annotation.gtf, genome.fa, genome.fa.fai, paralog_pairs.csv
# and function_labels.csv, concatenated, as written before isoclr.species existed: one species stays that world.
SINGLE_SPECIES_SHA256 = "33822b5bb84a33f7f90001ee61bfe937aded9732cc7602fb735fce063926a846"


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """The same seed planted (label noise 0) and unplanted: planting moves no gene model, so their
    difference is where the motifs went."""
    root = tmp_path_factory.mktemp("species")
    kwargs = {"n_species": N_SPECIES, "seed": 4, "ortholog_divergence": DIVERGENCE, "truth": True}
    planted = species(root / "planted", N, plant=Plant(noise=0.0), **kwargs)
    plain = species(root / "plain", N, **kwargs)
    return planted, plain


def _truth(result) -> pd.DataFrame:
    """The generated transcripts of all species, with a species column."""
    return pd.concat([a.truth.assign(species=name) for name, a in zip(result.species, result.annotations, strict=True)])


def _full_length(result) -> pd.DataFrame:
    """Per gene (all species): its longest transcript, which is the full exon chain every species keeps."""
    truth = _truth(result)
    truth = truth.assign(n=truth.seq.str.len()).sort_values(["n", "transcript_id"])
    return truth.drop_duplicates("gene_id", keep="last").set_index("gene_id")


def test_one_species_is_todays_synth_byte_for_byte(tmp_path):
    one = species(tmp_path / "one", 400, n_species=1, seed=5, plant=Plant())
    names = (*FILES, "function_labels.csv")
    digest = hashlib.sha256(b"".join((tmp_path / "one" / n).read_bytes() for n in names)).hexdigest()
    assert digest == SINGLE_SPECIES_SHA256
    assert one.orthologs is None and not (tmp_path / "one" / "orthologs.tsv").exists()
    # The command, with --species 1 or without it, writes what synth() writes.
    runner = CliRunner()
    for folder, extra in (("cli1", ["--species", "1"]), ("cli", [])):
        result = runner.invoke(app, ["synth", str(tmp_path / folder), "--transcripts", "200", "--seed", "1", *extra])
        assert result.exit_code == 0, result.output
    synth(tmp_path / "lib", 200, seed=1)
    for name in FILES:
        assert filecmp.cmp(tmp_path / "cli1" / name, tmp_path / "lib" / name, shallow=False)
        assert filecmp.cmp(tmp_path / "cli" / name, tmp_path / "lib" / name, shallow=False)


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    for folder, seed in (("a", 1), ("b", 1), ("c", 2)):
        species(tmp_path / folder, 120, n_species=2, seed=seed, plant=Plant())
    tops = ("orthologs.tsv", "paralog_pairs.csv", "function_labels.csv")
    per_species = [f"{species_name(k)}/{n}" for k in range(2) for n in FILES]
    for name in (*tops, *per_species):
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False), name
    # params.yaml names its own folder as data.dir, and nothing else differs.
    a, b = (yaml.safe_load((tmp_path / f / "params.yaml").read_text())["data"] for f in ("a", "b"))
    assert a.pop("dir") != b.pop("dir") and a == b
    for name in ("synth_a/genome.fa", "synth_b/annotation.gtf", "function_labels.csv"):
        assert not filecmp.cmp(tmp_path / "a" / name, tmp_path / "c" / name, shallow=False), name


def test_orthologs_differ_at_the_divergence_rate_and_carry_identical_motifs(worlds):
    planted, plain = worlds
    seqs, bare = _full_length(planted).seq, _full_length(plain).seq
    orthologs = pd.read_csv(planted.orthologs, sep="\t")
    changed = {pair: [] for pair in itertools.combinations(planted.species, 2)}
    n_motif_bases = 0
    for row in orthologs.itertuples():
        a, b = (np.frombuffer(seqs[g].encode(), np.uint8) for g in (row.gene_A, row.gene_B))
        a0, b0 = (np.frombuffer(bare[g].encode(), np.uint8) for g in (row.gene_A, row.gene_B))
        assert len(a) == len(b) == len(a0)  # the exon model is kept
        motif = (a != a0) | (b != b0)
        assert (a[motif] == b[motif]).all()  # every planted base is the same in both copies
        n_motif_bases += int(motif.sum())
        changed[(row.species_A, row.species_B)].append((int((a != b)[~motif].sum()), int((~motif).sum())))
    assert n_motif_bases > 1000
    rates = {pair: sum(c for c, _ in v) / sum(n for _, n in v) for pair, v in changed.items()}
    # First species vs the others: the divergence; two diverged copies: ~1 - (1 - d)^2 - d^2/3.
    for (first, other), rate in rates.items():
        expected = DIVERGENCE if first == species_name(0) else 1 - (1 - DIVERGENCE) ** 2 - DIVERGENCE**2 / 3
        assert abs(rate - expected) < 0.1 * expected, (first, other, rate)
    assert abs(orthologs.identity_pct.mean() - 100 * (1 - np.mean(list(rates.values())))) < 1.5


def test_orthologs_share_their_planted_label_and_some_isoforms_differ(worlds):
    planted, _ = worlds
    labels = pd.read_csv(planted.labels).set_index("gene_id")
    assert list(labels.species.unique()) == planted.species
    orthologs = pd.read_csv(planted.orthologs, sep="\t")
    assert (labels.label[orthologs.gene_A].to_numpy() == labels.label[orthologs.gene_B].to_numpy()).all()
    assert labels.label.nunique() > 10
    counts = [a.n_transcripts for a in planted.annotations]
    assert counts[0] >= N and len(set(counts)) > 1  # other species draw their own isoforms


def test_ids_unique_across_species_and_orthologs_exactly_the_planted_pairs(worlds):
    planted, _ = worlds
    truth = _truth(planted)
    genes = truth.drop_duplicates("gene_id")
    assert truth.transcript_id.is_unique and genes.gene_name.is_unique
    for k, name in enumerate(planted.species):
        mine = truth[truth.species == name]
        assert mine.gene_id.str.startswith(f"{species_code(k)}G").all()
        assert mine.transcript_id.str.startswith(f"{species_code(k)}T").all()
    n_genes = {a.n_genes for a in planted.annotations}
    assert len(n_genes) == 1  # every founder gene in every species
    # Planted: copy i of the founder set in species j and k, for every pair of species; nothing else.
    founder_numbers = [g.removeprefix(f"{species_code(0)}G") for g in genes.gene_id[genes.species == "synth_a"]]
    expected = {
        (f"{species_code(j)}G{n}", f"{species_code(k)}G{n}")
        for j, k in itertools.combinations(range(N_SPECIES), 2)
        for n in founder_numbers
    }
    orthologs = pd.read_csv(planted.orthologs, sep="\t")
    got = list(zip(orthologs.gene_A, orthologs.gene_B, strict=True))
    assert len(got) == len(set(got)) == planted.n_ortholog_pairs and set(got) == expected
    # One-to-one: each gene has exactly one partner in each other species.
    partners = pd.concat([orthologs.gene_A, orthologs.gene_B]).value_counts()
    assert set(partners.index) == set(genes.gene_id) and (partners == N_SPECIES - 1).all()
    # Paralog pairs name genes of their own species only.
    paralogs = pd.read_csv(planted.paralogs)
    species_of = genes.set_index("gene_name").species
    assert (
        len(paralogs) > 0 and (species_of[paralogs.gene_A].to_numpy() == species_of[paralogs.gene_B].to_numpy()).all()
    )


def test_every_species_ingests_through_validate_with_its_species(worlds, tmp_path):
    from isoclr import stage
    from isoclr.artifacts import Paths
    from isoclr.config import Config
    from tests.conftest import tiny_params

    planted, _ = worlds
    section = yaml.safe_load(planted.params.read_text())["data"]
    params = tiny_params()
    params["data"] = section
    params["validate"].update(max_length=10**6)
    cfg = Config.model_validate(params)
    assert cfg.data.orthologs is not None and cfg.data.orthologs.table == "orthologs.tsv"
    assert {a.species for a in cfg.data.annotations} == set(planted.species)
    paths = Paths.under(tmp_path / "out", data_dir=section["dir"])
    result = stage.execute("validate", cfg, paths)
    transcripts = pd.read_parquet(paths.transcripts)
    assert result.n_quarantined == 0 and len(transcripts) == sum(a.n_transcripts for a in planted.annotations)
    expected = _full_length(planted)
    for k, name in enumerate(planted.species):
        mine = transcripts[transcripts.species == name]
        assert len(mine) == planted.annotations[k].n_transcripts
        assert mine.gene_id.str.startswith(f"{species_code(k)}G").all()
    got = transcripts.set_index("transcript_id").seq
    assert (got[expected.transcript_id].to_numpy() == expected.seq.to_numpy()).all()


def test_command_writes_species_and_says_how_to_use_them(tmp_path):
    out = tmp_path / "w"
    result = CliRunner().invoke(app, ["synth", str(out), "--transcripts", "60", "--species", "2", "--plant"])
    assert result.exit_code == 0, result.output
    assert "orthologs.tsv" in result.output and "params.yaml" in result.output
    data = yaml.safe_load((out / "params.yaml").read_text())["data"]
    assert [a["species"] for a in data["annotations"]] == ["synth_a", "synth_b"]
    assert all((out / a["gtf"]).exists() and (out / a["genome"]).exists() for a in data["annotations"])
    assert "species" in pd.read_csv(out / "function_labels.csv").columns
    help_text = CliRunner().invoke(app, ["synth", "--help"]).output
    for word in ("--species", "--ortholog-divergence", "orthologs.tsv", "params.yaml"):
        assert word in help_text


def test_command_defaults_are_the_librarys():
    assert synth_command.ORTHOLOG_DIVERGENCE == species_module.ORTHOLOG_DIVERGENCE
    assert synth_command.MAX_SPECIES == species_module.MAX_SPECIES
    with pytest.raises(ValueError, match="species"):
        species("unused", 10, n_species=0)
