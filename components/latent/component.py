from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def latent(
    params: dict,
    data_dir: str,
    transcripts: Input[Dataset],
    groups: Input[Dataset],
    tracks: Input[Dataset],
    model: Input[Model],
    results: Output[Dataset],
    metrics: Output[Metrics],
    maps: Output[HTML],
):
    """kNN label agreement and t-SNE / UMAP maps of the frozen embeddings, model beside random init.

    The UI shows the agreement numbers (Metrics: ``<label>.isoclr``, ``<label>.random_init``,
    ``<label>.chance``, ``<label>.isoclr_minus_random_init``, ``<label>.p_value``) and the maps (HTML: the
    self-contained report with every PNG inlined); ``results`` is the whole folder (latent.json, maps/).
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
        latent=results.path,
    )
    result = stage.execute("latent", Config.model_validate(params), paths)
    for name, value in result.flat_scores().items():
        metrics.log_metric(name, value)
    shutil.copyfile(result.report, maps.path)
