"""`isoclr` command line: one subcommand per pipeline stage, over the library's stage runner.

Every stage command builds the stage's :class:`~isoclr.artifacts.Paths` from its
options (defaults: the ``dvc.yaml`` layout under ``outputs/``) and calls
:func:`isoclr.stage.execute`, as the Kubeflow components do. Heavy modules are
imported inside the commands so `--help` stays instant.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from isoclr import __version__
from isoclr.artifacts import Paths
from isoclr.config import Config, load
from isoclr.errors import IsoclrError

app = typer.Typer(
    help="Train, evaluate and ship IsoCLR contrastive RNA encoders.\n\n"
    "Stages run in order: validate -> encode -> pairs -> train -> probe -> gate -> register. "
    "`dvc repro` runs them all with the defaults shown in each command's --help; "
    "`isoclr embed` embeds your own transcripts with a trained model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
registry_app = typer.Typer(help="Inspect and manage the model registry.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
pipeline_app = typer.Typer(
    help="Submit a Kubeflow run or schedule retraining (compile with `python -m pipelines.isoclr_pipeline`).",
    no_args_is_help=True,
)
app.add_typer(pipeline_app, name="pipeline")

DEFAULT = Paths()
Params = Annotated[Path, typer.Option("--params", "-p", help="The pipeline configuration.", exists=True, dir_okay=False)]
DataDir = Annotated[
    Path | None, typer.Option(help="Folder with the input files named in params.yaml (default: data.dir there).")
]
Transcripts = Annotated[Path, typer.Option(help="Input: validated transcripts table.")]
Groups = Annotated[Path, typer.Option(help="Input: groups table from `isoclr pairs`.")]
ModelDir = Annotated[Path, typer.Option(help="Input: trained model folder.")]
Tracks = Annotated[Path, typer.Option(help="Input: the track store from `isoclr encode`.")]
NoTracks = Annotated[bool, typer.Option("--no-tracks", help="Encode from the transcripts table instead of the track store.")]


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@contextmanager
def _reported() -> Iterator[None]:
    """A project error becomes one `error:` line and exit code 1 (as in the stage runner)."""
    try:
        yield
    except IsoclrError as err:
        _fail(str(err))


def _config(params: Path) -> Config:
    with _reported():
        return load(params)


def _stage(name: str, params: Path | Config, paths: Paths, **options) -> None:
    """Run one stage through the shared runner and print what it says about itself."""
    from isoclr import stage

    cfg = params if isinstance(params, Config) else _config(params)
    result = stage.execute(name, cfg, paths, **options)
    text = result.summary()
    if text:
        typer.echo(text)


def _tracks_exist(path: Path, off: bool) -> None:
    if not off and not path.exists():
        _fail(f"{path}: no track store; run `isoclr encode` first (or pass --no-tracks to encode from the table)")


def _version(show: bool) -> None:
    if show:
        typer.echo(f"isoclr {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    pass


@app.command()
def validate(
    params: Params = Path("params.yaml"),
    data_dir: DataDir = None,
    transcripts: Annotated[Path, typer.Option(help="Output: validated transcripts table (parquet).")] = DEFAULT.transcripts,
    quarantine: Annotated[Path, typer.Option(help="Output: rejected records with file, record, rule (TSV).")] = DEFAULT.quarantine,
    summary: Annotated[Path, typer.Option(help="Output: counts by rule and annotation set (JSON).")] = DEFAULT.validate_summary,
) -> None:
    """Parse and check the annotation sets into one transcripts table.

    Inputs are the annotation sets under `data.annotations` in params.yaml: a
    GENCODE transcript FASTA, a GTF with its spliced transcript FASTA, or a GTF
    with the genome FASTA (plain or bgzip, with its .fai; exons are spliced and
    minus-strand transcripts reverse-complemented). Any file may be gzipped. Each
    transcript becomes a row with its sequence, CDS and exon ends (transcript
    coordinates, strand resolved), species and assembly. A record that breaks a rule
    (truncated, duplicate id, bad characters, too long, ...) goes to the
    quarantine file with the rule; the command fails only when too few usable
    transcripts remain or too large a share was rejected (thresholds under
    `validate` in params.yaml).
    """
    _stage("validate", params, Paths(data_dir=data_dir, transcripts=transcripts, quarantine=quarantine,
                                     validate_summary=summary))


@app.command()
def encode(
    params: Params = Path("params.yaml"),
    transcripts: Transcripts = DEFAULT.transcripts,
    store: Annotated[Path, typer.Option(help="Output: the track store directory (shards + index).")] = DEFAULT.tracks,
) -> None:
    """Pack the validated transcripts into the on-disk track store.

    One byte per nucleotide (base, N, CDS codon start, exon end) in a few large
    memory-mapped shards of at most `encode.shard_bytes`, with an index from
    transcript id to shard, offset and length; training and embedding build the
    6 tracks per batch from it without re-parsing.
    """
    _stage("encode", params, Paths(transcripts=transcripts, tracks=store))


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write annotation.gtf[.gz], genome.fa[.gz] (+ .fai), paralog_pairs.csv.")],
    transcripts: Annotated[int, typer.Option(min=1, help="At least this many transcripts.")] = 10000,
    seed: Annotated[int, typer.Option(help="Same seed and options: byte-identical files.")] = 0,
    contigs: Annotated[int, typer.Option(min=1, help="Number of contigs in the genome.")] = 4,
    gzip_gtf: Annotated[bool, typer.Option("--gzip-gtf", help="Write annotation.gtf.gz.")] = False,
    bgzip_genome: Annotated[bool, typer.Option("--bgzip-genome", help="Write a bgzip genome.fa.gz.")] = False,
) -> None:
    """Write a generated annotation of realistic shape, for benchmarks and tests.

    Genes with 1-20 isoforms, GENCODE-like exon counts and lengths, coding genes
    with start/stop codons in frame, paralog families (paralog_pairs.csv keyed by
    gene symbol) and a genome FASTA. Use it as a `gtf_genome_fasta` annotation set.
    """
    from isoclr.synth import synth as run

    result = run(out_dir, transcripts, seed=seed, n_contigs=contigs, gzip_gtf=gzip_gtf, bgzip_genome=bgzip_genome)
    typer.echo(
        f"{result.n_genes} genes, {result.n_transcripts} transcripts, {result.n_gtf_rows} GTF rows -> {result.gtf}; "
        f"{result.genome_length:,} nt -> {result.genome}; paralog pairs -> {result.paralogs}"
    )


@app.command()
def pairs(
    params: Params = Path("params.yaml"),
    data_dir: DataDir = None,
    transcripts: Transcripts = DEFAULT.transcripts,
    groups: Annotated[Path, typer.Option(help="Output: gene, isoform count, homology group and split per transcript.")] = DEFAULT.groups,
    summary: Annotated[Path, typer.Option(help="Output: group and split counts (JSON).")] = DEFAULT.pairs_summary,
) -> None:
    """Group isoforms by gene and genes by paralog family; split by homology group.

    Paralog pairs (gene symbols, `data.paralogs`) are joined to the annotation
    by gene name; homology groups are their connected components. The split
    (fractions under `splits`) never puts one homology group on two sides.
    """
    _stage("pairs", params, Paths(data_dir=data_dir, transcripts=transcripts, groups=groups, pairs_summary=summary))


@app.command()
def train(
    params: Params = Path("params.yaml"),
    transcripts: Transcripts = DEFAULT.transcripts,
    groups: Groups = DEFAULT.groups,
    model_dir: Annotated[Path, typer.Option(help="Output: encoder.pt (weights, config, provenance) and meta.json.")] = DEFAULT.model,
    log: Annotated[
        Path,
        typer.Option("--log", "--train-log", help="Output: per-step loss, learning rate, samples/s (CSV); "
                     "under torchrun spell it --train-log (torchrun reads --log as its own --log-dir)."),
    ] = DEFAULT.train_log,
    metrics: Annotated[Path, typer.Option(help="Output: run summary (JSON): losses, seconds, parameters.")] = DEFAULT.train_summary,
    checkpoint_dir: Annotated[
        Path, typer.Option(help="Output: resumable checkpoint (last.pt) every train.checkpoint_every steps.")
    ] = DEFAULT.checkpoints,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue from the checkpoint in --checkpoint-dir if there is one.")
    ] = False,
    tracks: Tracks = DEFAULT.tracks,
    no_tracks: NoTracks = False,
) -> None:
    """Contrastive pretraining of the encoder on isoform and paralog pairs (train split).

    Runs as one process, or on N processes with
    `torchrun --nproc_per_node=N -m isoclr.cli train OPTIONS` (these options; DDP, gloo on CPU, NCCL on GPU;
    train.batch_genes is per process). With --resume a killed run continues
    from its last checkpoint and ends with the weights of an uninterrupted run.
    Views are read from the track store of `isoclr encode` (--tracks), which must
    hold every training transcript.
    """
    _tracks_exist(tracks, no_tracks)
    paths = Paths(transcripts=transcripts, groups=groups, model=model_dir, train_log=log, train_summary=metrics,
                  checkpoints=checkpoint_dir, tracks=tracks)
    _stage("train", params, paths, resume=resume, tracks=not no_tracks)


@app.command()
def probe(
    params: Params = Path("params.yaml"),
    data_dir: DataDir = None,
    transcripts: Transcripts = DEFAULT.transcripts,
    groups: Groups = DEFAULT.groups,
    model_dir: ModelDir = DEFAULT.model,
    out_dir: Annotated[Path, typer.Option(help="Output: metrics.json, per_seed.csv, low_data.csv, table.md, report.html, plots/.")] = DEFAULT.probe,
    tracks: Tracks = DEFAULT.tracks,
    no_tracks: NoTracks = False,
    champion: Annotated[
        str | None, typer.Option(help="Registry version to probe as the champion (default: the registry's champion now; "
                                      "`none`: no champion).")
    ] = None,
) -> None:
    """Linear probes on frozen embeddings, beside k-mer, random-init and champion baselines.

    Each task under `probe.tasks` (regression: ridge, Pearson/Spearman/MSE;
    classification: logistic, AUROC/AUPRC) is split by group (homology group
    where genes are known; parent UTR, shared prefix or random where not) over
    `probe.seeds` seeds, with a low-data curve over `probe.train_fractions`.
    Every model is probed on the same splits, so `isoclr_minus_<baseline>` is a
    paired difference with its 95% CI. The registry's champion (`registry.uri`)
    is probed too, for the gate's no-regression rule. Writes a Markdown summary
    (table.md) and a self-contained HTML report (report.html).
    """
    _tracks_exist(tracks, no_tracks)
    paths = Paths(data_dir=data_dir, transcripts=transcripts, groups=groups, model=model_dir, probe=out_dir, tracks=tracks)
    options = {"tracks": not no_tracks}
    if champion is not None:
        options["champion_version"] = "" if champion == "none" else champion
    _stage("probe", params, paths, **options)


@app.command()
def gate(
    params: Params = Path("params.yaml"),
    probe_dir: Annotated[Path, typer.Option(help="Input: the probe output folder (its metrics.json).")] = DEFAULT.probe,
    decision: Annotated[Path, typer.Option(help="Output: pass/fail with number, bound and reason per rule (JSON).")] = DEFAULT.decision,
    compare_champion: Annotated[bool, typer.Option(help="Hold the model to the registry's champion (no regression).")] = True,
) -> None:
    """Decide whether the model may be registered (rules under `gate` in params.yaml).

    Per gated task and metric: the threshold, beating the random-init encoder
    (paired), and no regression against the registry's champion (paired, same
    splits). A failed gate is a result, not an error: the command exits 0 and
    the decision file says which rule failed and why.
    """
    _stage("gate", params, Paths(probe=probe_dir, decision=decision), compare_champion=compare_champion)


@app.command()
def register(
    params: Params = Path("params.yaml"),
    model_dir: ModelDir = DEFAULT.model,
    probe_dir: Annotated[Path, typer.Option(help="Input: the probe output folder (its metrics.json).")] = DEFAULT.probe,
    decision: Annotated[Path, typer.Option(help="Input: gate decision.")] = DEFAULT.decision,
    record: Annotated[Path, typer.Option(help="Output: what was registered, or why not (JSON).")] = DEFAULT.registration,
    registry: Annotated[str | None, typer.Option(help="Registry URI (default: registry.uri in params.yaml).")] = None,
) -> None:
    """Write an immutable model version and move the champion pointer, if the gate passed."""
    cfg = _config(params)
    if registry is not None:
        cfg = cfg.model_copy(update={"registry": cfg.registry.model_copy(update={"uri": registry})})
    _stage("register", cfg, Paths(model=model_dir, probe=probe_dir, decision=decision, registration=record))


@app.command()
def summary(
    table: Annotated[Path, typer.Option(help="Probe table (Markdown).")] = DEFAULT.probe_table,
    decision: Annotated[Path, typer.Option(help="Gate decision.")] = DEFAULT.decision,
    record: Annotated[Path, typer.Option(help="Registration record.")] = DEFAULT.registration,
) -> None:
    """Print the outcome of the last run: probe table, gate decision, registered version."""
    for path in (table, decision, record):
        if not path.exists():
            _fail(f"{path} does not exist: run the pipeline first (`dvc repro`)")
    typer.echo(table.read_text())
    verdict = json.loads(decision.read_text())
    typer.echo(f"gate: {'passed' if verdict['passed'] else 'failed'}")
    for rule in verdict["rules"]:
        typer.echo(f"  {'PASS' if rule['passed'] else 'FAIL'}  {rule['task']} {rule['metric']}: {rule['reason']}")
    typer.echo(f"registration: {json.loads(record.read_text())}")


@app.command()
def embed(
    model: Annotated[str, typer.Option(help="Model folder (with encoder.pt), or registry URI file://PATH, gs://BUCKET/PREFIX.")],
    out: Annotated[Path, typer.Option(help="Output: .parquet (transcript_id, embedding), or .npy (+ ids file).")],
    gtf: Annotated[Path | None, typer.Option(help="Input: GTF (exon lines; CDS lines where known).", exists=True, dir_okay=False)] = None,
    fasta: Annotated[Path | None, typer.Option(help="Input: spliced transcript FASTA (ids = GTF transcript_id), or alone.", exists=True, dir_okay=False)] = None,
    genome: Annotated[Path | None, typer.Option(help="Input: genome FASTA to splice the GTF's exons from.", exists=True, dir_okay=False)] = None,
    table: Annotated[Path | None, typer.Option(help="Input: a transcripts table (parquet), e.g. from `isoclr validate`.", exists=True, dir_okay=False)] = None,
    version: Annotated[str, typer.Option(help="Registry version id, or `champion` (ignored for a model folder).")] = "champion",
    ids: Annotated[Path | None, typer.Option(help="With .npy output: the ids file [default: OUT.ids.txt].")] = None,
    skipped: Annotated[Path | None, typer.Option(help="Output: what was not embedded, and why [default: OUT.skipped.tsv].")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    precision: Annotated[str, typer.Option(help="fp32 (exact), or bf16: ~2x faster on CPUs with AMX (and for larger "
                                                 "models on GPUs), within 1e-5 cosine of fp32.")] = "fp32",
    batch_size: Annotated[int | None, typer.Option(min=1, help="Most transcripts per batch, sorted by length.")] = None,
    batch_tokens: Annotated[int | None, typer.Option(min=1, help="Most padded nucleotides per batch (bounds memory).")] = None,
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

    if out.suffix not in (".parquet", ".npy"):
        _fail(f"--out {out}: use a .parquet or .npy file name")
    with _reported():
        if (Path(model) / embedding.CHECKPOINT).is_file():
            encoder = embedding.Encoder.from_dir(Path(model), device=device, precision=precision)
        else:
            encoder = embedding.Encoder.from_registry(model, version=version, device=device, precision=precision)
        result = encoder.embed(
            table=pd.read_parquet(table) if table is not None else None,
            gtf=gtf, fasta=fasta, genome=genome, progress=True,
            batch_size=batch_size or embedding.DEFAULT_BATCH_SIZE, max_length=max_length or embedding.DEFAULT_MAX_LENGTH,
            batch_tokens=batch_tokens or embedding.DEFAULT_BATCH_TOKENS,
        )
    skipped_path = skipped or embedding.default_skipped_path(out)
    embedding.write_skipped(result.skipped, skipped_path)
    not_embedded = result.skipped[result.skipped["action"] == embedding.NOT_EMBEDDED]
    if not len(result):
        _fail(f"no transcript could be embedded ({len(not_embedded)} rejected, reasons in {skipped_path})")
    written = embedding.write_embeddings(result, out, ids)
    source = f"{model} version {encoder.version}" if encoder.version else model
    typer.echo(f"{len(result)} transcripts embedded ({encoder.out_dim}-d, model {source}) -> {', '.join(map(str, written))}")
    if len(result.skipped):
        reasons = Counter(r.split(":", 1)[0] for r in not_embedded["reason"])
        typer.secho(
            f"warning: {len(not_embedded)} transcript(s) not embedded"
            + (f" ({', '.join(f'{k}: {n}' for k, n in reasons.most_common(5))})" if reasons else "")
            + f", {len(result.skipped) - len(not_embedded)} embedded without CDS; listed with reasons in {skipped_path}",
            fg=typer.colors.YELLOW, err=True,
        )
        if strict and len(not_embedded):
            raise typer.Exit(2)


Uri = Annotated[
    str | None,
    typer.Option("--registry", help="Registry URI, file://PATH or gs://BUCKET/PREFIX (default: registry.uri in params.yaml)."),
]


def _registry_call(registry: str | None, call):
    """Run ``call(uri)``; a project error becomes one `error:` line and exit 1."""
    uri = registry if registry is not None else _config(Path("params.yaml")).registry.uri
    with _reported():
        return call(uri)


def _resolve(uri: str, version: str) -> str:
    from isoclr.registry import resolve

    return resolve(uri, version)


@registry_app.command("list")
def registry_list(registry: Uri = None) -> None:
    """List the complete (manifest-verified) model versions, oldest first; `*` marks the champion."""
    from isoclr.registry import list_versions

    for version in _registry_call(registry, list_versions):
        typer.echo(f"{'*' if version['champion'] else ' '} {version['version']}")


@registry_app.command("champion")
def registry_champion(registry: Uri = None) -> None:
    """Print the champion version id."""
    from isoclr.registry import CHAMPION

    typer.echo(_registry_call(registry, lambda uri: _resolve(uri, CHAMPION)))


@registry_app.command("show")
def registry_show(
    version: Annotated[str, typer.Argument(help="Version id, or `champion`.")], registry: Uri = None
) -> None:
    """Print a version's manifest and metadata (provenance, config, metrics, gate decision) as JSON."""
    from isoclr.registry import verify, version_metadata

    def show(uri: str) -> dict:
        resolved = _resolve(uri, version)
        return {"manifest": verify(uri, resolved), "metadata": version_metadata(uri, resolved)}

    typer.echo(json.dumps(_registry_call(registry, show), indent=2))


