"""Training throughput: length-bucketed batches vs padding everything to 12,288 nt, and data-loader headroom.

Arm 1 and 2 train the same model (params.yaml `model`, or --size) on the same
sequences (so the same real nucleotides): once in length-bucketed batches
padded to each batch's longest sequence, once padded to 12,288 nt (the
published setting). Lengths come from the real sample
(outputs/transcripts.parquet, written by `isoclr validate`) and from a
GENCODE-like lognormal. Sequences are random tracks of those lengths, uncropped.
Then the real PairSampler (params.yaml `train`) on the sample's train split
builds batches alone (batches/s, cold track cache included) vs the model's
optimiser steps on those batches (steps/s).

Default run: --batches 8 of --batch-size 16 per arm and distribution, a few
minutes on 2 CPU cores. Rates are per wall-clock second; each
arm runs as a whole, one after the other. Prints ratios measured side by side.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from isoclr import config, tracks
from isoclr.models import ContrastiveModel, count_parameters
from isoclr.sampling import Batch, PairSampler
from isoclr.train import batch_loss, make_loss, make_optimiser, read_training_set

# Wall time. On a shared machine other processes' load moves it (say so when reporting);
# CPU time is no better there: waiting OpenMP threads spin and count as CPU time.
CLOCK = time.perf_counter
PUBLISHED_PAD = 12_288
# GENCODE-like transcript lengths: lognormal with a ~1.5 kb median and a long tail, at most PUBLISHED_PAD.
GENCODE_MEDIAN = 1_500
GENCODE_SIGMA = 0.95
MIN_LENGTH = 60


def random_batch(lengths: np.ndarray, pad_to: int | None, rng: np.random.Generator) -> Batch:
    """One-hot random tracks of the given lengths (pairs: first half / second half), padded."""
    items = []
    for n in lengths:
        x = np.zeros((tracks.N_CHANNELS, n), dtype=np.float32)
        x[rng.integers(0, 4, n), np.arange(n)] = 1.0
        items.append(x)
    x, lens = tracks.batch(items)
    if pad_to is not None:
        x = torch.nn.functional.pad(x, (0, pad_to - x.shape[2]))
    pairs = len(lengths) // 2
    return Batch(x, lens, torch.arange(pairs), torch.ones(pairs, dtype=torch.int64))


class Stepper:
    """One model + optimiser; ``step(batch)`` returns the seconds of one optimiser step."""

    def __init__(self, model_cfg, train_cfg) -> None:
        torch.manual_seed(0)
        self.model = ContrastiveModel(model_cfg)
        self.optimiser, _ = make_optimiser(self.model, train_cfg)
        self.loss_fn = make_loss(train_cfg)

    def step(self, b: Batch) -> float:
        start = CLOCK()
        loss = batch_loss(self.model, self.loss_fn, b)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        return CLOCK() - start


def run_arms(arms: dict[str, tuple[Stepper, list[Batch]]]) -> dict[str, float]:
    """Seconds per arm, each arm run as a whole after one untimed warm-up step."""
    seconds = {}
    for name, (stepper, batches) in arms.items():
        stepper.step(batches[0])
        seconds[name] = sum(stepper.step(b) for b in batches)
    return seconds


def bucketing_vs_fixed(name: str, lengths: np.ndarray, model_cfg, train_cfg, args) -> float:
    rng = np.random.default_rng(0)
    n = args.batches * args.batch_size
    chosen = rng.choice(lengths, n, replace=len(lengths) < n).astype(int)
    order = np.argsort(chosen)  # bucketing: sort the pool by length, cut into batches
    bucketed = [random_batch(chosen[order[i : i + args.batch_size]], None, rng) for i in range(0, n, args.batch_size)]
    fixed = [random_batch(chosen[i : i + args.batch_size], PUBLISHED_PAD, rng) for i in range(0, n, args.batch_size)]
    seconds = run_arms({"bucketed": (Stepper(model_cfg, train_cfg), bucketed),
                           "pad 12,288": (Stepper(model_cfg, train_cfg), fixed)})
    rates = {arm: n / s for arm, s in seconds.items()}
    padded = sum(b.x.shape[0] * b.x.shape[2] for b in bucketed)
    ratio = rates["bucketed"] / rates["pad 12,288"]
    print(
        f"{name:>14}: {n} sequences, median {int(np.median(chosen))} nt, {int(chosen.sum()):,} real nt | "
        f"bucketed {rates['bucketed']:.1f} samples/s (padding {1 - chosen.sum() / padded:.1%}) | "
        f"pad 12,288 {rates['pad 12,288']:.1f} samples/s (padding {1 - chosen.sum() / (n * PUBLISHED_PAD):.1%}) | "
        f"ratio {ratio:.1f}x"
    )
    return ratio


def loader_headroom(cfg, args) -> float:
    table = read_training_set(Path(args.transcripts), Path(args.groups))
    sampler = PairSampler(table, cfg.train)
    start = CLOCK()
    batches = [sampler.sample(s) for s in range(args.loader_steps)]
    loader_rate = args.loader_steps / (CLOCK() - start)
    stepper = Stepper(cfg.model, cfg.train)
    stepper.step(batches[0])
    step_rate = args.model_steps / sum(stepper.step(b) for b in batches[: args.model_steps])
    print(
        f"data loader alone {loader_rate:.1f} batches/s (cold track cache, one process) vs model "
        f"{step_rate:.2f} steps/s ({cfg.train.batch_genes} genes x 2 views, max_length {cfg.train.max_length}): "
        f"headroom {loader_rate / step_rate:.1f}x"
    )
    return loader_rate / step_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--transcripts", default="outputs/transcripts.parquet")
    parser.add_argument("--groups", default="outputs/groups.parquet")
    parser.add_argument("--size", choices=["small", "medium"], help="published preset instead of params.yaml model")
    parser.add_argument("--batches", type=int, default=8, help="timed batches per arm (= one bucketing pool)")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per batch (both views)")
    parser.add_argument("--loader-steps", type=int, default=20)
    parser.add_argument("--model-steps", type=int, default=5)
    args = parser.parse_args()

    cfg = config.load(args.params)
    if args.size:
        cfg = cfg.model_copy(update={"model": config.ModelConfig(size=args.size)})
    if not Path(args.transcripts).is_file() or not Path(args.groups).is_file():
        raise SystemExit(f"{args.transcripts} / {args.groups} missing: run `dvc repro pairs` (or `make run`) first")
    real = pd.read_parquet(args.transcripts, columns=["length"])["length"].to_numpy()
    rng = np.random.default_rng(1)
    gencode = np.clip(rng.lognormal(np.log(GENCODE_MEDIAN), GENCODE_SIGMA, 50_000), MIN_LENGTH, PUBLISHED_PAD)
    print(
        f"model: {count_parameters(ContrastiveModel(cfg.model).encoder):,} encoder parameters; "
        f"torch threads {torch.get_num_threads()}; {args.batches} batches of {args.batch_size} per arm"
    )
    bucketing_vs_fixed("sample", real, cfg.model, cfg.train, args)
    bucketing_vs_fixed("GENCODE-like", gencode, cfg.model, cfg.train, args)
    loader_headroom(cfg, args)


if __name__ == "__main__":
    main()
