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
    from pathlib import Path

    from isoclr.config import Config
    from isoclr.train import train as run

    checkpoints = Path(checkpoint_dir) if checkpoint_dir else None
    summary = run(
        Config.model_validate(params),
        Path(transcripts.path),
        Path(groups.path),
        Path(model.path),
        Path(log.path),
        checkpoint_dir=checkpoints,
        resume=checkpoints is not None,
        tracks_path=Path(tracks.path),
    )
    model.metadata.update(summary)


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
    import os
    import shutil
    from pathlib import Path

    import yaml

    from isoclr.config import Config
    from isoclr.kubeflow import follow_trainjob, launch_trainjob, trainer_client

    cfg = Config.model_validate(params)
    if not run_dir:
        raise RuntimeError(f"a TrainJob needs the checkpoints PVC mounted at {cfg.kubeflow.checkpoints_mount}")
    staged = Path(run_dir)
    staged.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(transcripts.path, staged / "transcripts.parquet")
    shutil.copyfile(groups.path, staged / "groups.parquet")
    if not (staged / "tracks").is_dir():  # once per run, whole or not at all: a retried launcher's job may be reading it
        shutil.rmtree(staged / ".tracks.tmp", ignore_errors=True)
        shutil.copytree(tracks.path, staged / ".tracks.tmp")
        os.replace(staged / ".tracks.tmp", staged / "tracks")
    (staged / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    client = trainer_client(cfg.kubeflow.namespace)
    name = launch_trainjob(client, cfg.kubeflow, image=image, gpu_count=gpu_count, gpu_type=gpu_type, run_id=run_id, run_dir=run_dir)
    status = follow_trainjob(client, name, cfg.kubeflow)
    shutil.copytree(staged / "model", model.path, dirs_exist_ok=True)
    shutil.copyfile(staged / "train_log.csv", log.path)
    model.metadata.update({"trainjob": name, "status": status, "gpus": gpu_count})
