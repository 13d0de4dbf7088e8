"""`isoclr embed`: a trained encoder over your own transcripts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from isoclr.cli.common import fail, reported


def embed(
    model: Annotated[
        str, typer.Option(help="Model folder (with encoder.pt), or registry URI file://PATH, gs://BUCKET/PREFIX.")
    ],
    out: Annotated[Path, typer.Option(help="Output: .parquet (transcript_id, embedding), or .npy (+ ids file).")],
    gtf: Annotated[
        Path | None, typer.Option(help="Input: GTF (exon lines; CDS lines where known).", exists=True, dir_okay=False)
    ] = None,
    fasta: Annotated[
        Path | None,
        typer.Option(
            help="Input: spliced transcript FASTA (ids = GTF transcript_id), or alone.", exists=True, dir_okay=False
        ),
    ] = None,
    genome: Annotated[
        Path | None,
        typer.Option(help="Input: genome FASTA to splice the GTF's exons from.", exists=True, dir_okay=False),
    ] = None,
    table: Annotated[
        Path | None,
        typer.Option(
            help="Input: a transcripts table (parquet), e.g. from `isoclr validate`.", exists=True, dir_okay=False
        ),
    ] = None,
    version: Annotated[
        str, typer.Option(help="Registry version id, or `champion` (ignored for a model folder).")
    ] = "champion",
    ids: Annotated[Path | None, typer.Option(help="With .npy output: the ids file [default: OUT.ids.txt].")] = None,
    skipped: Annotated[
        Path | None, typer.Option(help="Output: what was not embedded, and why [default: OUT.skipped.tsv].")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    precision: Annotated[
        str,
        typer.Option(
            help="fp32 (exact), or bf16: ~2x faster on CPUs with AMX (and for larger "
            "models on GPUs), within 1e-5 cosine of fp32."
        ),
    ] = "fp32",
    batch_size: Annotated[int | None, typer.Option(min=1, help="Most transcripts per batch, sorted by length.")] = None,
    batch_tokens: Annotated[
        int | None, typer.Option(min=1, help="Most padded nucleotides per batch (bounds memory).")
    ] = None,
    max_length: Annotated[int | None, typer.Option(min=1, help="Longer transcripts are listed, not embedded.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 2 when any transcript was not embedded.")] = False,
) -> None:
    """Embed your own transcripts (e.g. novel isoforms of a long-read assembly) with a trained encoder.

    Give a GTF with its transcript FASTA or genome FASTA, a FASTA alone, or a
    transcripts table. Runs on CPU unless --device cuda. Transcripts that cannot
    be embedded (bad characters, CDS or exons outside the sequence, too long,
    ...) are listed with the reason in the skipped file, never dropped silently.
    """
    from collections import Counter

    import pandas as pd

    import isoclr.embed as embedding
    from isoclr.artifacts import MODEL_CHECKPOINT
    from isoclr.embed_inputs import NOT_EMBEDDED
    from isoclr.embedding_files import default_skipped_path, write_embeddings, write_skipped

    if out.suffix not in (".parquet", ".npy"):
        fail(f"--out {out}: use a .parquet or .npy file name")
    with reported():
        if (Path(model) / MODEL_CHECKPOINT).is_file():
            encoder = embedding.Encoder.from_dir(Path(model), device=device, precision=precision)
        else:
            encoder = embedding.Encoder.from_registry(model, version=version, device=device, precision=precision)
        result = encoder.embed(
            table=pd.read_parquet(table) if table is not None else None,
            gtf=gtf,
            fasta=fasta,
            genome=genome,
            progress=True,
            batch_size=batch_size or embedding.DEFAULT_BATCH_SIZE,
            max_length=max_length or embedding.DEFAULT_MAX_LENGTH,
            batch_tokens=batch_tokens or embedding.DEFAULT_BATCH_TOKENS,
        )
    skipped_path = skipped or default_skipped_path(out)
    write_skipped(result.skipped, skipped_path)
    not_embedded = result.skipped[result.skipped["action"] == NOT_EMBEDDED]
    if not len(result):
        fail(f"no transcript could be embedded ({len(not_embedded)} rejected, reasons in {skipped_path})")
    written = write_embeddings(result, out, ids)
    source = f"{model} version {encoder.version}" if encoder.version else model
    typer.echo(
        f"{len(result)} transcripts embedded ({encoder.out_dim}-d, model {source}) -> {', '.join(map(str, written))}"
    )
    if len(result.skipped):
        reasons = Counter(r.split(":", 1)[0] for r in not_embedded["reason"])
        typer.secho(
            f"warning: {len(not_embedded)} transcript(s) not embedded"
            + (f" ({', '.join(f'{k}: {n}' for k, n in reasons.most_common(5))})" if reasons else "")
            + f", {len(result.skipped) - len(not_embedded)} embedded without CDS;"
            + f" listed with reasons in {skipped_path}",
            fg=typer.colors.YELLOW,
            err=True,
        )
        if strict and len(not_embedded):
            raise typer.Exit(2)
