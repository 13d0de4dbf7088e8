"""`isoclr` command line: one subcommand per pipeline stage, over the library functions.

Defaults match dvc.yaml, so `isoclr validate` with no options does what the
DVC stage does. Heavy modules are imported inside the commands so `--help`
stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from isoclr import __version__
from isoclr.config import Config, load

app = typer.Typer(
    help="Train, evaluate and ship IsoCLR contrastive RNA encoders.\n\n"
    "Stages run in order: validate -> pairs -> train -> probe -> gate -> register. "
    "`dvc repro` runs them all with the defaults shown in each command's --help.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
registry_app = typer.Typer(help="Inspect and manage the model registry.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")

Params = Annotated[Path, typer.Option("--params", "-p", help="The pipeline configuration.", exists=True, dir_okay=False)]
DataDir = Annotated[
    Path | None, typer.Option(help="Folder with the input files named in params.yaml (default: data.dir there).")
]
OUT = Path("outputs")


def _config(params: Path) -> Config:
    try:
        return load(params)
    except ValueError as err:
        _fail(str(err))


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _data_root(cfg: Config, data_dir: Path | None) -> Path:
    return data_dir if data_dir is not None else Path(cfg.data.dir)


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
    transcripts: Annotated[Path, typer.Option(help="Output: validated transcripts table (parquet).")] = OUT / "transcripts.parquet",
    quarantine: Annotated[Path, typer.Option(help="Output: rejected records with file, record, rule (TSV).")] = OUT / "quarantine.tsv",
    summary: Annotated[Path, typer.Option(help="Output: counts by rule and annotation set (JSON).")] = OUT / "validate.json",
) -> None:
    """Parse and check the annotation sets into one transcripts table.

    Inputs are the annotation sets under `data.annotations` in params.yaml: a
    GENCODE transcript FASTA, or a GTF with its spliced transcript FASTA (plain
    or gzip). Each transcript becomes a row with its sequence, CDS and exon ends
    (transcript coordinates, strand resolved). A record that breaks a rule
    (truncated, duplicate id, bad characters, too long, ...) goes to the
    quarantine file with the rule; the command fails only when too few usable
    transcripts remain or too large a share was rejected (thresholds under
    `validate` in params.yaml).
    """
    cfg = _config(params)
    from isoclr.ingest import ValidationError, validate as run

    try:
        result = run(cfg, _data_root(cfg, data_dir), transcripts, quarantine, summary)
    except (ValidationError, FileNotFoundError) as err:
        _fail(str(err))
    typer.echo(f"{result.n_transcripts} transcripts -> {transcripts}; {result.n_quarantined} quarantined -> {quarantine}")
    for rule, count in sorted(result.by_rule.items()):
        typer.echo(f"  {rule}: {count}")


@app.command()
def pairs(
    params: Params = Path("params.yaml"),
    data_dir: DataDir = None,
    transcripts: Annotated[Path, typer.Option(help="Input: validated transcripts table.")] = OUT / "transcripts.parquet",
    groups: Annotated[Path, typer.Option(help="Output: gene, isoform count, homology group and split per transcript.")] = OUT / "groups.parquet",
    summary: Annotated[Path, typer.Option(help="Output: group and split counts (JSON).")] = OUT / "pairs.json",
) -> None:
    """Group isoforms by gene and genes by paralog family; split by homology group.

    Paralog pairs (gene symbols, `data.paralogs`) are joined to the annotation
    by gene name; homology groups are their connected components. The split
    (fractions under `splits`) never puts one homology group on two sides.
    """
    cfg = _config(params)
    from isoclr.pairs import run_pairs

    result = run_pairs(cfg, _data_root(cfg, data_dir), transcripts, groups, summary)
    typer.echo(json.dumps(result.__dict__, indent=2))


@app.command()
def train(
    params: Params = Path("params.yaml"),
    transcripts: Annotated[Path, typer.Option(help="Input: validated transcripts table.")] = OUT / "transcripts.parquet",
    groups: Annotated[Path, typer.Option(help="Input: groups table from `isoclr pairs`.")] = OUT / "groups.parquet",
    model_dir: Annotated[Path, typer.Option(help="Output: encoder.pt (weights, config, provenance) and meta.json.")] = OUT / "model",
    log: Annotated[Path, typer.Option(help="Output: per-step loss, learning rate, samples/s (CSV).")] = OUT / "train_log.csv",
) -> None:
    """Contrastive pretraining of the encoder on isoform and paralog pairs (train split)."""
    cfg = _config(params)
    from isoclr.train import train as run

    typer.echo(json.dumps(run(cfg, transcripts, groups, model_dir, log), indent=2))


@app.command()
def probe(
    params: Params = Path("params.yaml"),
    data_dir: DataDir = None,
    transcripts: Annotated[Path, typer.Option(help="Input: validated transcripts table.")] = OUT / "transcripts.parquet",
    groups: Annotated[Path, typer.Option(help="Input: groups table.")] = OUT / "groups.parquet",
    model_dir: Annotated[Path, typer.Option(help="Input: trained model folder.")] = OUT / "model",
    out_dir: Annotated[Path, typer.Option(help="Output: metrics.json, table.csv/.md, predictions.csv, plots.")] = OUT / "probe",
) -> None:
    """Linear probes on frozen embeddings, beside a k-mer and a random-init baseline.

    Each task under `probe.tasks` is split by group (homology group, parent
    sequence or shared prefix) over `probe.seeds` seeds; the table gives mean
    and 95% CI of Pearson r, Spearman r and MSE.
    """
    cfg = _config(params)
    from isoclr.probe import run_probes

    run_probes(cfg, _data_root(cfg, data_dir), transcripts, groups, model_dir, out_dir)
    typer.echo((out_dir / "table.md").read_text())


@app.command()
def gate(
    params: Params = Path("params.yaml"),
    metrics: Annotated[Path, typer.Option(help="Input: probe metrics.json.")] = OUT / "probe" / "metrics.json",
    decision: Annotated[Path, typer.Option(help="Output: pass/fail with the reason per rule (JSON).")] = OUT / "gate.json",
) -> None:
    """Decide whether the model may be registered (rules under `gate` in params.yaml).

    A failed gate is a result, not an error: the command exits 0 and the
    decision file says which rule failed and why.
    """
    cfg = _config(params)
    from isoclr.gate import run_gate

    result = run_gate(cfg, metrics, decision)
    for rule in result["rules"]:
        typer.echo(f"{'PASS' if rule['passed'] else 'FAIL'}  {rule['task']} {rule['metric']}: {rule['reason']}")
    typer.echo(f"gate: {'passed' if result['passed'] else 'failed'}")


@app.command()
def register(
    params: Params = Path("params.yaml"),
    model_dir: Annotated[Path, typer.Option(help="Input: trained model folder.")] = OUT / "model",
    metrics: Annotated[Path, typer.Option(help="Input: probe metrics.json.")] = OUT / "probe" / "metrics.json",
    decision: Annotated[Path, typer.Option(help="Input: gate decision.")] = OUT / "gate.json",
    record: Annotated[Path, typer.Option(help="Output: what was registered, or why not (JSON).")] = OUT / "registration.json",
    registry: Annotated[str | None, typer.Option(help="Registry URI (default: registry.uri in params.yaml).")] = None,
) -> None:
    """Write an immutable model version and move the champion pointer, if the gate passed."""
    cfg = _config(params)
    from isoclr.registry import run_register

    if registry is not None:
        cfg = cfg.model_copy(update={"registry": cfg.registry.model_copy(update={"uri": registry})})
    result = run_register(cfg, model_dir, metrics, decision, record)
    typer.echo(json.dumps(result, indent=2) if result else "not registered: the gate did not pass")


@app.command()
def summary(
    table: Annotated[Path, typer.Option(help="Probe table (Markdown).")] = OUT / "probe" / "table.md",
    decision: Annotated[Path, typer.Option(help="Gate decision.")] = OUT / "gate.json",
    record: Annotated[Path, typer.Option(help="Registration record.")] = OUT / "registration.json",
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


Uri = Annotated[str, typer.Option("--registry", help="Registry URI.")]


@registry_app.command("list")
def registry_list(registry: Uri = "file://registry") -> None:
    """List the complete (manifest-verified) model versions, oldest first."""
    from isoclr.registry import champion, list_versions

    current = champion(registry)
    for version in list_versions(registry):
        mark = "*" if version["version"] == current else " "
        typer.echo(f"{mark} {version['version']}")


@registry_app.command("champion")
def registry_champion(registry: Uri = "file://registry") -> None:
    """Print the champion version id."""
    from isoclr.registry import champion

    current = champion(registry)
    if current is None:
        _fail(f"{registry} has no champion yet")
    typer.echo(current)


@registry_app.command("rollback")
def registry_rollback(version: Annotated[str, typer.Argument(help="Version id to make champion.")], registry: Uri = "file://registry") -> None:
    """Move the champion pointer to an earlier version."""
    from isoclr.registry import RegistryError, set_champion

    try:
        set_champion(registry, version)
    except RegistryError as err:
        _fail(str(err))
    typer.echo(f"champion -> {version}")


if __name__ == "__main__":
    app()