@registry_app.command("fetch")
def registry_fetch(
    version: Annotated[str, typer.Argument(help="Version id, or `champion`.")],
    dest: Annotated[Path, typer.Option(help="Folder to write the model files to (checksums verified).")] = Path("model"),
    registry: Uri = None,
) -> None:
    """Download a version's model folder (encoder.pt, meta.json) after verifying every checksum."""
    from isoclr.registry import download

    resolved = _registry_call(registry, lambda uri: _resolve(uri, version))
    _registry_call(registry, lambda uri: download(uri, resolved, dest))
    typer.echo(f"{resolved} -> {dest}")


@registry_app.command("rollback")
def registry_rollback(
    version: Annotated[str, typer.Argument(help="Version id to make champion.")], registry: Uri = None
) -> None:
    """Move the champion pointer to another (earlier) trusted version; the move is kept in its history."""
    from isoclr.registry import set_champion

    _registry_call(registry, lambda uri: set_champion(uri, version))
    typer.echo(f"champion -> {version}")


Package = Annotated[Path, typer.Option(help="Compiled pipeline YAML.")]
Host = Annotated[str | None, typer.Option(help="KFP API URL (default: kubeflow.host in params.yaml).")]
RunArgs = Annotated[
    list[str] | None, typer.Option("--arg", "-a", help="Run parameter NAME=VALUE (value parsed as YAML), repeatable.")
]
PIPELINE_YAML = Path("pipelines/isoclr_pipeline.yaml")


