"""CPU embedding throughput and peak memory of the small and medium presets on the sample's real lengths.

Transcripts are drawn (seeded, uniformly) from the validated sample table
(outputs/transcripts.parquet, or the validate stage run on data/ into a
temporary folder when it is absent), so the length distribution is the real
one. Each configuration runs in its own process (``--threads`` torch threads),
so its peak RSS is its own: :meth:`isoclr.Encoder.embed` on a random-init
encoder of the preset (weights do not change the cost), after a short warm-up.

Printed side by side in one run: transcripts/s, peak RSS, achieved GFLOP/s
(conv FLOPs from the shapes) and the GFLOP/s that the 200 transcripts/s target
would need; for small also the reference channel norm (mean/var over the
channel axis, as before the fused ``layer_norm``), to show what that change buys.

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
    from torch.nn import functional as F

    from isoclr import Encoder, models
    from isoclr.config import ModelConfig
    from isoclr.embed import random_encoder

    torch.set_num_threads(args.threads)
    if args.reference_norm:
        def reference(self, x):
            mean = x.mean(dim=1, keepdim=True)
            var = x.var(dim=1, keepdim=True, unbiased=False)
            return (x - mean) * torch.rsqrt(var + self.eps) * self.weight[None, :, None] + self.bias[None, :, None]

        models.ChannelLayerNorm.forward = reference
    del F
    table = pd.read_parquet(args.table)
    encoder = Encoder(random_encoder(ModelConfig(size=args.size), seed=0))
    encoder.embed(table=table.nsmallest(WARMUP, "length"), batch_size=args.batch_size)
    start = time.perf_counter()
    result = encoder.embed(table=table, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB
    print(json.dumps({"n": len(result), "seconds": seconds, "peak_mib": peak_mib}))


def gpu(args: argparse.Namespace) -> None:
    """Embed on the GPU: throughput, peak GPU memory, bit-equality of two runs, distance to the CPU embedding."""
    import torch

    from isoclr import Encoder
    from isoclr.config import ModelConfig
    from isoclr.embed import random_encoder

    print(f"{torch.cuda.get_device_name()}; fp32; CPU reference on {args.threads} threads")
    print(f"{'size':7} {'batch':>5} {'n':>5} {'tx/s':>8} {'peak GiB':>8} {'repeat equal':>12} {'max |gpu - cpu|':>15}")
    torch.set_num_threads(args.threads)
    for size in args.sizes:
        table = sample_table(args.n)
        model = random_encoder(ModelConfig(size=size), seed=0)
        cpu = Encoder(model).embed(table=table.head(args.n_medium)).pooled
        encoder = Encoder(random_encoder(ModelConfig(size=size), seed=0), device=args.device)
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
            print(f"{size:7} {batch_size:5d} {len(table):5d} {len(table) / seconds:8.1f} {peak:8.2f} "
                  f"{bool((first == again).all())!s:>12} {float(np.abs(head - cpu).max()):15.2e}", flush=True)


def run(size: str, batch_size: int, threads: int, table: Path, reference_norm: bool) -> dict:
    command = [sys.executable, __file__, "--worker", "--size", size, "--batch-size", str(batch_size),
               "--threads", str(threads), "--table", str(table)] + (["--reference-norm"] if reference_norm else [])
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "medium"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32])
    parser.add_argument("--n", type=int, default=192, help="transcripts per small run")
    parser.add_argument("--n-medium", type=int, default=48, help="transcripts per medium run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cuda: the GPU report instead")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference-norm run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--reference-norm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.device != "cpu":
        gpu(args)
        return

    print(f"{args.threads} torch thread(s); lengths from the sample; target {TARGET_TX_S} transcripts/s for small")
    print(f"{'size':7} {'norm':9} {'batch':>5} {'n':>4} {'median nt':>9} {'tx/s':>7} {'peak MiB':>8} "
          f"{'GFLOP/tx':>8} {'GFLOP/s':>7} {'GFLOP/s for target':>18}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            table = sample_table(args.n if size == "small" else args.n_medium)
            path = Path(tmp) / f"{size}.parquet"
            table.to_parquet(path)
            lengths = table["length"].to_numpy()
            flops = gflops_per_transcript(size, lengths)
            variants = [(bs, False) for bs in args.batch_sizes]
            if size == "small" and not args.no_reference:
                variants.append((args.batch_sizes[0], True))
            for batch_size, reference in variants:
                r = run(size, batch_size, args.threads, path, reference)
                rate = r["n"] / r["seconds"]
                print(f"{size:7} {'mean/var' if reference else 'fused':9} {batch_size:5d} {r['n']:4d} "
                      f"{int(np.median(lengths)):9d} {rate:7.1f} {r['peak_mib']:8.0f} {flops:8.2f} "
                      f"{rate * flops:7.1f} {TARGET_TX_S * flops:18.0f}", flush=True)


if __name__ == "__main__":
    main()
