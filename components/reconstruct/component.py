from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def reconstruct(
    params: dict,
    gpu_count: int,
    transcripts: Input[Dataset],
    groups: Input[Dataset],
    tracks: Input[Dataset],
    model: Output[Model],
    log: Output[Dataset],
    checkpoint_dir: str = "",
):
    """The reconstruction baseline in this pod (one GPU, or CPU): the train stage's encoder, data and settings,
    trained to predict masked bases. ``gpu_count`` is the contrastive run's: one process here trains on the
    global batch of that many ranks, so both arms see the same batch budget. With a ``checkpoint_dir`` (the
    run's folder on the checkpoints PVC) a retried task resumes from its own subfolder."""
    from pathlib import Path

    from isoclr import stage
    from isoclr.artifacts import Paths
    from isoclr.config import Config

    given = {"reconstruction_checkpoints": Paths.under(Path(checkpoint_dir)).reconstruction_checkpoints}
    paths = Paths.task(
        transcripts=transcripts.path,
        groups=groups.path,
        tracks=tracks.path,
        reconstruction_model=model.path,
        reconstruction_log=log.path,
        **(given if checkpoint_dir else {}),
    )
    cfg = Config.model_validate(params)
    result = stage.execute("reconstruct", cfg, paths, resume=bool(checkpoint_dir), batch_processes=max(1, gpu_count))
    model.metadata.update(stage.metadata(result))
