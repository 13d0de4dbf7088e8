"""The fine-tuning loop: it learns a planted signal, stops early on the best val epoch, and repeats exactly."""

from __future__ import annotations

import numpy as np
import pytest

from isoclr import tracks
from isoclr.config import FinetuneConfig
from isoclr.embed import random_encoder
from isoclr.finetuning import Rows, build_head, fine_tune
from isoclr.statistics import correlations
from tests.helpers import tiny_config

BASES = np.array(list("ACGT"))
MOTIF = "GATA"
LENGTH = 80
N_ROWS = 360
# Planted signal: the target is the number of motif copies, 0 to MAX_COPIES, planted into random background.
MAX_COPIES = 4
# What "learned" means: Pearson r on held-out rows (0.93 measured), far above the ~0 of an untrained model.
MIN_R = 0.6
MAX_SHUFFLED_R = 0.3  # ... and far below it when the train targets are shuffled (r ~0.07 measured)


def planted_world(seed: int = 0) -> tuple[Rows, np.ndarray]:
    """``N_ROWS`` random sequences with 0..MAX_COPIES copies of MOTIF each; target = the copy count + noise."""
    rng = np.random.default_rng(seed)
    packed, y = [], []
    for _ in range(N_ROWS):
        seq = list(rng.choice(BASES, LENGTH))
        copies = int(rng.integers(0, MAX_COPIES + 1))
        slots = rng.choice(LENGTH // len(MOTIF), size=copies, replace=False)
        for slot in slots:
            seq[slot * len(MOTIF) : (slot + 1) * len(MOTIF)] = MOTIF
        text = "".join(seq)
        packed.append(tracks.pack(text, None, None, None))
        y.append(text.count(MOTIF) + 0.1 * rng.normal())
    return Rows(packed), np.array(y)


def thirds() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = np.arange(N_ROWS)
    return index[: N_ROWS * 2 // 3], index[N_ROWS * 2 // 3 : N_ROWS * 5 // 6], index[N_ROWS * 5 // 6 :]


def fit_once(cfg: FinetuneConfig, rows: Rows, y: np.ndarray, fit, val, test, seed: int = 0):
    model_cfg = tiny_config().model
    encoder = random_encoder(model_cfg, seed=seed)
    head = build_head(encoder.out_dim, cfg.head_hidden, seed=seed)
    return fine_tune(encoder, head, rows, y, fit, val, test, cfg, seed=seed)


@pytest.mark.slow
def test_fine_tuning_learns_a_planted_motif_count(one_thread):
    rows, y = planted_world()
    fit, val, test = thirds()
    cfg = FinetuneConfig(max_epochs=12, patience=4, encoder_learning_rate=3e-3, head_learning_rate=3e-3)
    done = fit_once(cfg, rows, y, fit, val, test)
    r, _ = correlations(y[test], done.predictions)
    assert r > MIN_R, f"r {r:.3f} after {done.epochs} epochs (val losses {done.val_losses})"
    assert done.best_val_loss < done.val_losses[0] or done.best_epoch == 1
    # predictions come back in the target's units (the loop fits a standardised target)
    assert abs(done.predictions.mean() - y[test].mean()) < y.std()
    # control: the same fit on shuffled train targets learns nothing that carries to the test rows
    shuffled = y.copy()
    shuffled[fit] = np.random.default_rng(1).permutation(shuffled[fit])
    r_shuffled, _ = correlations(y[test], fit_once(cfg, rows, shuffled, fit, val, test).predictions)
    assert r_shuffled < MAX_SHUFFLED_R < MIN_R


def test_early_stopping_restores_the_best_val_epoch(one_thread):
    rows, y = planted_world()
    fit, val, test = thirds()
    y = y.copy()
    y[val] = -y[val]  # the val rows reward the opposite of what training learns: val loss rises after epoch 1
    cfg = FinetuneConfig(max_epochs=6, patience=2, batch_size=64, encoder_learning_rate=3e-3, head_learning_rate=3e-3)
    done = fit_once(cfg, rows, y, fit, val, test)
    assert done.best_epoch == int(np.argmin(done.val_losses)) + 1
    assert done.epochs == min(cfg.max_epochs, done.best_epoch + cfg.patience)
    assert done.epochs > done.best_epoch  # it did stop early, after training past the best epoch
    # a run that ends at the best epoch predicts exactly what the restored weights predict
    at_best = fit_once(cfg.model_copy(update={"max_epochs": done.best_epoch}), rows, y, fit, val, test)
    np.testing.assert_array_equal(done.predictions, at_best.predictions)
    # the last epoch's weights were others (another val loss): without the restore, predictions would differ
    assert done.val_losses[-1] > done.best_val_loss


def test_a_fit_repeats_bit_for_bit_and_the_step_budget_holds(one_thread):
    rows, y = planted_world()
    fit, val, test = thirds()
    cfg = FinetuneConfig(max_epochs=3, max_steps=5, batch_size=32)
    first, second = (fit_once(cfg, rows, y, fit, val, test, seed=3) for _ in range(2))
    np.testing.assert_array_equal(first.predictions, second.predictions)
    assert first.val_losses == second.val_losses
    assert first.steps == 5 and first.epochs == 1  # 240 rows / 32 = 8 batches: the budget ends epoch 1
    other = fit_once(cfg, rows, y, fit, val, test, seed=4)
    assert not np.array_equal(first.predictions, other.predictions)


def test_fine_tune_refuses_an_empty_split():
    rows, y = planted_world()
    fit, val, test = thirds()
    with pytest.raises(ValueError, match="val"):
        fit_once(FinetuneConfig(), rows, y, fit, val[:0], test)
