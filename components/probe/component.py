from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def probe(
    params: dict,
    data_dir: str,
    champion_version: str,
    transcripts: Input[Dataset],
    groups: Input[Dataset],
    tracks: Input[Dataset],
    model: Input[Model],
    reconstruction: Input[Model],
    results: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
    summary: Output[Markdown],
):
    """Linear probes of the model beside reconstruction, k-mer, random-init and champion baselines (paired, same
    splits); ``reconstruction`` is the reconstruct task's encoder.

    ``champion_version`` ("" for none) is resolved by the uncached champion task, so this task reads nothing
    that is not an input and may be cached. The UI shows the metrics (Metrics), the self-contained report
    (HTML) and its summary (Markdown); ``results`` is the whole output folder (metrics.json, per-seed table,
    plots) for the gate.
    """
    import shutil

    from isoclr import stage
    from isoclr.artifacts import Paths
    from isoclr.config import Config

    paths = Paths.task(
        data_dir=data_dir,
        transcripts=transcripts.path,
        groups=groups.path,
        tracks=tracks.path,
        model=model.path,
        reconstruction_model=reconstruction.path,
        probe=results.path,
    )
    result = stage.execute("probe", Config.model_validate(params), paths, champion_version=champion_version)
    for name, value in result.flat_scores().items():
        metrics.log_metric(name, value)
    shutil.copyfile(paths.probe_report, report.path)
    shutil.copyfile(paths.probe_table, summary.path)
