"""The `reconstruct` stage: the reconstruction baseline, trained beside the contrastive model.

IsoCLR claims that learning from isoform and paralog pairs beats learning to fill in masked
nucleotides. This stage trains the same encoder (``model``) with the same ``train`` settings —
data, crops and masking (``train.mask_prob``), steps, batches, optimiser, schedule, seed, DDP
and checkpoint format — with ``train.objective: reconstruction``: it predicts each masked base
from its per-position representation (:class:`isoclr.models.ReconstructionModel`). The probe
stage probes it on every task as the ``reconstruction`` baseline, paired with the contrastive
model on the same splits.

Entry: :func:`run`, through the stage runner (``isoclr reconstruct``, one process or one rank of
``torchrun --nproc_per_node=N -m isoclr.cli reconstruct OPTIONS``).
"""

from __future__ import annotations

from collections.abc import Callable

from isoclr import train
from isoclr.artifacts import Paths
from isoclr.config import Config

OBJECTIVE = "reconstruction"


def reconstruction_config(cfg: Config, batch_processes: int = 1) -> Config:
    """``cfg`` with ``train.objective`` set to reconstruction (every other setting kept).

    ``batch_processes`` > 1 trains one process on the global batch of that many DDP ranks
    (``batch_genes`` times as many genes), for a contrastive model trained on several GPUs.
    """
    if batch_processes < 1:
        raise ValueError(f"batch_processes must be at least 1, got {batch_processes}")
    changes = {"objective": OBJECTIVE, "batch_genes": cfg.train.batch_genes * batch_processes}
    return cfg.model_copy(update={"train": cfg.train.model_validate({**cfg.train.model_dump(), **changes})})


def training_paths(paths: Paths) -> Paths:
    """``paths`` with train's outputs pointed at the reconstruction ones (model, log, summary, checkpoints)."""
    return paths.replace(
        model=paths.reconstruction_model,
        train_log=paths.reconstruction_log,
        train_summary=paths.reconstruction_summary,
        checkpoints=paths.reconstruction_checkpoints,
    )


def run(
    cfg: Config,
    paths: Paths,
    resume: bool = False,
    tracks: bool = True,
    *,
    batch_processes: int = 1,
    progress: bool = True,
    on_step: Callable[[dict], None] | None = None,
) -> train.TrainResult:
    """Train the reconstruction baseline on ``paths.transcripts`` and ``paths.groups`` (train split).

    Writes ``paths.reconstruction_model`` (the encoder checkpoint, loadable by
    :func:`isoclr.embed.load_encoder`; its metadata says ``objective: reconstruction``),
    ``paths.reconstruction_log`` (step, loss, lr, samples/s, masked_accuracy) and
    ``paths.reconstruction_summary``; checkpoints go to ``paths.reconstruction_checkpoints``.
    Options as :func:`isoclr.train.run`; ``batch_processes`` as :func:`reconstruction_config`.
    """
    return train.run(
        reconstruction_config(cfg, batch_processes),
        training_paths(paths),
        resume=resume,
        tracks=tracks,
        progress=progress,
        on_step=on_step,
    )
