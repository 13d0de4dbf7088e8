from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(
    params: dict,
    transcripts: Input[Dataset],
    groups: Input[Dataset],
    tracks: Input[Dataset],
    model: Output[Model],
    log: Output[Dataset],
    checkpoint_dir: str = "",
):
    """Contrastive pretraining in this pod (one GPU, or CPU), reading views from the ``tracks`` store; the model
    artifact is a folder with encoder.pt and meta.json. With a ``checkpoint_dir`` (on the checkpoints PVC) a
    retried task resumes."""
    from isoclr import stage
    from isoclr.artifacts import Paths
    from isoclr.config import Config

    given = {"checkpoints": checkpoint_dir} if checkpoint_dir else {}
    paths = Paths.task(
        transcripts=transcripts.path,
        groups=groups.path,
        tracks=tracks.path,
        model=model.path,
        train_log=log.path,
        **given,
    )
    result = stage.execute("train", Config.model_validate(params), paths, resume=bool(checkpoint_dir))
    model.metadata.update(stage.metadata(result))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_distributed(
    params: dict,
    gpu_count: int,
    gpu_type: str,
    run_id: str,
    run_dir: str,
    image: str,
    transcripts: Input[Dataset],
    groups: Input[Dataset],
    tracks: Input[Dataset],
    model: Output[Model],
    log: Output[Dataset],
):
    """Train on several GPUs or nodes: a Kubeflow Trainer TrainJob runs `isoclr train` under torchrun
    on inputs staged in ``run_dir`` (checkpoints PVC); this task streams its log and waits for it."""
    import shutil

    from isoclr.config import Config
    from isoclr.kubeflow import follow_trainjob, launch_trainjob, stage_trainjob_inputs, trainer_client

    cfg = Config.model_validate(params)
    staged = stage_trainjob_inputs(cfg, run_dir, params, transcripts.path, groups.path, tracks.path)
    client = trainer_client(cfg.kubeflow.namespace)
    name = launch_trainjob(
        client, cfg.kubeflow, image=image, gpu_count=gpu_count, gpu_type=gpu_type, run_id=run_id, run_dir=run_dir
    )
    status = follow_trainjob(client, name, cfg.kubeflow)
    shutil.copytree(staged.model, model.path, dirs_exist_ok=True)
    shutil.copyfile(staged.train_log, log.path)
    model.metadata.update({"trainjob": name, "status": status, "gpus": gpu_count})
