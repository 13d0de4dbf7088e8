"""Related species with planted orthologs (``isoclr synth --species N``): multi-species training worlds, seeded.

One founder gene set (:func:`isoclr.synth.generate`: gene models, isoforms, paralog families) is copied into
every species. The first species keeps the founder sequences and isoforms; every other species gets each
gene as a diverged copy: a share ``ortholog_divergence`` of its bases changed to another base (splice sites,
start and stop codons kept), the exon model kept and its isoforms redrawn (so some isoforms differ across
species, the full-length one never). Each species has its own gene and transcript ids (Ensembl-like
prefixes, ``SYNSPAG...``, ``SYNSPBG...``), its own symbols (``SYN12_a``, ``SYN12_b``) and its own paralog
families, and is written as its own GTF + genome FASTA under ``<out>/<species>/``. With a
:class:`~isoclr.synth.Plant`, function is planted after divergence, at the same positions of every copy of
a family (its paralogs and their orthologs in every species), so orthologs share both motifs and label
exactly and no motif base is ever mutated.

Written beside the species folders: ``orthologs.tsv`` (gene_A, gene_B by gene id: every pair of copies of a
founder gene in two species; all one-to-one), ``paralog_pairs.csv`` (all species, by symbol),
``function_labels.csv`` (with a ``species`` column) and ``params.yaml``, the ``data:`` section that reads
it all (one ``gtf_genome_fasta`` set per species, ``data.orthologs``). ``n_species = 1`` is exactly
:func:`isoclr.synth.synth`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from isoclr import alphabet
from isoclr.alphabet import CODON
from isoclr.synth import (
    LABELS,
    PARALOGS,
    Plant,
    Shape,
    SynthResult,
    _Gene,
    _isoforms,
    _plant,
    generate,
    paralog_pairs,
    synth,
    write_world,
)

ORTHOLOGS, PARAMS = "orthologs.tsv", "params.yaml"
# Share of bases changed between the first species' gene and its copy in another species (two non-first
# species differ at about twice this).
ORTHOLOG_DIVERGENCE = 0.1
MAX_SPECIES = 26  # one letter each
# Base -> index in alphabet.BASES, for substitutions that always change the base.
_INDEX = np.zeros(256, dtype=np.int64)
_INDEX[np.frombuffer(alphabet.BASES.encode(), np.uint8)] = np.arange(len(alphabet.BASES))
_BASES = np.frombuffer(alphabet.BASES.encode(), dtype=np.uint8)


@dataclass(frozen=True)
class SpeciesResult:
    species: list[str]
    annotations: list[SynthResult]  # per species, in order; each with its GTF, genome and truth
    orthologs: Path | None  # None with one species
    paralogs: Path
    labels: Path | None
    params: Path | None  # the data: section reading it all; None with one species
    n_ortholog_pairs: int


def species_name(k: int) -> str:
    """``synth_a``, ``synth_b``, ... (k 0-based)."""
    return f"synth_{chr(ord('a') + k)}"


def species_code(k: int) -> str:
    """The Ensembl-like id prefix of species k: ``SYNSPA`` (gene ids ``SYNSPAG...``, transcripts ``SYNSPAT...``)."""
    return f"SYNSP{chr(ord('A') + k)}"


def diverge(rng, founder: _Gene, rate: float, gene_id: str, name: str) -> _Gene:
    """A copy of ``founder`` with a share ``rate`` of its bases changed to another base, splice sites and
    start/stop codons kept, same exon model and CDS; isoforms left to draw."""
    block = founder.block.copy()
    hit = np.flatnonzero(rng.random(len(block)) < rate)
    shift = rng.integers(1, len(_BASES), len(hit))
    block[hit] = _BASES[(_INDEX[block[hit]] + shift) % len(_BASES)]
    keep = [(e, e + 2) for _, e in founder.exons[:-1]] + [(s - 2, s) for s, _ in founder.exons[1:]]
    keep += [(c, c + CODON) for c in founder.cds or ()]
    for a, b in keep:
        block[a:b] = founder.block[a:b]
    return _Gene(gene_id, name, founder.biotype, block, list(founder.exons), founder.cds)


def _copy(founder: _Gene, gene_id: str, name: str) -> _Gene:
    return _Gene(
        gene_id, name, founder.biotype, founder.block.copy(), list(founder.exons), founder.cds, founder.isoforms
    )


def _renamed(founder: _Gene, k: int) -> tuple[str, str]:
    """Gene id and symbol of the founder's copy in species k."""
    number = founder.gene_id.removeprefix("SYNG")
    return f"{species_code(k)}G{number}", f"{founder.name}_{chr(ord('a') + k)}"


def _identity(a: _Gene, b: _Gene) -> float:
    """Percent identical bases of two copies' exons."""
    spots = np.concatenate([np.arange(s, e) for s, e in a.exons])
    return round(100 * float(np.mean(a.block[spots] == b.block[spots])), 1)


