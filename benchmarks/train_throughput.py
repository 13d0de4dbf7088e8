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

--arch cnn mamba_tiny mamba_small: instead, the encoders side by side (no
bucketing or loader arms). Each arm trains the model of params.yaml (`cnn`, or
--size) or, with the same projection head, the Mamba preset of that name
(config.MAMBA_PRESETS) for --arch-steps timed optimiser steps after one untimed
step, on the same length-bucketed batches: --batch-size sequences of the
sample's real lengths, each cropped to --max-length (train.max_length by
default; smaller keeps a CPU run short). Each arm runs in its own child process
(--device cpu or cuda), --rounds times, interleaved; the fastest round counts.
Per arm: samples/s, peak memory (CPU: the child's peak RSS, and what the steps
added to the RSS the model and batches already held; GPU, in train.precision:
torch.cuda.max_memory_allocated over the steps) and both as ratios to the first
arm (memory on CPU: of what the steps added, as the process alone holds ~0.4 GiB).

Default run: a few minutes on 2 CPU cores. Rates are per wall-clock second of
the steps; the two arms' steps are interleaved (each arm after one untimed
step), so a shared machine's load changes fall on both arms alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from isoclr import config, tracks
from isoclr.config import MAMBA_PRESETS, ModelConfig
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
ARCH_ARMS = ("cnn", *MAMBA_PRESETS)
MIB = 2**20
KIB_PER_MIB = 1024  # ru_maxrss is in KiB on Linux


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
    """One model + optimiser; ``step(batch)`` returns the seconds of one optimiser step.

    On CUDA the batch is moved first (untimed) and the step runs under bf16 autocast when
    ``train_cfg.precision`` says so, as the train stage does; CPU trains in fp32.
    """

    def __init__(self, model_cfg, train_cfg, device: str = "cpu") -> None:
        torch.manual_seed(0)
        self.device = torch.device(device)
        self.model = ContrastiveModel(model_cfg).to(self.device)
        self.optimiser, _ = make_optimiser(self.model, train_cfg)
        self.loss_fn = make_loss(train_cfg)
        self.bf16 = self.device.type == "cuda" and train_cfg.precision == "bf16"

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def step(self, b: Batch) -> float:
        b = Batch(*(t.to(self.device) if t is not None else None for t in b))
        self._sync()
        start = CLOCK()
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with autocast:
            loss = batch_loss(self.model, self.loss_fn, b)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        self._sync()
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


def arm_config(arm: str, model_cfg: ModelConfig) -> ModelConfig:
    """``cnn``: the given model; a Mamba preset name: that Mamba encoder behind the same projection head."""
    if arm == "cnn":
        return model_cfg
    data = model_cfg.model_dump(mode="json", exclude_none=True)
    return ModelConfig.model_validate({**data, "arch": "mamba", "mamba": {"size": arm}})


