from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def probe(
    params: dict,
    data_dir: str,
    registry_uri: str,
    transcripts: Input[Dataset],
    groups: Input[Dataset],
    tracks: Input[Dataset],
    model: Input[Model],
    results: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
    summary: Output[Markdown],
):
    """Linear probes of the model beside k-mer, random-init and champion baselines (paired, same splits).

    The UI shows the metrics (Metrics), the self-contained report (HTML) and its summary (Markdown);
    ``results`` is the whole output folder (metrics.json, per-seed table, plots) for the gate.
    """
    import shutil
    from pathlib import Path

    from isoclr.config import Config
    from isoclr.probe import run_probes

    cfg = Config.model_validate(params)
    cfg = cfg.model_copy(update={"registry": cfg.registry.model_copy(update={"uri": registry_uri})})
    out = Path(results.path)
    scores = run_probes(
        cfg, Path(data_dir), Path(transcripts.path), Path(groups.path), Path(model.path), out, Path(tracks.path)
    )
    for task, by_model in scores.items():
        for name, values in by_model.items():
            for metric, value in values.items():
                if isinstance(value, float):
                    metrics.log_metric(f"{task}.{name}.{metric}", value)
    shutil.copyfile(out / "report.html", report.path)
    shutil.copyfile(out / "table.md", summary.path)
