"""GPU training throughput in bf16 for the published sizes: samples/s, peak memory, padding and MFU.

For each of "small" and "medium" (config.MODEL_PRESETS): length-bucketed batches
of random tracks with GENCODE-like lengths (lognormal, median ~1.5 kb, at most
--max-length), bf16 autocast, AdamW steps on the DCL loss; --warmup untimed
steps, then --steps timed. MFU = model FLOPs/s over --peak-tflops (H100 SXM
dense bf16: 989), with FLOPs counted from the conv and linear shapes of the
real nucleotides (2 x MACs forward, x3 for forward + backward); the padding
share says how much of the work went to padding.

Pairs per step are per size (--batch-genes small=128 medium=32: medium's
activations are ~6x small's, and 128 pairs of up to 12,288 nt ran out of
memory on an 80 GB H100). A step that runs out of memory halves the batch and
starts that size again, and the output says so.

--compile: the encoder's masked max-pool (ceil mode) makes torch.compile
specialise on the padded length, so every distinct length is a full
recompile. Under --compile every batch is padded up to one of --shapes lengths
(chosen to minimise padding over the batches), compiled with dynamic=False
once per length during warm-up, and the same batches are timed eager and
compiled, side by side. Sizes start only while the compile time spent is under
half of --compile-budget-s (the next size compiles at least as long), so the
run stays bounded; the output says when a size is skipped.

Needs a CUDA GPU; on CPU it exits with a message and status 2.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import numpy as np
import torch

from isoclr.config import ModelConfig, TrainConfig
from isoclr.models import STEM_POOL, ContrastiveModel, count_parameters
from isoclr.sampling import Batch
from isoclr.train import batch_loss, make_loss, make_optimiser

GENCODE_MEDIAN = 1_500
GENCODE_SIGMA = 0.95
MIN_LENGTH = 60
FWD_BWD = 3  # backward costs about twice the forward
SIZES = ("small", "medium")
DEFAULT_BATCH_GENES = {"small": 128, "medium": 32}
SHAPE_MULTIPLE = 128  # compiled lengths are multiples of this (tensor-core friendly)
MIN_BATCH_GENES = 2


def flops_per_sequence(cfg: ModelConfig, length: int, in_channels: int = 6) -> float:
    """Forward FLOPs of the encoder + head for one sequence of ``length`` nt."""
    macs = in_channels * cfg.stem_filters * cfg.stem_kernel * length
    tower = length / STEM_POOL
    width = cfg.stem_filters
    for filters, blocks in zip(cfg.stage_filters, cfg.stage_blocks, strict=True):
        for _ in range(blocks):
            macs += tower * cfg.kernel_size * (width * filters + filters * filters)
            if width != filters:
                macs += tower * width * filters
            width = filters
    for dim in cfg.projection_dims:
        macs += width * dim
        width = dim
    return 2.0 * macs


def bucket_lengths(n_batches: int, seqs: int, max_length: int, rng: np.random.Generator) -> np.ndarray:
    """(n_batches, seqs) GENCODE-like lengths, sorted so each row (a batch) holds similar lengths."""
    lengths = np.clip(rng.lognormal(np.log(GENCODE_MEDIAN), GENCODE_SIGMA, n_batches * seqs), MIN_LENGTH, max_length)
    return np.sort(lengths.astype(int)).reshape(n_batches, seqs)


def padding_shapes(longest: np.ndarray, n_shapes: int, multiple: int = SHAPE_MULTIPLE) -> np.ndarray:
    """At most ``n_shapes`` padded lengths (multiples of ``multiple``) covering every batch's ``longest``
    view with the fewest padded positions: an exact split of the sorted batch maxima into runs (dynamic
    programme), each run padded to its own maximum."""
    caps = np.unique(-(-np.asarray(longest) // multiple) * multiple)
    counts = np.array([(-(-longest // multiple) * multiple == c).sum() for c in caps])
    k = min(n_shapes, len(caps))
    # cost[j][i]: fewest padded positions covering caps[:i] with j shapes, the last ending at caps[i-1]
    cost = np.full((k + 1, len(caps) + 1), np.inf)
    back = np.zeros((k + 1, len(caps) + 1), dtype=int)
    cost[0, 0] = 0.0
    for j in range(1, k + 1):
        for i in range(1, len(caps) + 1):
            for s in range(i):
                c = cost[j - 1, s] + caps[i - 1] * counts[s:i].sum()
                if c < cost[j, i]:
                    cost[j, i], back[j, i] = c, s
    j = int(np.argmin(cost[1:, len(caps)])) + 1
    shapes, i = [], len(caps)
    while i > 0:
        shapes.append(caps[i - 1])
        i, j = back[j, i], j - 1
    return np.array(sorted(shapes))


def make_batches(lengths: np.ndarray, pad_to: np.ndarray | None, device, rng: np.random.Generator) -> list[Batch]:
    """One-hot random tracks of each row's lengths (first half / second half: the two views), each batch
    padded to its longest view or, with ``pad_to``, to the smallest of those lengths that holds it;
    returned in shuffled order (a training run's steps are not sorted by length)."""
    out = []
    for row in lengths:
        chunk = torch.as_tensor(row)
        longest = int(chunk.max())
        width = longest if pad_to is None else int(pad_to[np.searchsorted(pad_to, longest)])
        bases = torch.randint(0, 4, (len(row), width))
        x = torch.zeros(len(row), 6, width).scatter_(1, bases[:, None, :], 1.0)
        x *= (torch.arange(width)[None, :] < chunk[:, None])[:, None, :]
        pairs = len(row) // 2
        out.append(
            Batch(
                x.to(device),
                chunk.to(device),
                torch.arange(pairs, device=device),
                torch.ones(pairs, dtype=torch.int64, device=device),
                torch.zeros(pairs, dtype=torch.int64, device=device),  # pair types: all "self"
            )
        )
    return [out[i] for i in rng.permutation(len(out))]


def padding_share(batches: list[Batch]) -> float:
    real = sum(int(b.lengths.sum()) for b in batches)
    return 1.0 - real / sum(b.x.shape[0] * b.x.shape[2] for b in batches)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Trainer:
    """One model + AdamW; ``step(batch)`` is one bf16 optimiser step as in ``isoclr.train``."""

    def __init__(self, cfg: ModelConfig, tc: TrainConfig, device: torch.device, compiled: bool) -> None:
        torch.manual_seed(0)
        self.model = ContrastiveModel(cfg).to(device)
        self.net = torch.compile(self.model, dynamic=False) if compiled else self.model
        self.optimiser, _ = make_optimiser(self.model, tc)
        self.loss_fn = make_loss(tc)
        self.grad_clip = tc.grad_clip
        self.device = device

    def step(self, b: Batch) -> None:
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            loss = batch_loss(self.net, self.loss_fn, b)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimiser.step()

    def timed(self, batches: list[Batch]) -> float:
        """Wall seconds of steps over ``batches``, the GPU drained before and after."""
        _sync(self.device)
        start = time.perf_counter()
        for b in batches:
            self.step(b)
        _sync(self.device)
        return time.perf_counter() - start


def report(label: str, cfg: ModelConfig, batches: list[Batch], seconds: float, peak_tflops: float) -> str:
    samples = sum(len(b.x) for b in batches)
    flops = FWD_BWD * sum(flops_per_sequence(cfg, int(n)) for b in batches for n in b.lengths.tolist())
    return (
        f"{label}: {samples / seconds:,.0f} samples/s, {len(batches) / seconds:.2f} steps/s, "
        f"padding {padding_share(batches):.0%}, MFU {flops / seconds / (peak_tflops * 1e12):.1%} (real nt only)"
    )


def run(size: str, batch_genes: int, args, device: torch.device) -> float:
    """Time one size; returns the seconds spent compiling (0 without --compile).

    Raises:
        torch.cuda.OutOfMemoryError: the batch does not fit (the caller halves it).
    """
    cfg = ModelConfig(size=size)
    # Trainer compiles by itself (once per padded shape); train.compile's own length check does not apply here.
    tc = TrainConfig(batch_genes=batch_genes, precision="bf16")
    rng = np.random.default_rng(0)
    lengths = bucket_lengths(args.warmup + args.steps, 2 * batch_genes, args.max_length, rng)
    shapes = padding_shapes(lengths.max(axis=1), args.shapes) if args.compile else None
    batches = make_batches(lengths, shapes, device, rng)
    warmup, timed = batches[: args.warmup], batches[args.warmup :]
    eager = Trainer(cfg, tc, device, compiled=False)
    eager.timed(warmup)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = eager.timed(timed)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    head = (
        f"{size:>6}: {count_parameters(eager.model.encoder):,} params, {eager.model.encoder.out_dim}-d, "
        f"{batch_genes} pairs/step | peak memory {peak:.2f} GiB (eager)"
    )
    print(f"{head}\n        {report('eager   ', cfg, timed, seconds, args.peak_tflops)}", flush=True)
    if not args.compile:
        return 0.0
    del eager
    compiled = Trainer(cfg, tc, device, compiled=True)
    first = {int(s): next(b for b in batches if b.x.shape[2] == s) for s in shapes}  # one batch per shape
    start = time.perf_counter()
    compiled.timed(list(first.values()))
    compile_seconds = time.perf_counter() - start
    compiled_seconds = compiled.timed(timed)
    print(
        f"        {report('compiled', cfg, timed, compiled_seconds, args.peak_tflops)} | "
        f"{len(shapes)} shapes {shapes.tolist()} compiled in {compile_seconds:.0f} s | "
        f"compiled / eager {seconds / compiled_seconds:.2f}x",
        flush=True,
    )
    return compile_seconds


def parse_batch_genes(values: list[str]) -> dict[str, int]:
    """``["64"]`` (every size) or ``["small=128", "medium=32"]`` -> pairs per step of each size."""
    out = dict(DEFAULT_BATCH_GENES)
    for value in values:
        if "=" in value:
            size, n = value.split("=", 1)
            if size not in SIZES:
                raise argparse.ArgumentTypeError(f"--batch-genes: unknown size {size!r}")
            out[size] = int(n)
        else:
            out = dict.fromkeys(SIZES, int(value))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=SIZES)
    parser.add_argument(
        "--batch-genes",
        nargs="+",
        default=[],
        metavar="[SIZE=]N",
        help="pairs per step (two views each), for every size or per size "
        f"(default {' '.join(f'{k}={v}' for k, v in DEFAULT_BATCH_GENES.items())})",
    )
    parser.add_argument("--max-length", type=int, default=12_288)
    parser.add_argument("--warmup", type=int, default=3, help="untimed eager steps (compiling warms up on its own)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--shapes", type=int, default=3, help="padded lengths compiled under --compile")
    parser.add_argument("--compile-budget-s", type=float, default=150.0)
    args = parser.parse_args()
    batch_genes = parse_batch_genes(args.batch_genes)
    if not torch.cuda.is_available():
        print(
            "gpu_train.py needs a CUDA GPU (none visible here); run it on a GPU machine. "
            "For CPU throughput see benchmarks/train_throughput.py.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if args.compile:
        # one compiled graph per padded length (and spares), not torch's default of 8
        dynamo = torch._dynamo.config
        limit = "recompile_limit" if hasattr(dynamo, "recompile_limit") else "cache_size_limit"
        setattr(dynamo, limit, max(getattr(dynamo, limit), 2 * args.shapes))
    device = torch.device("cuda")
    print(
        f"{torch.cuda.get_device_name()} | torch {torch.__version__} | bf16 autocast | "
        f"GENCODE-like lengths <= {args.max_length}, length-bucketed | {args.steps} timed steps"
        + (f" | compile: {args.shapes} padded lengths, dynamic=False" if args.compile else ""),
        flush=True,
    )
    compile_spent = 0.0
    for size in args.sizes:
        if args.compile and compile_spent > args.compile_budget_s / 2:
            print(
                f"{size:>6}: skipped, {compile_spent:.0f} s of compiling spent "
                f"(--compile-budget-s {args.compile_budget_s:.0f})"
            )
            continue
        n = batch_genes[size]
        while n:
            try:
                compile_spent += run(size, n, args, device)
                break
            except torch.cuda.OutOfMemoryError:
                pass
            # outside the except block, so the failed run's frames (and its tensors) are gone
            torch._dynamo.reset()
            gc.collect()
            torch.cuda.empty_cache()
            print(
                f"{size:>6}: out of memory at {n} pairs/step"
                + (f"; halving to {n // 2}" if n // 2 >= MIN_BATCH_GENES else "; skipped"),
                flush=True,
            )
            n = n // 2 if n // 2 >= MIN_BATCH_GENES else 0


if __name__ == "__main__":
    main()
