"""Fine-tuning one encoder: a small regression head on its pooled representation, trained end to end.

:func:`fine_tune` is the loop the fine-tune stage (:mod:`isoclr.finetune`) runs once per arm, seed and
train fraction: AdamW with one learning rate for the encoder and one for the head, shuffled mini-batches
padded to their own longest sequence, and early stopping on the val split (the weights of the best val
epoch are restored before the test rows are predicted). Targets are standardised with the statistics of
the rows fitted, so one learning rate suits every task; predictions are returned in the target's units.
The data order is a pure function of the seed and nothing else draws random numbers, so a fit repeats
bit for bit on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from isoclr import tracks
from isoclr.config import FinetuneConfig
from isoclr.embed import length_batches

# The head's output: one number per sequence.
OUTPUT_DIM = 1
# A target whose fitted rows do not vary is scaled by 1 (its standardised values are all 0).
_UNIT_SCALE = 1.0
# Data-order stream of the fits, keyed by seed and epoch (kept apart from every other stream).
_ORDER_STREAM = 104729


class Regressor(nn.Module):
    """Encoder + head: ``(batch, 6, length)`` tracks and ``(batch,)`` lengths -> ``(batch,)`` predictions."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.head(self.encoder(x, lengths)).squeeze(-1)


def build_head(in_dim: int, hidden: int, seed: int) -> nn.Module:
    """Linear(in_dim, hidden), GELU, Linear(hidden, 1), initialised from ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, OUTPUT_DIM))


class Rows:
    """The sequences of a task as packed bytes (:func:`isoclr.tracks.pack`), batched on demand.

    ``packed[i]`` is (length_i,) uint8, already cropped; :meth:`batch` unpacks and pads a few of them.
    """

    def __init__(self, packed: Sequence[np.ndarray]) -> None:
        self.packed = list(packed)
        self.lengths = np.array([len(p) for p in self.packed], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.packed)

    def batch(self, index: np.ndarray, device: torch.device) -> tuple[Tensor, Tensor]:
        """x (batch, 6, longest), lengths (batch,) of the rows ``index``, on ``device``."""
        x, lengths = tracks.batch([tracks.unpack(self.packed[i]) for i in index])
        return x.to(device), lengths.to(device)


@dataclass(frozen=True)
class Fit:
    """What one fine-tuning run did.

    ``predictions``: (n_test,) in the target's units, from the weights of the best val epoch;
    ``val_losses``: the val MSE (standardised target) after each epoch run; ``best_epoch`` is 1-based.
    """

    predictions: np.ndarray
    val_losses: list[float]
    best_epoch: int
    steps: int

    @property
    def epochs(self) -> int:
        return len(self.val_losses)

    @property
    def best_val_loss(self) -> float:
        return self.val_losses[self.best_epoch - 1]


def predict(model: nn.Module, rows: Rows, index: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Predictions (len(index),) for the rows ``index``, in batches of similar length, in ``index`` order."""
    out = np.empty(len(index), dtype=np.float64)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for part in length_batches(rows.lengths[index], batch_size, batch_size * int(rows.lengths.max())):
                x, lengths = rows.batch(index[part], device)
                out[part] = model(x, lengths).double().cpu().numpy()
    finally:
        model.train(was_training)
    return out


def _optimiser(model: Regressor, cfg: FinetuneConfig) -> torch.optim.Optimizer:
    groups = [
        {"params": list(model.encoder.parameters()), "lr": cfg.encoder_learning_rate},
        {"params": list(model.head.parameters()), "lr": cfg.head_learning_rate},
    ]
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def fine_tune(
    encoder: nn.Module,
    head: nn.Module,
    rows: Rows,
    y: np.ndarray,
    fit: np.ndarray,
    val: np.ndarray,
    test: np.ndarray,
    cfg: FinetuneConfig,
    seed: int,
    device: torch.device | None = None,
) -> Fit:
    """Train ``encoder`` + ``head`` on the rows ``fit``, stop early on ``val``, predict ``test``.

    Args:
        encoder: maps (batch, 6, length) and (batch,) lengths to (batch, encoder.out_dim); trained in place.
        head: maps (batch, encoder.out_dim) to (batch, 1); trained in place.
        rows: every row of the task; ``fit``, ``val`` and ``test`` index into it (and into ``y`` (n,)).
        seed: the data order (batches of every epoch).
    Stops after ``cfg.max_epochs`` epochs, ``cfg.max_steps`` optimiser steps, or ``cfg.patience``
    epochs without a lower val loss; the weights of the best val epoch are then restored.
    """
    if len(fit) == 0 or len(val) == 0 or len(test) == 0:
        raise ValueError(f"fine_tune needs fit, val and test rows, got {len(fit)}, {len(val)} and {len(test)}")
    device = device or torch.device("cpu")
    model = Regressor(encoder, head).to(device)
    centre = float(y[fit].mean())
    scale = float(y[fit].std()) or _UNIT_SCALE
    target = torch.as_tensor((y - centre) / scale, dtype=torch.float32)
    optimiser = _optimiser(model, cfg)
    val_target = target[val].numpy().astype(np.float64)
    val_losses: list[float] = []
    best_state, best_epoch, steps = None, 0, 0
    model.train()
    for epoch in range(cfg.max_epochs):
        order = np.random.default_rng([_ORDER_STREAM, seed, epoch]).permutation(fit)
        for start in range(0, len(order), cfg.batch_size):
            index = order[start : start + cfg.batch_size]
            x, lengths = rows.batch(index, device)
            loss = nn.functional.mse_loss(model(x, lengths), target[index].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimiser.step()
            steps += 1
            if steps >= cfg.max_steps:
                break
        val_pred = predict(model, rows, val, cfg.batch_size, device)
        val_loss = float(np.mean((val_pred - val_target) ** 2))
        val_losses.append(val_loss if math.isfinite(val_loss) else math.inf)
        if best_state is None or val_losses[-1] < val_losses[best_epoch - 1]:
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best_epoch = epoch + 1
        if epoch + 1 - best_epoch >= cfg.patience or steps >= cfg.max_steps:
            break
    model.load_state_dict(best_state)
    predictions = predict(model, rows, test, cfg.batch_size, device) * scale + centre
    return Fit(predictions=predictions, val_losses=val_losses, best_epoch=best_epoch, steps=steps)
