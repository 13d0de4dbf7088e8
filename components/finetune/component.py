from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def finetune(
    params: dict,
    data_dir: str,
    transcripts: Input[Dataset],
    groups: Input[Dataset],
    tracks: Input[Dataset],
    model: Input[Model],
    results: Output[Dataset],
    metrics: Output[Metrics],
    curves: Output[HTML],
):
    """Fine-tuning by train fraction: the trained encoder + head against the same network from random weights.

    Runs on the pod's GPU when it has one. The UI shows every mean score (Metrics: ``<task>.<arm>.<fraction>.
    <metric>``) and the table with the curves inlined (HTML); ``results`` is the whole output folder
    (finetune.json, per_seed.csv, plots/). Fine-tuned weights are not kept.
    """
    import shutil

    from isoclr import stage
    from isoclr.artifacts import FINETUNE_REPORT, Paths
    from isoclr.config import Config

    paths = Paths.task(
        data_dir=data_dir,
        transcripts=transcripts.path,
        groups=groups.path,
        tracks=tracks.path,
        model=model.path,
        finetune=results.path,
    )
    result = stage.execute("finetune", Config.model_validate(params), paths)
    for name, value in result.flat_scores().items():
        metrics.log_metric(name, value)
    shutil.copyfile(paths.finetune / FINETUNE_REPORT, curves.path)
