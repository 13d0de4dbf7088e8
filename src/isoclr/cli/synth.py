"""`isoclr synth`: a generated annotation (one species, or several related ones with planted orthologs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# isoclr.species' defaults, spelled here so `--help` need not import numpy (tests/code/test_species.py holds
# them equal).
MAX_SPECIES = 26
ORTHOLOG_DIVERGENCE = 0.1


def synth(
    out_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder to write annotation.gtf[.gz], genome.fa[.gz] (+ .fai), paralog_pairs.csv; with --species "
            "N > 1, one such folder per species plus orthologs.tsv, paralog_pairs.csv and params.yaml."
        ),
    ],
    transcripts: Annotated[
        int, typer.Option(min=1, help="At least this many transcripts (in the first species; the others ~ as many).")
    ] = 10000,
    seed: Annotated[int, typer.Option(help="Same seed and options: byte-identical files.")] = 0,
    contigs: Annotated[int, typer.Option(min=1, help="Number of contigs in each genome.")] = 4,
    gzip_gtf: Annotated[bool, typer.Option("--gzip-gtf", help="Write annotation.gtf.gz.")] = False,
    bgzip_genome: Annotated[bool, typer.Option("--bgzip-genome", help="Write a bgzip genome.fa.gz.")] = False,
    plant: Annotated[
        bool,
        typer.Option(
            "--plant",
            help="Plant function by family: motifs + function_labels.csv (by gene id); with --species, every ortholog "
            "copy carries its family's motifs at the same places (never mutated) and label, plus a species column.",
        ),
    ] = False,
    species: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_SPECIES,
            help="Related species: the same founder genes in each, as diverged one-to-one orthologs (exon model kept, "
            "isoforms redrawn), each species with its own ids (SYNSPAG..., SYNSPBG...), symbols and paralog families. "
            "1: exactly the single-species output.",
        ),
    ] = 1,
    ortholog_divergence: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of bases changed between the first species' gene and each other species' copy.",
        ),
    ] = ORTHOLOG_DIVERGENCE,
) -> None:
    """Write a generated annotation of realistic shape, for benchmarks and tests.

    Genes with 1-20 isoforms, GENCODE-like exon counts and lengths, coding genes
    with start/stop codons in frame, paralog families (paralog_pairs.csv keyed by
    gene symbol) and a genome FASTA. Use it as a `gtf_genome_fasta` annotation set.

    With --species N > 1, OUT_DIR/synth_a, OUT_DIR/synth_b, ... each hold one
    species' GTF and genome, and OUT_DIR/orthologs.tsv lists every pair of
    orthologs (gene_A, gene_B: gene ids in two species). OUT_DIR/params.yaml is
    the `data:` section that trains on them: one gtf_genome_fasta set per species
    (its `species:` set), `paralogs: paralog_pairs.csv` and `data.orthologs`
    pointing at orthologs.tsv (file paths relative to `data.dir`, set to OUT_DIR);
    copy it over the `data:` section of your params.yaml.
    """
    from isoclr.species import species as run
    from isoclr.synth import Plant

    result = run(
        out_dir,
        transcripts,
        n_species=species,
        seed=seed,
        ortholog_divergence=ortholog_divergence,
        n_contigs=contigs,
        gzip_gtf=gzip_gtf,
        bgzip_genome=bgzip_genome,
        plant=Plant() if plant else None,
    )
    for name, one in zip(result.species, result.annotations, strict=True):
        typer.echo(
            (f"{name}: " if species > 1 else "")
            + f"{one.n_genes} genes, {one.n_transcripts} transcripts, {one.n_gtf_rows} GTF rows -> {one.gtf}; "
            f"{one.genome_length:,} nt -> {one.genome}"
            + ("" if species > 1 else f"; paralog pairs -> {one.paralogs}")
            + (f"; planted labels -> {result.labels}" if result.labels and species == 1 else "")
        )
    if result.orthologs is not None:
        typer.echo(
            f"{result.n_ortholog_pairs} ortholog pairs -> {result.orthologs}; paralog pairs -> {result.paralogs}"
            + (f"; planted labels -> {result.labels}" if result.labels else "")
        )
        typer.echo(
            f"To train on them, copy the data: section of {result.params} into params.yaml "
            "(one gtf_genome_fasta set per species, data.orthologs -> orthologs.tsv)."
        )
