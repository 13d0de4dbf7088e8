"""CPU embedding throughput and peak memory of the encoder presets (CNN and Mamba) on the sample's real lengths.

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

Sizes: ``cnn`` (the default CNN of params.yaml, ~0.22M), ``small`` and ``medium``
(config.MODEL_PRESETS), ``mamba_tiny``, ``mamba_small``, ``mamba_base``
(config.MAMBA_PRESETS, ``model.arch: mamba``). Every row is also given as a ratio
to the first size's row of the same precision, batch size and table (transcripts/s
and peak memory; on CPU peak RSS includes the ~0.4 GiB of the process itself).
Mamba GFLOPs count the linear and conv weights once per nucleotide plus 2
multiply-adds per state element of the scan.

    python benchmarks/embed.py                       # small + medium, 2 threads
    python benchmarks/embed.py --sizes small --batch-sizes 8 32 64
    python benchmarks/embed.py --sizes cnn mamba_tiny --n 48 --n-medium 48 --no-reference
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
SIZES = ("cnn", "small", "medium", "mamba_tiny", "mamba_small", "mamba_base")
FAST_SIZES = ("cnn", "small")  # run on --n transcripts; the others on --n-medium
SCAN_MACS = 2  # per state element and position: the decayed update and C's read-out
SAMPLE_SEED = 0
WARMUP = 8
KIB = 1024


def sample_table(n: int, path: Path = TABLE) -> pd.DataFrame:
    """``n`` validated sample transcripts (real lengths) of the table at ``path``; runs the validate logic
    when it does not exist."""
    if path.exists():
        table = pd.read_parquet(path)
    else:
        from isoclr.config import load
        from isoclr.ingest import validate

        cfg = load(ROOT / "params.yaml")
        with tempfile.TemporaryDirectory() as tmp:
            validate(cfg, ROOT / cfg.data.dir, Path(tmp) / "t.parquet", Path(tmp) / "q.tsv")
            table = pd.read_parquet(Path(tmp) / "t.parquet")
    return table.sample(n=min(n, len(table)), random_state=SAMPLE_SEED).reset_index(drop=True)


def model_config(size: str):
    """The ModelConfig of a size name (see the module docstring)."""
    from isoclr.config import MAMBA_PRESETS, ModelConfig

    if size in MAMBA_PRESETS:
        return ModelConfig(arch="mamba", mamba={"size": size})
    return ModelConfig() if size == "cnn" else ModelConfig(size=size)


def mamba_macs_per_position(size: str) -> int:
    """Forward multiply-adds per nucleotide of a Mamba encoder: every linear and conv weight once (no
    down-sampling; the convs are depthwise), plus SCAN_MACS per state element (A_log) of each scan."""
    import torch

    from isoclr.embed import random_encoder

    model = random_encoder(model_config(size), seed=0)
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv1d))
    states = sum(p.numel() for name, p in model.named_parameters() if name.endswith("A_log"))
    return weights + SCAN_MACS * states


def gflops_per_transcript(size: str, lengths: np.ndarray) -> float:
    """Mean forward GFLOPs of the encoder trunk (no head) per transcript."""
    from isoclr.models import STEM_POOL

    cfg = model_config(size)
    if cfg.arch == "mamba":
        return float(2 * mamba_macs_per_position(size) * lengths.mean() / 1e9)
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
    from isoclr.embed import random_encoder

    torch.set_num_threads(args.threads)
    if args.reference_conv:
        models.Conv1d.forward = torch.nn.Conv1d.forward
    table = pd.read_parquet(args.table)
    encoder = Encoder(random_encoder(model_config(args.size), seed=0), precision=args.precision)
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
    from isoclr.embed import random_encoder

    print(
        f"{torch.cuda.get_device_name()}; CPU fp32 reference on {args.threads} threads; "
        f"ratios to {args.sizes[0]} at the same precision and batch size"
    )
    print(
        f"{'size':11} {'precision':9} {'batch':>5} {'n':>5} {'tx/s':>8} {'peak GiB':>8} {'repeat equal':>12} "
        f"{'max |gpu - cpu|':>15} {'min cos':>8} {'tx/s vs':>7} {'mem vs':>6}"
    )
    torch.set_num_threads(args.threads)
    baseline: dict[tuple[str, int], tuple[float, float]] = {}
    for size in args.sizes:
        table = sample_table(args.n, Path(args.transcripts))
        model = random_encoder(model_config(size), seed=0)
        cpu = Encoder(model).embed(table=table.head(args.n_medium)).pooled
        for precision in args.precisions:
            encoder = Encoder(random_encoder(model_config(size), seed=0), device=args.device, precision=precision)
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
                rate = len(table) / seconds
                ref_rate, ref_peak = baseline.setdefault((precision, batch_size), (rate, peak))
                print(
                    f"{size:11} {precision:9} {batch_size:5d} {len(table):5d} {rate:8.1f} "
                    f"{peak:8.2f} {bool((first == again).all())!s:>12} {float(np.abs(head - cpu).max()):15.2e} "
                    f"{cos:8.6f} {rate / ref_rate:6.3f}x {peak / ref_peak:5.2f}x",
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
    parser.add_argument("--sizes", nargs="+", default=["small", "medium"], choices=SIZES)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32])
    parser.add_argument(
        "--n",
        type=int,
        default=1000,
        help="transcripts per cnn or small run (sorted into batches of 32, "
        "~8%% of the compute is padding; with 192 it would be ~38%%)",
    )
    parser.add_argument("--n-medium", type=int, default=48, help="transcripts per run of the other sizes")
    parser.add_argument("--transcripts", default=str(TABLE), help="the validated sample table (lengths, sequences)")
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
        f"target {TARGET_TX_S} transcripts/s for small; ratios to {args.sizes[0]} (same precision, batch, n)"
    )
    print(
        f"{'size':11} {'precision':9} {'layout':13} {'batch':>5} {'n':>4} {'median nt':>9} {'tx/s':>7} "
        f"{'peak MiB':>8} {'GFLOP/tx':>8} {'GFLOP/s':>7} {'for target':>10} {'min cos':>8} {'max rel diff':>12} "
        f"{'tx/s vs':>7} {'mem vs':>6}"
    )
    baseline: dict[tuple[str, int, int], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            table = sample_table(args.n if size in FAST_SIZES else args.n_medium, Path(args.transcripts))
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
                ratios = ""
                key = (precision, batch_size, r["n"])
                if not reference and size == args.sizes[0]:
                    baseline[key] = (rate, r["peak_mib"])
                if not reference and key in baseline:
                    ratios = f" {rate / baseline[key][0]:6.3f}x {r['peak_mib'] / baseline[key][1]:5.2f}x"
                print(
                    f"{size:11} {precision:9} {'conv1d' if reference else 'channels-last':13} {batch_size:5d} "
                    f"{r['n']:4d} {int(np.median(lengths)):9d} {rate:7.1f} {r['peak_mib']:8.0f} {flops:8.2f} "
                    f"{rate * flops:7.1f} {TARGET_TX_S * flops:10.0f} {cos:8.6f} {diff:12.2e}{ratios}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
