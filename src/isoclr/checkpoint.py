"""What training leaves on disk: the encoder checkpoint that `embed` and `probe` load, and the resumable state.

``encoder.pt`` (:data:`~isoclr.artifacts.MODEL_CHECKPOINT`) holds the encoder's weights beside
:func:`checkpoint_header` (format, format version, isoclr version, channels, packed track layout),
the model config and the run's metadata; ``meta.json`` (:data:`~isoclr.artifacts.MODEL_META`) holds
the same fields but the weights, for people and the registry. This code reads an encoder when its
format version is :data:`FORMAT_VERSION` and its isoclr major version equals this package's; anything
else is an :class:`IncompatibleModelError` naming both versions.

``last.pt`` (:data:`~isoclr.artifacts.LAST_CHECKPOINT`) holds everything a killed training run needs
to continue to the weights an uninterrupted run reaches: model, optimiser, scheduler, RNG and sampler
state, and the step log so far. Both are read with ``weights_only=True``: plain tensors and
containers, never pickled code.
"""

from __future__ import annotations

import json
import pickle
import random
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from isoclr import __version__, tracks
from isoclr.artifacts import MODEL_CHECKPOINT, MODEL_META
from isoclr.atomic import write_atomic
from isoclr.config import Config, ModelConfig
from isoclr.errors import IsoclrError, MissingInputError
from isoclr.models import build_encoder
from isoclr.store import LAYOUT

FORMAT = "isoclr-encoder"
FORMAT_VERSION = 1
# Checkpoints written before the format fields existed have the format-1 layout.
LEGACY_FORMAT_VERSION = 1
# Train settings that may change between a checkpoint and its resumption (they do not change the result).
RESUMABLE_CHANGES = frozenset({"checkpoint_every", "loader_workers", "compile"})


class CheckpointError(IsoclrError, ValueError):
    """A checkpoint this code cannot use: not an isoclr checkpoint, or not for this configuration."""


class IncompatibleModelError(CheckpointError):
    """The checkpoint was written by an isoclr whose encoder format this version cannot read."""


# --------------------------------------------------------------------------- the encoder: encoder.pt, meta.json


def checkpoint_header() -> dict:
    """What a saved encoder records besides config and weights, to be rebuilt (and refused) safely."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "isoclr_version": __version__,
        "channels": list(tracks.CHANNELS),
        "track_layout": LAYOUT,
    }


def _major(version: str) -> int | None:
    head = str(version).split(".", 1)[0]
    return int(head) if head.isdigit() else None


def check_compatible(meta: Mapping, where: str) -> None:
    """Raise :class:`IncompatibleModelError` unless this code can rebuild the encoder ``meta`` describes."""
    saved = meta.get("isoclr_version", "unknown")
    advice = f"load it with isoclr {saved}, or retrain with isoclr {__version__}"
    if meta.get("format", FORMAT) != FORMAT:
        raise IncompatibleModelError(f"{where}: format {meta.get('format')!r} is not an isoclr encoder ({FORMAT!r})")
    version = meta.get("format_version", LEGACY_FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise IncompatibleModelError(
            f"{where}: encoder checkpoint format {version} (written by isoclr {saved}); "
            f"isoclr {__version__} reads format {FORMAT_VERSION}: {advice}"
        )
    if _major(saved) is not None and _major(saved) != _major(__version__):
        raise IncompatibleModelError(
            f"{where}: written by isoclr {saved}, major version {_major(saved)}; this is isoclr {__version__} "
            f"(major {_major(__version__)}), and encoders are compatible within a major version only: {advice}"
        )
    if list(meta.get("channels", [])) != list(tracks.CHANNELS):
        raise IncompatibleModelError(
            f"{where}: trained on input channels {meta.get('channels')}, this code encodes {list(tracks.CHANNELS)}"
        )
    if "track_layout" in meta and dict(meta["track_layout"]) != LAYOUT:
        raise IncompatibleModelError(f"{where}: track layout {meta['track_layout']}, this code packs {LAYOUT}")


def write_encoder(model_dir: Path, encoder: nn.Module, model_cfg: ModelConfig, **fields) -> dict:
    """Write ``encoder.pt`` (weights and metadata) and ``meta.json`` (the metadata) into ``model_dir``.

    The metadata is :func:`checkpoint_header`, the model config and ``fields`` (train config,
    provenance, final loss, ...), in that order. Each file is written atomically. Returns the metadata.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    meta = {**checkpoint_header(), "model_config": model_cfg.model_dump(mode="json"), **fields}
    saved = {"state_dict": encoder.state_dict(), **meta}
    write_atomic(model_dir / MODEL_CHECKPOINT, lambda p: torch.save(saved, p))
    write_atomic(model_dir / MODEL_META, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))
    return meta


