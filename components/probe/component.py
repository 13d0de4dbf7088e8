from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def probe(
    params: dict,
    data_dir: str,
    transcripts: Input[Dataset],
    groups: Input[Dataset],
    model: Input[Model],
    results: Output[Dataset],
    metrics: Output[Metrics],
    table: Output[Markdown],
):
    """Linear probes of the model beside k-mer and random-init baselines; metrics shown in the UI."""
    import shutil
    from pathlib import Path

    from isoclr.config import Config
    from isoclr.probe import run_probes

    out = Path(results.path)
    scores = run_probes(Config.model_validate(params), Path(data_dir), Path(transcripts.path), Path(groups.path), Path(model.path), out)
    for task, by_model in scores.items():
        for name, values in by_model.items():
            for metric in ("pearson_r", "spearman_r", "mse"):
                metrics.log_metric(f"{task}.{name}.{metric}", values[metric])
    shutil.copyfile(out / "table.md", table.path)