def data_section(out_dir: Path, names: list[str], annotations: list[SynthResult], seed: int) -> dict:
    """params.yaml's ``data:`` keys reading this world (file paths relative to ``dir``, which is ``out_dir``)."""
    sets = [
        {
            "name": name,
            "format": "gtf_genome_fasta",
            "gtf": f"{name}/{result.gtf.name}",
            "genome": f"{name}/{result.genome.name}",
            "species": name,
            "assembly": f"{name}_seed{seed}",
        }
        for name, result in zip(names, annotations, strict=True)
    ]
    orthologs = {"table": ORTHOLOGS, "sep": "\t", "header": True, "columns": {"gene_a": "gene_A", "gene_b": "gene_B"}}
    return {"dir": str(out_dir), "annotations": sets, "paralogs": PARALOGS, "orthologs": orthologs}


def species(
    out_dir: Path,
    n_transcripts: int,
    n_species: int = 1,
    seed: int = 0,
    ortholog_divergence: float = ORTHOLOG_DIVERGENCE,
    n_contigs: int = 4,
    shape: Shape = Shape(),
    gzip_gtf: bool = False,
    bgzip_genome: bool = False,
    truth: bool = False,
    plant: Plant | None = None,
) -> SpeciesResult:
    """Write ``n_species`` related species under ``out_dir`` (see the module docstring).

    ``n_transcripts``: at least this many transcripts in the first species (the others draw their own
    isoforms, so about as many). Same seed and arguments -> byte-identical files.
    """
    out_dir = Path(out_dir)
    if not 1 <= n_species <= MAX_SPECIES:
        raise ValueError(f"species: 1 to {MAX_SPECIES}, got {n_species}")
    if n_species == 1:
        one = synth(out_dir, n_transcripts, seed, n_contigs, shape, gzip_gtf, bgzip_genome, truth, plant)
        return SpeciesResult([species_name(0)], [one], None, one.paralogs, one.labels, None, 0)
    founders, families = generate(np.random.default_rng(seed), shape, n_transcripts)
    per_species: list[list[_Gene]] = [[_copy(g, *_renamed(g, 0)) for g in founders]]
    for k in range(1, n_species):
        rng = np.random.default_rng([seed, 2, k])
        genes = []
        for founder in founders:
            gene = diverge(rng, founder, ortholog_divergence, *_renamed(founder, k))
            _isoforms(rng, shape, gene)
            genes.append(gene)
        per_species.append(genes)
    labels = None
    if plant is not None:
        # A family is a founder's paralog family (or the founder alone) with all its copies in every species.
        n = len(founders)
        in_family = {g for f in families for g in f}
        groups = list(families) + [[g] for g in range(n) if g not in in_family]
        everyone = [g for genes in per_species for g in genes]
        across = [[k * n + g for k in range(n_species) for g in members] for members in groups]
        labels = _plant(np.random.default_rng([seed, 1]), plant, everyone, across)
        labels["species"] = [species_name(i // n) for i in range(len(everyone))]
        labels = labels.set_index("gene_id").loc[[g.gene_id for g in everyone]].reset_index()

    names = [species_name(k) for k in range(n_species)]
    annotations, paralog_tables = [], []
    for k, (name, genes) in enumerate(zip(names, per_species, strict=True)):
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        layout = np.random.default_rng([seed, 3, k])
        result = write_world(
            folder, genes, layout, seed, n_contigs, shape, gzip_gtf, bgzip_genome, truth, f"{species_code(k)}T"
        )
        pairs = paralog_pairs(genes, families, shape.paralog_divergence)
        pairs.to_csv(result.paralogs, index=False)
        annotations.append(result)
        paralog_tables.append(pairs)
    paralogs = out_dir / PARALOGS
    pd.concat(paralog_tables, ignore_index=True).to_csv(paralogs, index=False)
    rows = [
        (a[i].gene_id, b[i].gene_id, names[j], names[k], "ortholog_one2one", _identity(a[i], b[i]))
        for (j, a), (k, b) in itertools.combinations(enumerate(per_species), 2)
        for i in range(len(founders))
    ]
    orthologs = out_dir / ORTHOLOGS
    columns = ["gene_A", "gene_B", "species_A", "species_B", "homology_type", "identity_pct"]
    pd.DataFrame(rows, columns=columns).to_csv(orthologs, sep="\t", index=False)
    labels_path = None
    if labels is not None:
        labels_path = out_dir / LABELS
        labels.to_csv(labels_path, index=False)
    params = out_dir / PARAMS
    section = data_section(out_dir, names, annotations, seed)
    header = f"# isoclr synth --species {n_species} --seed {seed}: the data section of params.yaml that reads it\n"
    params.write_text(header + yaml.safe_dump({"data": section}, sort_keys=False))
    return SpeciesResult(names, annotations, orthologs, paralogs, labels_path, params, len(rows))