def rss_mib() -> float:
    """This process's resident memory now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / MIB


def arch_batches(lengths: np.ndarray, args) -> list[Batch]:
    """1 + --arch-steps length-bucketed batches of the real lengths cropped to --max-length (seeded: every
    arm gets the same ones)."""
    rng = np.random.default_rng(0)
    n = (1 + args.arch_steps) * args.batch_size
    chosen = np.minimum(rng.choice(lengths, n, replace=len(lengths) < n), args.max_length).astype(int)
    return [random_batch(chosen[c], None, rng) for c in length_buckets(chosen, args.batch_size, rng)]


def arch_child(cfg, lengths: np.ndarray, args) -> None:
    """One arm in this process: one JSON line (samples/s, peak memory, parameters)."""
    model_cfg = arm_config(args.arch_child, cfg.model)
    batches = arch_batches(lengths, args)
    stepper = Stepper(model_cfg, cfg.train, args.device)
    cuda = stepper.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(stepper.device)
    base = rss_mib()  # model and batches exist: what the steps add (activations, gradients, AdamW state) is above
    stepper.step(batches[0])
    seconds = sum(stepper.step(b) for b in batches[1:])
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB
    print(
        json.dumps(
            {
                "samples_s": sum(b.x.shape[0] for b in batches[1:]) / seconds,
                "peak_mib": torch.cuda.max_memory_allocated(stepper.device) / MIB if cuda else peak_rss,
                "step_mib": None if cuda else peak_rss - base,
                "parameters": count_parameters(stepper.model.encoder),
                "median_nt": float(np.median(np.concatenate([b.lengths.numpy() for b in batches[1:]]))),
            }
        )
    )


def run_arch_arm(arm: str, args) -> dict | None:
    """The arm in a fresh child process; None (and the reason on stderr) if it failed, e.g. out of memory."""
    command = [sys.executable, __file__, "--arch-child", arm]
    for key in ("params", "transcripts", "batch_size", "max_length", "arch_steps", "device", "threads", "size"):
        if getattr(args, key) is not None:
            command += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{arm} failed, exit {done.returncode}: {done.stderr[-500:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_archs(args) -> None:
    """--arch arms side by side, ratios to the first."""
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: no CUDA device here")
    results: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        for arm in args.arch:
            result = run_arch_arm(arm, args)
            if result is not None:
                results.setdefault(arm, []).append(result)
    memory = "peak GPU MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    print(
        f"{args.device}; {args.batch_size} sequences a batch, cropped to {args.max_length} nt; "
        f"{args.arch_steps} timed steps per arm, fastest of {args.rounds} round(s); "
        f"threads {args.threads or 'torch default'}"
    )
    print(
        f"{'arm':12} {'parameters':>10} {'median nt':>9} {'samples/s':>9} {memory:>12} {'step MiB':>8} "
        f"{'speed vs ' + args.arch[0]:>16} {'memory vs ' + args.arch[0]:>17}"
    )
    reference = results.get(args.arch[0])
    for arm in args.arch:
        if arm not in results:
            print(f"{arm:12} failed")
            continue
        rate = max(r["samples_s"] for r in results[arm])
        peak = min(r["peak_mib"] for r in results[arm])
        step = min(r["step_mib"] for r in results[arm]) if results[arm][0]["step_mib"] is not None else float("nan")
        ratios = ""
        if reference:  # memory: what the steps add on CPU (the process's own ~0.4 GiB would hide it); GPU: the peak
            ref_rate = max(r["samples_s"] for r in reference)
            ref_peak = min(r["peak_mib"] for r in reference)
            ref_step = min(r["step_mib"] for r in reference) if reference[0]["step_mib"] is not None else float("nan")
            mem_ratio = peak / ref_peak if args.device.startswith("cuda") else step / ref_step
            ratios = f"{rate / ref_rate:>15.3f}x {mem_ratio:>16.2f}x"
        first = results[arm][0]
        print(
            f"{arm:12} {first['parameters']:>10,} {first['median_nt']:>9.0f} {rate:>9.2f} {peak:>12.0f} "
            f"{step:>8.0f} {ratios}",
            flush=True,
        )


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
    parser.add_argument(
        "--arch",
        nargs="+",
        choices=ARCH_ARMS,
        help="compare these encoders instead (cnn: params.yaml model or --size); ratios to the first",
    )
    parser.add_argument("--arch-steps", type=int, default=4, help="timed optimiser steps per --arch arm")
    parser.add_argument("--max-length", type=int, help="--arch: crop sequences to this (default train.max_length)")
    parser.add_argument("--rounds", type=int, default=2, help="--arch: child processes per arm, interleaved")
    parser.add_argument("--device", default="cpu", help="--arch: cpu or cuda")
    parser.add_argument("--arch-child", choices=ARCH_ARMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = config.load(args.params)
    if args.size:
        cfg = cfg.model_copy(update={"model": config.ModelConfig(size=args.size)})
    args.max_length = args.max_length or cfg.train.max_length
    if not Path(args.transcripts).is_file():
        raise SystemExit(f"{args.transcripts} missing: run `dvc repro validate` (or `make run`) first")
    real = pd.read_parquet(args.transcripts, columns=["length"])["length"].to_numpy()
    if args.arch_child:
        arch_child(cfg, real, args)
        return
    if args.arch:
        compare_archs(args)
        return
    if not Path(args.groups).is_file():
        raise SystemExit(f"{args.groups} missing: run `dvc repro pairs` (or `make run`) first")
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