def _load_weights_only(path: Path) -> dict:
    """``torch.load`` with ``weights_only=True``: tensors and plain values only, never code run from the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused: it holds objects other than tensors and plain values (code would run if it were "
            f"loaded); only load checkpoints you trust: {str(err).splitlines()[0]}"
        ) from err


def read_encoder(model_dir: Path) -> tuple[nn.Module, dict]:
    """The encoder written by :func:`write_encoder` (on CPU, eval mode), and its metadata.

    Raises:
        MissingInputError: no ``encoder.pt`` in ``model_dir``.
        IncompatibleModelError: written by an incompatible isoclr (format or major version, channels, layout).
        CheckpointError: the checkpoint's config or weights do not fit this code.
    """
    path = Path(model_dir) / MODEL_CHECKPOINT
    if not path.is_file():
        raise MissingInputError(f"{path}: no encoder checkpoint (run the train stage first)")
    checkpoint = _load_weights_only(path)
    missing = {"state_dict", "model_config", "channels"} - set(checkpoint)
    if missing:
        raise CheckpointError(f"{path}: not an isoclr encoder checkpoint (missing {sorted(missing)})")
    check_compatible(checkpoint, str(path))
    try:
        cfg = ModelConfig.model_validate(checkpoint["model_config"])
    except ValidationError as err:
        raise CheckpointError(f"{path}: model_config does not fit this version of isoclr\n{err}") from err
    encoder = build_encoder(cfg, in_channels=len(tracks.CHANNELS))
    try:
        encoder.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not match the architecture in its model_config\n{err}") from err
    return encoder.eval(), {k: v for k, v in checkpoint.items() if k != "state_dict"}


# --------------------------------------------------------------------------- the resumable training state: last.pt


def rng_state() -> dict:
    """The global torch, numpy and python RNG states (checkpointed for exact resumption)."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "key": torch.from_numpy(key.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "gauss": gauss,
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(
    path: Path, model: nn.Module, optimiser, schedule, sampler, next_step: int, cfg: Config, log: list[dict]
) -> None:
    """Everything needed to continue at ``next_step``, written atomically (a kill leaves the previous one).

    ``sampler`` is the run's :class:`~isoclr.sampling.PairSampler`; ``log`` the step-log rows so far,
    so that a resumed run's log starts with them wherever its log file is written.
    """
    state = {
        "next_step": next_step,
        "model": model.state_dict(),
        "optimiser": optimiser.state_dict(),
        "schedule": schedule.state_dict(),
        "rng": rng_state(),
        "sampler": sampler.state_dict(next_step),
        "model_config": cfg.model.model_dump(mode="json"),
        "train_config": cfg.train.model_dump(mode="json"),
        "log": [dict(row) for row in log],
    }
    write_atomic(Path(path), lambda p: torch.save(state, p))


def load_training_state(path: Path, cfg: Config) -> dict:
    """A state written by :func:`save_training_state` for this configuration.

    Raises:
        CheckpointError: the state was written for another model or training configuration.
    """
    state = _load_weights_only(path)
    if state["model_config"] != cfg.model.model_dump(mode="json"):
        raise CheckpointError(f"{path}: written for another model configuration; delete it to start afresh")
    now = cfg.train.model_dump(mode="json")
    changed = sorted(k for k in now if now[k] != state["train_config"].get(k) and k not in RESUMABLE_CHANGES)
    if changed:
        raise CheckpointError(
            f"{path}: written with other train settings ({', '.join(changed)}); delete it to start afresh"
        )
    return state
