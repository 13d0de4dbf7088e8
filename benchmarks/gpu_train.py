"""GPU training throughput in bf16 for the published sizes: samples/s, peak memory and MFU.

For each of "small" and "medium" (config.MODEL_PRESETS): length-bucketed batches
of random tracks with GENCODE-like lengths (lognormal, median ~1.5 kb, at most
--max-length), bf16 autocast, AdamW steps on the DCL loss; --warmup untimed
steps, then --steps timed. MFU = model FLOPs/s over --peak-tflops (H100 SXM
dense bf16: 989), with FLOPs counted from the conv and linear shapes
(2 x MACs forward, x3 for forward + backward). Needs a CUDA GPU; on CPU it
exits with a message and status 2.
"""

from __future__ import annotations

import argparse
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
FWD_BWD = 3  # backward costs about twice the forward


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


def bucketed_batches(n_batches: int, seqs: int, max_length: int, device, rng) -> list[Batch]:
    lengths = np.clip(rng.lognormal(np.log(GENCODE_MEDIAN), GENCODE_SIGMA, n_batches * seqs), 60, max_length)
    lengths = np.sort(lengths.astype(int))
    out = []
    for i in range(n_batches):
        chunk = torch.as_tensor(lengths[i * seqs : (i + 1) * seqs])
        longest = int(chunk.max())
        x = torch.zeros(seqs, 6, longest)
        bases = torch.randint(0, 4, (seqs, longest))
        x.scatter_(1, bases[:, None, :], 1.0)
        x *= (torch.arange(longest)[None, :] < chunk[:, None])[:, None, :]
        pairs = seqs // 2
        out.append(Batch(x.to(device), chunk.to(device), torch.arange(pairs, device=device),
                         torch.ones(pairs, dtype=torch.int64, device=device)))
    order = rng.permutation(n_batches)
    return [out[i] for i in order]


def run(size: str, args, device) -> None:
    cfg = ModelConfig(size=size)
    tc = TrainConfig(batch_genes=args.batch_genes, precision="bf16", compile=args.compile)
    torch.manual_seed(0)
    model = ContrastiveModel(cfg).to(device)
    net = torch.compile(model, dynamic=True) if args.compile else model
    optimiser, _ = make_optimiser(model, tc)
    loss_fn = make_loss(tc)
    batches = bucketed_batches(args.warmup + args.steps, 2 * args.batch_genes, args.max_length, device,
                               np.random.default_rng(0))

    def step(b: Batch) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = batch_loss(net, loss_fn, b)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimiser.step()

    for b in batches[: args.warmup]:
        step(b)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    timed = batches[args.warmup :]
    start = time.perf_counter()
    for b in timed:
        step(b)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    samples = sum(len(b.x) for b in timed)
    flops = FWD_BWD * sum(flops_per_sequence(cfg, int(n)) for b in timed for n in b.lengths.tolist())
    print(
        f"{size:>6}: {count_parameters(model.encoder):,} params, {model.encoder.out_dim}-d | "
        f"{samples / seconds:,.0f} samples/s, {args.steps / seconds:.2f} steps/s | "
        f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB | "
        f"MFU {flops / seconds / (args.peak_tflops * 1e12):.1%} (real nt only)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["small", "medium"], choices=["small", "medium"])
    parser.add_argument("--batch-genes", type=int, default=128, help="pairs per step (two views each)")
    parser.add_argument("--max-length", type=int, default=12_288)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_train.py needs a CUDA GPU (none visible here); run it on a GPU machine. "
              "For CPU throughput see benchmarks/train_throughput.py.", file=sys.stderr)
        raise SystemExit(2)
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | bf16 autocast | "
          f"{args.batch_genes} pairs/step, GENCODE-like lengths <= {args.max_length}")
    for size in args.sizes:
        run(size, args, device)


if __name__ == "__main__":
    main()