def _run_arguments(pairs: list[str] | None) -> dict:
    import yaml

    arguments = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            _fail(f"--arg takes NAME=VALUE, got {pair!r}")
        arguments[name] = yaml.safe_load(value)
    return arguments


@pipeline_app.command("submit")
def pipeline_submit(
    params: Params = Path("params.yaml"),
    package: Package = PIPELINE_YAML,
    host: Host = None,
    arg: RunArgs = None,
    run_name: Annotated[str | None, typer.Option(help="Run name shown in the UI.")] = None,
) -> None:
    """Start one run on Kubeflow Pipelines, as the service account in params.yaml (kubeflow block)."""
    from isoclr.kubeflow import kfp_client, submit

    cfg = _config(params)
    client = kfp_client(host or cfg.kubeflow.host, cfg.kubeflow.namespace)
    typer.echo(submit(client, package, cfg, arguments=_run_arguments(arg), run_name=run_name))


@pipeline_app.command("schedule")
def pipeline_schedule(
    params: Params = Path("params.yaml"),
    package: Package = PIPELINE_YAML,
    host: Host = None,
    arg: RunArgs = None,
    name: Annotated[str, typer.Option(help="Recurring run name.")] = "isoclr-retraining",
    cron: Annotated[str | None, typer.Option(help="6-field cron, seconds first (default: kubeflow.schedule_cron).")] = None,
) -> None:
    """Create the recurring retraining run: cron schedule, one run at a time, no catch-up, no cache."""
    from isoclr.kubeflow import kfp_client, schedule

    cfg = _config(params)
    client = kfp_client(host or cfg.kubeflow.host, cfg.kubeflow.namespace)
    typer.echo(schedule(client, package, cfg, name=name, cron=cron, arguments=_run_arguments(arg)))


if __name__ == "__main__":
    app()
