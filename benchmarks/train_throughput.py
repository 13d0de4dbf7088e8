"""Training throughput: length-bucketed batches vs padding everything to 12,288 nt, and data-loader headroom.

Arm 1 and 2 train the same model (params.yaml `model`, or --size) on the same
length distribution: once in length-bucketed batches padded to each batch's
longest sequence, once padded to 12,288 nt (the published setting). Lengths
come from the real sample (outputs/transcripts.parquet, written by `isoclr
validate`) and from a GENCODE-like lognormal. Sequences are random tracks of
those lengths, uncropped.

Bucketing is the sampler's own (`isoclr.sampling.length_buckets`: sort a pool
of --pool-batches batches, cut it, shuffle the batches), i.e. training with
`train.bucket_batches` = --pool-batches. The bucketed arm trains on every batch
of the pool (the whole length distribution, tail included). The padded arm
trains on the first --batches of those batches, the same sequences, padded to
12,288: each of its steps is the same 16 x 12,288 shape whatever the
sequences, so a few steps give its rate. The ratio is also printed over just
those shared batches (from the same per-step times).

Then the real PairSampler (params.yaml `train`, bucket_batches = --pool-batches)
on the sample's train split builds batches alone (batches/s, cold track cache
included) vs the model's optimiser steps on those batches (steps/s): the
headroom (target >= 5x).

Default run: a few minutes on 2 CPU cores. Rates are per wall-clock second of
the steps; the two arms' steps are interleaved (each arm after one untimed
step), so a shared machine's load changes fall on both arms alike.
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
from isoclr.sampling import Batch, PairSampler, length_buckets
from isoclr.train import batch_loss, make_loss, make_optimiser, read_training_set

# Wall time. On a shared machine other processes' load moves it (say so when reporting);
# CPU time is no better there: waiting OpenMP threads spin and count as CPU time.
CLOCK = time.perf_counter
PUBLISHED_PAD = 12_288
# GENCODE-like transcript lengths: lognormal with a ~1.5 kb median and a long tail, at most PUBLISHED_PAD.
GENCODE_MEDIAN = 1_500
GENCODE_SIGMA = 0.95
MIN_LENGTH = 60
HEADROOM_TARGET = 5.0


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
    return Batch(
        x, lens, torch.arange(pairs), torch.ones(pairs, dtype=torch.int64), torch.zeros(pairs, dtype=torch.int64)
    )


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


def run_arms(arms: dict[str, tuple[Stepper, list[Batch]]]) -> dict[str, list[float]]:
    """Seconds of every step per arm, after one untimed warm-up step each.

    The arms' steps are interleaved in proportion (arm k's i-th step runs at progress
    (i + 1) / n_k), so load from other processes on a shared machine falls on both alike.
    """
    for stepper, batches in arms.values():
        stepper.step(batches[0])
    schedule = sorted((i / len(batches), name, i) for name, (_, batches) in arms.items() for i in range(len(batches)))
    seconds: dict[str, list[float]] = {name: [0.0] * len(batches) for name, (_, batches) in arms.items()}
    for _, name, i in schedule:
        stepper, batches = arms[name]
        seconds[name][i] = stepper.step(batches[i])
    return seconds


def bucketing_vs_fixed(name: str, lengths: np.ndarray, model_cfg, train_cfg, args) -> float:
    rng = np.random.default_rng(0)
    n = args.pool_batches * args.batch_size
    chosen = rng.choice(lengths, n, replace=len(lengths) < n).astype(int)
    pool = length_buckets(chosen, args.batch_size, rng)  # shuffled batches of similar lengths
    bucketed = [random_batch(chosen[c], None, rng) for c in pool]
    shared = np.concatenate(pool[: args.batches])  # the padded arm's sequences: the first batches of the pool
    fixed = [
        random_batch(chosen[shared[i : i + args.batch_size]], PUBLISHED_PAD, rng)
        for i in range(0, len(shared), args.batch_size)
    ]
    seconds = run_arms(
        {"bucketed": (Stepper(model_cfg, train_cfg), bucketed), "pad 12,288": (Stepper(model_cfg, train_cfg), fixed)}
    )
    bucketed_rate = n / sum(seconds["bucketed"])
    fixed_rate = len(shared) / sum(seconds["pad 12,288"])
    shared_rate = len(shared) / sum(seconds["bucketed"][: args.batches])
    padded = sum(b.x.shape[0] * b.x.shape[2] for b in bucketed)
    ratio = bucketed_rate / fixed_rate
    print(
        f"{name:>14}: {n} sequences, median {int(np.median(chosen))} nt, {int(chosen.sum()):,} real nt | "
        f"bucketed ({args.pool_batches} batches) {bucketed_rate:.1f} samples/s "
        f"(padding {1 - chosen.sum() / padded:.1%}) | "
        f"pad 12,288 ({args.batches} batches) {fixed_rate:.1f} samples/s "
        f"(padding {1 - chosen[shared].sum() / (len(shared) * PUBLISHED_PAD):.1%}) | "
        f"ratio {ratio:.1f}x (on the {args.batches} shared batches alone: {shared_rate / fixed_rate:.1f}x)",
        flush=True,
    )
    return ratio


def loader_headroom(cfg, args) -> float:
    table = read_training_set(Path(args.transcripts), Path(args.groups))
    train_cfg = cfg.train.model_copy(update={"bucket_batches": args.pool_batches})
    sampler = PairSampler(table, train_cfg)
    start = CLOCK()
    batches = [sampler.sample(s) for s in range(args.loader_steps)]
    loader_rate = args.loader_steps / (CLOCK() - start)
    stepper = Stepper(cfg.model, train_cfg)
    stepper.step(batches[0])
    step_rate = args.model_steps / sum(stepper.step(b) for b in batches[: args.model_steps])
    headroom = loader_rate / step_rate
    print(
        f"data loader alone {loader_rate:.1f} batches/s (cold track cache, one process, bucket_batches "
        f"{args.pool_batches}) vs model {step_rate:.2f} steps/s ({train_cfg.batch_genes} genes x 2 views, "
        f"max_length {train_cfg.max_length}): headroom {headroom:.1f}x "
        f"({'meets' if headroom >= HEADROOM_TARGET else 'below'} the {HEADROOM_TARGET:.0f}x target)",
        flush=True,
    )
    return headroom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--transcripts", default="outputs/transcripts.parquet")
    parser.add_argument("--groups", default="outputs/groups.parquet")
    parser.add_argument("--size", choices=["small", "medium"], help="published preset instead of params.yaml model")
    parser.add_argument(
        "--pool-batches",
        type=int,
        default=64,
        help="batches a bucketing pool (train.bucket_batches), all timed in the bucketed arm",
    )
    parser.add_argument("--batches", type=int, default=8, help="batches of the pool timed padded to 12,288")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per batch (both views)")
    parser.add_argument("--loader-steps", type=int, default=20)
    parser.add_argument("--model-steps", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads (default torch's); 1 avoids OpenMP waits when other processes load the cores",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

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
        f"torch threads {torch.get_num_threads()}; batches of {args.batch_size} sequences, "
        f"bucketing pools of {args.pool_batches} batches"
    )
    ratios = {
        name: bucketing_vs_fixed(name, lengths, cfg.model, cfg.train, args)
        for name, lengths in (("sample", real), ("GENCODE-like", gencode))
    }
    headroom = loader_headroom(cfg, args)
    print(
        "summary: bucketed / pad 12,288 "
        + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items())
        + f"; data loader / model step headroom {headroom:.1f}x"
    )


if __name__ == "__main__":
    main()
