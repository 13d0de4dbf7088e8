"""CPU embedding throughput and peak memory of the small and medium presets on the sample's real lengths.

Transcripts are drawn (seeded, uniformly) from the validated sample table
(outputs/transcripts.parquet, or the validate stage run on data/ into a
temporary folder when it is absent), so the length distribution is the real
one. Each configuration runs in its own process (``--threads`` torch threads),
so its peak RSS is its own: :meth:`isoclr.Encoder.embed` on a random-init
encoder of the preset (weights do not change the cost), after a short warm-up,
timed ``--repeat`` times; the fastest run counts.

Printed side by side in one run, for fp32 and bf16 (``Encoder(precision=...)``):
transcripts/s, peak RSS, achieved GFLOP/s (conv FLOPs from the shapes), the
GFLOP/s that the 200 transcripts/s target would need, and how far the bf16
embeddings are from the fp32 ones (smallest cosine similarity, largest absolute
difference over the largest absolute value). For small also the reference
layout (plain ``conv1d``, whose contiguous output every channel norm had to copy
to channels-last and back), to show what ``models.Conv1d`` buys.

    python benchmarks/embed.py                       # small + medium, 2 threads
    python benchmarks/embed.py --sizes small --batch-sizes 8 32 64
    python benchmarks/embed.py --device cuda         # GPU: transcripts/s, peak GPU memory, agreement with CPU
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "outputs" / "transcripts.parquet"
TARGET_TX_S = 200
SAMPLE_SEED = 0
WARMUP = 8
KIB = 1024


def sample_table(n: int) -> pd.DataFrame:
    """``n`` validated sample transcripts (real lengths); runs the validate logic when no table exists."""
    if TABLE.exists():
        table = pd.read_parquet(TABLE)
    else:
        from isoclr.config import load
        from isoclr.ingest import validate

        cfg = load(ROOT / "params.yaml")
        with tempfile.TemporaryDirectory() as tmp:
            validate(cfg, ROOT / cfg.data.dir, Path(tmp) / "t.parquet", Path(tmp) / "q.tsv")
            table = pd.read_parquet(Path(tmp) / "t.parquet")
    return table.sample(n=min(n, len(table)), random_state=SAMPLE_SEED).reset_index(drop=True)


def gflops_per_transcript(size: str, lengths: np.ndarray) -> float:
    """Mean forward GFLOPs of the encoder trunk (no head) per transcript."""
    from isoclr.config import ModelConfig
    from isoclr.models import STEM_POOL

    cfg = ModelConfig(size=size)
    per_nt = 6 * cfg.stem_filters * cfg.stem_kernel
    per_position, width = 0, cfg.stem_filters
    for filters, blocks in zip(cfg.stage_filters, cfg.stage_blocks, strict=True):
        for _ in range(blocks):
            per_position += cfg.kernel_size * (width * filters + filters * filters)
            per_position += width * filters if width != filters else 0  # the 1x1 skip conv
            width = filters
    macs = per_nt * lengths + per_position * np.ceil(lengths / STEM_POOL)
    return float(2 * macs.mean() / 1e9)


def worker(args: argparse.Namespace) -> None:
    import torch

    from isoclr import Encoder, models
    from isoclr.config import ModelConfig
    from isoclr.embed import random_encoder

    torch.set_num_threads(args.threads)
    if args.reference_conv:
        models.Conv1d.forward = torch.nn.Conv1d.forward
    table = pd.read_parquet(args.table)
    encoder = Encoder(random_encoder(ModelConfig(size=args.size), seed=0), precision=args.precision)
    encoder.embed(table=table.nsmallest(WARMUP, "length"), batch_size=args.batch_size)
    seconds = float("inf")
    for _ in range(args.repeat):  # the fastest run: bursts of other work on 2 shared cores only slow runs down
        start = time.perf_counter()
        result = encoder.embed(table=table, batch_size=args.batch_size)
        seconds = min(seconds, time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB
    np.save(args.pooled, result.pooled)
    print(json.dumps({"n": len(result), "seconds": seconds, "peak_mib": peak_mib}))


def gpu(args: argparse.Namespace) -> None:
    """Embed on the GPU: throughput, peak GPU memory, bit-equality of two runs, distance to the CPU fp32 embedding."""
    import torch

    from isoclr import Encoder
    from isoclr.config import ModelConfig
    from isoclr.embed import random_encoder

    print(f"{torch.cuda.get_device_name()}; CPU fp32 reference on {args.threads} threads")
    print(
        f"{'size':7} {'precision':9} {'batch':>5} {'n':>5} {'tx/s':>8} {'peak GiB':>8} {'repeat equal':>12} "
        f"{'max |gpu - cpu|':>15} {'min cos':>8}"
    )
    torch.set_num_threads(args.threads)
    for size in args.sizes:
        table = sample_table(args.n)
        model = random_encoder(ModelConfig(size=size), seed=0)
        cpu = Encoder(model).embed(table=table.head(args.n_medium)).pooled
        for precision in args.precisions:
            encoder = Encoder(random_encoder(ModelConfig(size=size), seed=0), device=args.device, precision=precision)
            for batch_size in args.batch_sizes:
                encoder.embed(table=table.head(WARMUP), batch_size=batch_size)
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                first = encoder.embed(table=table, batch_size=batch_size).pooled
                seconds = time.perf_counter() - start
                peak = torch.cuda.max_memory_allocated() / 2**30
                again = encoder.embed(table=table, batch_size=batch_size).pooled
                head = encoder.embed(table=table.head(args.n_medium)).pooled
                cos, _ = agreement(head, cpu)
                print(
                    f"{size:7} {precision:9} {batch_size:5d} {len(table):5d} {len(table) / seconds:8.1f} "
                    f"{peak:8.2f} {bool((first == again).all())!s:>12} {float(np.abs(head - cpu).max()):15.2e} "
                    f"{cos:8.6f}",
                    flush=True,
                )


def run(
    size: str,
    batch_size: int,
    threads: int,
    table: Path,
    precision: str,
    reference_conv: bool,
    pooled: Path,
    repeat: int,
) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--size",
        size,
        "--batch-size",
        str(batch_size),
        "--threads",
        str(threads),
        "--table",
        str(table),
        "--precision",
        precision,
        "--pooled",
        str(pooled),
        "--repeat",
        str(repeat),
    ]
    out = subprocess.run(
        command + (["--reference-conv"] if reference_conv else []), check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def agreement(pooled: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """(smallest cosine similarity, largest |difference| / largest |exact|) of embeddings against fp32 ones."""
    cosine = (pooled * exact).sum(1) / (np.linalg.norm(pooled, axis=1) * np.linalg.norm(exact, axis=1))
    return float(cosine.min()), float(np.abs(pooled - exact).max() / np.abs(exact).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "medium"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32])
    parser.add_argument(
        "--n",
        type=int,
        default=1000,
        help="transcripts per small run (sorted into batches of 32, "
        "~8%% of the compute is padding; with 192 it would be ~38%%)",
    )
    parser.add_argument("--n-medium", type=int, default=48, help="transcripts per medium run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration; the fastest is reported")
    parser.add_argument("--device", default="cpu", help="cuda: the GPU report instead")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--no-reference", action="store_true", help="skip the reference-layout (plain conv1d) run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    parser.add_argument("--pooled", help=argparse.SUPPRESS)
    parser.add_argument("--reference-conv", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.device != "cpu":
        gpu(args)
        return

    print(
        f"{args.threads} torch thread(s); lengths from the sample; fastest of {args.repeat} runs; "
        f"target {TARGET_TX_S} transcripts/s for small"
    )
    print(
        f"{'size':7} {'precision':9} {'layout':13} {'batch':>5} {'n':>4} {'median nt':>9} {'tx/s':>7} "
        f"{'peak MiB':>8} {'GFLOP/tx':>8} {'GFLOP/s':>7} {'for target':>10} {'min cos':>8} {'max rel diff':>12}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            table = sample_table(args.n if size == "small" else args.n_medium)
            path = Path(tmp) / f"{size}.parquet"
            table.to_parquet(path)
            lengths = table["length"].to_numpy()
            flops = gflops_per_transcript(size, lengths)
            variants = [(bs, p, False) for p in args.precisions for bs in args.batch_sizes]
            if size == "small" and not args.no_reference:
                variants += [(args.batch_sizes[0], p, True) for p in args.precisions]
            exact = None
            for batch_size, precision, reference in variants:
                pooled = Path(tmp) / f"{size}-{precision}-{batch_size}-{reference}.npy"
                r = run(size, batch_size, args.threads, path, precision, reference, pooled, args.repeat)
                rate = r["n"] / r["seconds"]
                if exact is None and precision == "fp32" and not reference:
                    exact = np.load(pooled)
                cos, diff = agreement(np.load(pooled), exact) if exact is not None else (float("nan"),) * 2
                print(
                    f"{size:7} {precision:9} {'conv1d' if reference else 'channels-last':13} {batch_size:5d} "
                    f"{r['n']:4d} {int(np.median(lengths)):9d} {rate:7.1f} {r['peak_mib']:8.0f} {flops:8.2f} "
                    f"{rate * flops:7.1f} {TARGET_TX_S * flops:10.0f} {cos:8.6f} {diff:12.2e}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
