"""Frozen encoders -> embeddings: load a trained encoder, build the random-init baseline, embed a table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import ValidationError
from torch import nn
from tqdm import tqdm

from isoclr import tracks
from isoclr.config import ModelConfig
from isoclr.models import DilatedResNet

CHECKPOINT = "encoder.pt"


def load_encoder(model_dir: Path) -> DilatedResNet:
    """The encoder saved by :func:`isoclr.train.train`, on CPU, in eval mode.

    Raises:
        FileNotFoundError: no ``encoder.pt`` in ``model_dir``.
        ValueError: the checkpoint's config, channels or weights do not fit this code.
    """
    path = Path(model_dir) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no encoder checkpoint (run the train stage first)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    missing = {"state_dict", "model_config", "channels"} - set(checkpoint)
    if missing:
        raise ValueError(f"{path}: not an isoclr encoder checkpoint (missing {sorted(missing)})")
    if list(checkpoint["channels"]) != list(tracks.CHANNELS):
        raise ValueError(
            f"{path}: trained on input channels {checkpoint['channels']}, this code encodes {list(tracks.CHANNELS)}"
        )
    try:
        cfg = ModelConfig.model_validate(checkpoint["model_config"])
    except ValidationError as err:
        raise ValueError(f"{path}: model_config does not fit this version of isoclr\n{err}") from err
    encoder = DilatedResNet(cfg, in_channels=len(tracks.CHANNELS))
    try:
        encoder.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not match the architecture in its model_config\n{err}") from err
    return encoder.eval()


def random_encoder(model_cfg: ModelConfig, seed: int) -> DilatedResNet:
    """The random-init baseline: the same architecture, untrained, seeded (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = DilatedResNet(model_cfg, in_channels=len(tracks.CHANNELS))
    return encoder.eval()


def embed_table(encoder: nn.Module, table: pd.DataFrame, batch_size: int, progress: bool = False) -> np.ndarray:
    """Embeddings of every row of ``table``, in the table's order.

    ``table`` needs a ``seq`` column; ``cds_start``, ``cds_end`` and ``exon_ends``
    are optional (absent means unknown: empty tracks). Rows are embedded in
    batches of similar length (sorted, so little padding) and put back in order.

    Returns:
        (n, out_dim) float32.
    """
    if "seq" not in table.columns:
        raise ValueError(f"embed_table needs a 'seq' column, got {list(table.columns)}")
    if table.columns.duplicated().any():
        raise ValueError(f"embed_table: duplicate column names {list(table.columns[table.columns.duplicated()])}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    rows = table.reset_index(drop=True)
    order = np.argsort(rows["seq"].str.len().to_numpy(), kind="stable")
    out = np.empty((len(rows), encoder.out_dim), dtype=np.float32)
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            starts = range(0, len(rows), batch_size)
            for start in tqdm(starts, desc="embed", disable=not progress, unit="batch"):
                index = order[start : start + batch_size]
                x, lengths = tracks.batch([tracks.encode_row(rows.iloc[i]) for i in index])
                out[index] = encoder(x, lengths).numpy()
    finally:
        encoder.train(was_training)
    return out
