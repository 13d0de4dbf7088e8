"""`isoclr` command line: one subcommand per pipeline stage, over the library's stage runner.

Every stage command builds the stage's :class:`~isoclr.artifacts.Paths` from its
options (defaults: the ``dvc.yaml`` layout under ``outputs/``) and calls
:func:`isoclr.stage.execute`, as the Kubeflow components do. Heavy modules are
imported inside the commands so `--help` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from isoclr import __version__
from isoclr.artifacts import Paths
from isoclr.cli import embed as embed_command
from isoclr.cli import pipeline as pipeline_commands
from isoclr.cli import registry as registry_commands
from isoclr.cli import synth as synth_command
from isoclr.cli.common import (
    DEFAULT,
    CheckpointDir,
    DataDir,
    Groups,
    ModelDir,
    NoTracks,
    Params,
    Resume,
    Tracks,
    Transcripts,
    fail,
    load_config,
    run_stage,
)

app = typer.Typer(
    help="Train, evaluate and ship IsoCLR contrastive RNA encoders.\n\n"
    "Stages run in order: validate -> encode -> pairs -> train (and reconstruct) -> latent -> probe -> gate -> "
    "register (and finetune after train). "
    "`dvc repro` runs them all with the defaults shown in each command's --help; "
    "`isoclr embed` embeds your own transcripts with a trained model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(registry_commands.app, name="registry")
app.add_typer(pipeline_commands.app, name="pipeline")


def _version(show: bool) -> None:
    if show:
        typer.echo(f"isoclr {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    pass


@app.command()
def validate(
    params: Params = Path("params.yaml"),
    data_dir: DataDir = None,
    transcripts: Annotated[
        Path, typer.Option(help="Output: validated transcripts table (parquet).")
    ] = DEFAULT.transcripts,
    quarantine: Annotated[
        Path, typer.Option(help="Output: rejected records with file, record, rule (TSV).")
    ] = DEFAULT.quarantine,
    summary: Annotated[
        Path, typer.Option(help="Output: counts by rule and annotation set (JSON).")
    ] = DEFAULT.validate_summary,
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
    run_stage(
        "validate",
        params,
        Paths(data_dir=data_dir, transcripts=transcripts, quarantine=quarantine, validate_summary=summary),
    )


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
    run_stage("encode", params, Paths(transcripts=transcripts, tracks=store))


@app.command()
def pairs(
    params: Params = Path("params.yaml"),
    data_dir: DataDir = None,
    transcripts: Transcripts = DEFAULT.transcripts,
    groups: Annotated[
        Path,
        typer.Option(
            help="Output: gene, species, isoform count, homology group, split and ortholog partners per transcript."
        ),
    ] = DEFAULT.groups,
    summary: Annotated[Path, typer.Option(help="Output: group and split counts (JSON).")] = DEFAULT.pairs_summary,
) -> None:
    """Group isoforms by gene and genes by paralog and ortholog family; split by homology group.

    Paralog pairs (`data.paralogs`) link genes within a species, ortholog pairs
    (`data.orthologs`, when set) genes of two species; both name genes by Ensembl
    id, gene id or symbol. Homology groups are their connected components. The
    split (fractions under `splits`) never puts one homology group on two sides.
    """
    run_stage("pairs", params, Paths(data_dir=data_dir, transcripts=transcripts, groups=groups, pairs_summary=summary))


@app.command()
def train(
    params: Params = Path("params.yaml"),
    transcripts: Transcripts = DEFAULT.transcripts,
    groups: Groups = DEFAULT.groups,
    model_dir: Annotated[
        Path, typer.Option(help="Output: encoder.pt (weights, config, provenance) and meta.json.")
    ] = DEFAULT.model,
    log: Annotated[
        Path,
        typer.Option(
            "--log",
            "--train-log",
            help="Output: per-step loss, learning rate, samples/s (CSV); "
            "under torchrun spell it --train-log (torchrun reads --log as its own --log-dir).",
        ),
    ] = DEFAULT.train_log,
    metrics: Annotated[
        Path, typer.Option(help="Output: run summary (JSON): losses, seconds, parameters.")
    ] = DEFAULT.train_summary,
    checkpoint_dir: CheckpointDir = DEFAULT.checkpoints,
    resume: Resume = False,
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
    paths = Paths(
        transcripts=transcripts,
        groups=groups,
        model=model_dir,
        train_log=log,
        train_summary=metrics,
        checkpoints=checkpoint_dir,
        tracks=tracks,
    )
    run_stage("train", params, paths, resume=resume, tracks=not no_tracks)


@app.command()
def latent(
    params: Params = Path("params.yaml"),
    data_dir: DataDir = None,
    transcripts: Transcripts = DEFAULT.transcripts,
    groups: Groups = DEFAULT.groups,
    model_dir: ModelDir = DEFAULT.model,
    out_dir: Annotated[
        Path, typer.Option(help="Output: latent.json, metrics.json, report.html and maps/ (t-SNE / UMAP PNGs).")
    ] = DEFAULT.latent,
    tracks: Tracks = DEFAULT.tracks,
    no_tracks: NoTracks = False,
) -> None:
    """kNN label agreement and t-SNE / UMAP maps of the frozen embeddings, model vs random init.

    Embeds up to `latent.max_points` annotation transcripts (a seeded subsample)
    with the trained encoder and with the same architecture randomly initialised
    at each of `latent.random_seeds`. For each label set in `latent.labels` (GO
    root terms of BP / MF / CC from the tables under `data.go`, multilabel;
    homology group; biotype) it reports the share of each transcript's `latent.k`
    nearest neighbours (its own gene excluded) that share its label, for both
    encoders and at chance, and the paired difference over `latent.folds` folds
    of genes with its 95% CI and p-value. Draws the maps of both encoders side by
    side per label set and writes a self-contained report.html.
    """
    paths = Paths(
        data_dir=data_dir, transcripts=transcripts, groups=groups, model=model_dir, latent=out_dir, tracks=tracks
    )
    run_stage("latent", params, paths, tracks=not no_tracks)


@app.command()
def reconstruct(
    params: Params = Path("params.yaml"),
    transcripts: Transcripts = DEFAULT.transcripts,
    groups: Groups = DEFAULT.groups,
    model_dir: Annotated[
        Path, typer.Option(help="Output: the reconstruction encoder (encoder.pt, meta.json).")
    ] = DEFAULT.reconstruction_model,
    log: Annotated[
        Path,
        typer.Option(
            "--log",
            "--train-log",
            help="Output: per-step loss, learning rate, samples/s, masked-base accuracy (CSV); "
            "under torchrun spell it --train-log.",
        ),
    ] = DEFAULT.reconstruction_log,
    metrics: Annotated[
        Path, typer.Option(help="Output: run summary (JSON): losses, masked accuracy, seconds.")
    ] = DEFAULT.reconstruction_summary,
    checkpoint_dir: CheckpointDir = DEFAULT.reconstruction_checkpoints,
    resume: Resume = False,
    tracks: Tracks = DEFAULT.tracks,
    no_tracks: NoTracks = False,
) -> None:
    """The reconstruction baseline: the same encoder trained to predict masked nucleotides.

    Same data, crops, masking (train.mask_prob), steps, batches, optimiser and seed as
    `isoclr train`, with train.objective set to reconstruction: cross-entropy of each masked
    base from the encoder's per-position representation. `isoclr probe` probes it beside the
    contrastive model (model `reconstruction`, paired `isoclr_minus_reconstruction`). Runs
    under torchrun like `isoclr train`.
    """
    paths = Paths(
        transcripts=transcripts,
        groups=groups,
        reconstruction_model=model_dir,
        reconstruction_log=log,
        reconstruction_summary=metrics,
        reconstruction_checkpoints=checkpoint_dir,
        tracks=tracks,
    )
    run_stage("reconstruct", params, paths, resume=resume, tracks=not no_tracks)


@app.command()
def probe(
    params: Params = Path("params.yaml"),
    data_dir: DataDir = None,
    transcripts: Transcripts = DEFAULT.transcripts,
    groups: Groups = DEFAULT.groups,
    model_dir: ModelDir = DEFAULT.model,
    reconstruction_dir: Annotated[
        Path, typer.Option(help="Input: the reconstruction baseline's model folder (`isoclr reconstruct`).")
    ] = DEFAULT.reconstruction_model,
    out_dir: Annotated[
        Path, typer.Option(help="Output: metrics.json, per_seed.csv, low_data.csv, table.md, report.html, plots/.")
    ] = DEFAULT.probe,
    tracks: Tracks = DEFAULT.tracks,
    no_tracks: NoTracks = False,
    champion: Annotated[
        str | None,
        typer.Option(
            help="Registry version to probe as the champion (default: the registry's champion now; "
            "`none`: no champion)."
        ),
    ] = None,
) -> None:
    """Linear probes on frozen embeddings, beside reconstruction, k-mer, random-init and champion baselines.

    Each task under `probe.tasks` (regression: ridge, Pearson/Spearman/MSE;
    classification: logistic, AUROC/AUPRC) is split by group (homology group
    where genes are known; parent UTR, shared prefix or random where not) over
    `probe.seeds` seeds, with a low-data curve over `probe.train_fractions`.
    Every model is probed on the same splits, so `isoclr_minus_<baseline>` is a
    paired difference with its 95% CI; `isoclr_minus_reconstruction` says whether the contrastive
    objective beats masked-nucleotide reconstruction. The registry's champion (`registry.uri`)
    is probed too, for the gate's no-regression rule. Writes a Markdown summary
    (table.md) and a self-contained HTML report (report.html).
    """
    paths = Paths(
        data_dir=data_dir,
        transcripts=transcripts,
        groups=groups,
        model=model_dir,
        reconstruction_model=reconstruction_dir,
        probe=out_dir,
        tracks=tracks,
    )
    options = {"tracks": not no_tracks}
    if champion is not None:
        options["champion_version"] = "" if champion == "none" else champion
    run_stage("probe", params, paths, **options)


@app.command()
def finetune(
    params: Params = Path("params.yaml"),
    data_dir: DataDir = None,
    transcripts: Transcripts = DEFAULT.transcripts,
    groups: Groups = DEFAULT.groups,
    model_dir: ModelDir = DEFAULT.model,
    out_dir: Annotated[
        Path, typer.Option(help="Output: finetune.json, per_seed.csv, plots/<task>.png, report.html.")
    ] = DEFAULT.finetune,
    tracks: Tracks = DEFAULT.tracks,
    no_tracks: NoTracks = False,
) -> None:
    """Fine-tune the trained encoder by train fraction, against the same network from random weights.

    For each regression task in `finetune.tasks` (names under `probe.tasks`), the
    encoder plus a small head is trained end to end on shares of the train split
    (`finetune.train_fractions`, nested subsets) and scored on test (Pearson r,
    MSE), beside the same architecture trained from random initialisation with
    the same budget, splits, subsets and seeds; each fit stops early on the val
    split. Reports mean and 95% CI over `finetune.seeds` seeds and the paired
    difference pretrained - scratch; fractions with fewer than
    `finetune.min_train_rows` train rows are skipped and listed. Fine-tuned
    weights are not kept. Uses the GPU when there is one.
    """
    paths = Paths(
        data_dir=data_dir, transcripts=transcripts, groups=groups, model=model_dir, finetune=out_dir, tracks=tracks
    )
    run_stage("finetune", params, paths, tracks=not no_tracks)


@app.command()
def gate(
    params: Params = Path("params.yaml"),
    probe_dir: Annotated[Path, typer.Option(help="Input: the probe output folder (its metrics.json).")] = DEFAULT.probe,
    decision: Annotated[
        Path, typer.Option(help="Output: pass/fail with number, bound and reason per rule (JSON).")
    ] = DEFAULT.decision,
    compare_champion: Annotated[
        bool, typer.Option(help="Hold the model to the registry's champion (no regression).")
    ] = True,
) -> None:
    """Decide whether the model may be registered (rules under `gate` in params.yaml).

    Per gated task and metric: the threshold, beating the random-init encoder
    (paired), and no regression against the registry's champion (paired, same
    splits). A failed gate is a result, not an error: the command exits 0 and
    the decision file says which rule failed and why.
    """
    run_stage("gate", params, Paths(probe=probe_dir, decision=decision), compare_champion=compare_champion)


@app.command()
def register(
    params: Params = Path("params.yaml"),
    model_dir: ModelDir = DEFAULT.model,
    probe_dir: Annotated[Path, typer.Option(help="Input: the probe output folder (its metrics.json).")] = DEFAULT.probe,
    decision: Annotated[Path, typer.Option(help="Input: gate decision.")] = DEFAULT.decision,
    record: Annotated[
        Path, typer.Option(help="Output: what was registered, or why not (JSON).")
    ] = DEFAULT.registration,
    registry: Annotated[str | None, typer.Option(help="Registry URI (default: registry.uri in params.yaml).")] = None,
) -> None:
    """Write an immutable model version and move the champion pointer, if the gate passed."""
    cfg = load_config(params)
    if registry is not None:
        cfg = cfg.model_copy(update={"registry": cfg.registry.model_copy(update={"uri": registry})})
    run_stage("register", cfg, Paths(model=model_dir, probe=probe_dir, decision=decision, registration=record))


@app.command()
def summary(
    table: Annotated[Path, typer.Option(help="Probe table (Markdown).")] = DEFAULT.probe_table,
    probe_metrics: Annotated[Path, typer.Option(help="Probe scores (metrics.json).")] = DEFAULT.probe_metrics,
    decision: Annotated[Path, typer.Option(help="Gate decision.")] = DEFAULT.decision,
    record: Annotated[Path, typer.Option(help="Registration record.")] = DEFAULT.registration,
) -> None:
    """Print the outcome of the last run: probe table, contrastive vs reconstruction per task, gate decision,
    registered version."""
    from isoclr import scores

    for path in (table, probe_metrics, decision, record):
        if not path.exists():
            fail(f"{path} does not exist: run the pipeline first (`dvc repro`)")
    typer.echo(table.read_text())
    rows = scores.versus(scores.read(probe_metrics), scores.RECONSTRUCTION)
    typer.echo("contrastive vs reconstruction (paired, same splits; not gated):")
    for row in rows:
        typer.echo(f"  {scores.versus_line(row, scores.RECONSTRUCTION)}")
    if not rows:
        typer.echo("  no reconstruction baseline in the probe results (probed before the reconstruct stage existed)")
    verdict = json.loads(decision.read_text())
    typer.echo(f"gate: {'passed' if verdict['passed'] else 'failed'}")
    for rule in verdict["rules"]:
        typer.echo(f"  {'PASS' if rule['passed'] else 'FAIL'}  {rule['task']} {rule['metric']}: {rule['reason']}")
    typer.echo(f"registration: {json.loads(record.read_text())}")


app.command()(embed_command.embed)
app.command()(synth_command.synth)
