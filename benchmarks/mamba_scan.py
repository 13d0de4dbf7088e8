"""Mamba on CPU: isoclr's chunked selective scan vs mambapy (pure-PyTorch Mamba, parallel scan), speed and memory.

Both arms train the same architecture, an Orthrus-small-like encoder (default d_model 256 x 3 layers,
d_state 16, expand 2, d_conv 4): a linear stem from the 6 tracks, the Mamba blocks, a final RMSNorm and a
mean over positions, one forward + backward of ``sum(embedding**2)`` on a random (batch, 6, length) batch
(default 8 x 2048, every sequence full length: mambapy has no padding mask). Only the blocks differ:
``isoclr.mamba.MambaEncoder`` (scan method ``sequential`` or ``parallel``) or ``mambapy.mamba.Mamba``
(``pip install mambapy==1.2.0``; measured only, not a dependency).

Each measurement is a fresh child process, so its peak resident memory is its own: "peak MiB" is the
child's peak RSS minus its RSS once model and batch exist, i.e. what the training step itself adds.
Seconds are wall clock of the fastest timed step, after one untimed step. Arms are interleaved round by
round, so a shared machine's load changes fall on all arms alike; say what the load was when reporting.

Measured (2 shared CPU cores, load 2-7 from other jobs, torch 2.13 CPU, mambapy 1.2.0, defaults):

    arm                  threads    s/step  peak MiB  time vs mambapy  mem vs mambapy
    isoclr-sequential          2     39.00      1740            0.47x           0.18x
    isoclr-parallel            2     90.16      2185            1.10x           0.23x
    mambapy                    2     82.18      9619            1.00x           1.00x
    isoclr-sequential          1     16.29      1734            0.34x           0.18x
    isoclr-parallel            1     57.32      2115            1.21x           0.22x
    mambapy                    1     47.48      9729            1.00x           1.00x

so isoclr's own scan (sequential inside chunks, the CPU default) is the one used: 2-3x faster and 5.5x
less memory than mambapy; mambapy is not a dependency. Absolute seconds moved 2x with the load.

    python benchmarks/mamba_scan.py                       # 8 x 2048, 256 x 3, threads 1 and 2
    python benchmarks/mamba_scan.py --length 512 --threads 2 --arms isoclr-sequential mambapy
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from torch import nn

from isoclr.mamba import MambaEncoder
from isoclr.models import count_parameters

ARMS = ("isoclr-sequential", "isoclr-parallel", "mambapy")
CLOCK = time.perf_counter
WIDTHS = (20, 8, 10, 10, 11, 17, 16)


class MambapyEncoder(nn.Module):
    """mambapy's blocks between the same stem, final norm and mean as MambaEncoder (full-length input only)."""

    def __init__(self, d_model: int, n_layers: int, d_state: int, in_channels: int = 6) -> None:
        super().__init__()
        from mambapy.mamba import Mamba, MambaConfig

        self.stem = nn.Linear(in_channels, d_model)
        self.mamba = Mamba(MambaConfig(d_model=d_model, n_layers=n_layers, d_state=d_state, pscan=True))
        self.norm = nn.RMSNorm(d_model, eps=1e-5)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (batch, 6, length), lengths (batch,) (all equal to length) -> (batch, d_model)."""
        return self.norm(self.mamba(self.stem(x.transpose(1, 2)))).mean(dim=1)


def rss_mib() -> float:
    """This process's resident memory now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child(args: argparse.Namespace) -> None:
    """One arm in this process: print one JSON line (seconds per step, peak MiB added by a step, parameters)."""
    torch.set_num_threads(args.threads[0])
    torch.manual_seed(0)
    if args.child == "mambapy":
        model = MambapyEncoder(args.d_model, args.layers, args.d_state)
    else:
        model = MambaEncoder(d_model=args.d_model, n_layers=args.layers, d_state=args.d_state)
        model.scan_options["method"] = args.child.removeprefix("isoclr-")
    x = torch.zeros(args.batch, 6, args.length)
    x[:, torch.randint(0, 4, (args.length,)), torch.arange(args.length)] = 1.0
    lengths = torch.full((args.batch,), args.length)
    base = rss_mib()
    times = []
    for _ in range(1 + args.steps):
        model.zero_grad(set_to_none=True)
        start = CLOCK()
        model(x, lengths).pow(2).sum().backward()
        times.append(CLOCK() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": min(times[1:]), "peak_mib": peak - base, "parameters": count_parameters(model)}))


def run_arm(arm: str, threads: int, args: argparse.Namespace) -> dict | None:
    """The arm in a fresh child process; None (and the reason on stderr) if it failed, e.g. out of memory."""
    command = [sys.executable, __file__, "--child", arm, "--threads", str(threads)]
    for key in ("batch", "length", "d_model", "layers", "d_state", "steps"):
        command += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{arm} (threads {threads}) failed, exit {done.returncode}: {done.stderr[-500:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=2048)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--d-state", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1, help="timed steps per child, after one untimed step")
    parser.add_argument("--rounds", type=int, default=2, help="children per arm and thread count, interleaved")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--child", choices=ARMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(
        f"batch {args.batch} x length {args.length}, d_model {args.d_model} x {args.layers} layers, "
        f"d_state {args.d_state}; forward + backward; torch {torch.__version__}"
    )
    results: dict[tuple[str, int], list[dict]] = {}
    for threads in args.threads:
        for _ in range(args.rounds):
            for arm in args.arms:
                result = run_arm(arm, threads, args)
                if result is not None:
                    results.setdefault((arm, threads), []).append(result)
    header = ("arm", "threads", "s/step", "peak MiB", "params", "time vs mambapy", "mem vs mambapy")
    print("".join(f"{h:<20}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(header, WIDTHS, strict=True))))
    for threads in args.threads:
        reference = results.get(("mambapy", threads))
        for arm in args.arms:
            if (arm, threads) not in results:
                print(f"{arm:<20}{threads:>8}  failed")
                continue
            seconds = min(r["seconds"] for r in results[(arm, threads)])
            peak = min(r["peak_mib"] for r in results[(arm, threads)])
            ratios = ""
            if reference:
                ref_seconds = min(r["seconds"] for r in reference)
                ref_peak = min(r["peak_mib"] for r in reference)
                ratios = f"{seconds / ref_seconds:>16.2f}x{peak / ref_peak:>15.2f}x"
            params = results[(arm, threads)][0]["parameters"]
            print(f"{arm:<20}{threads:>8}{seconds:>10.2f}{peak:>10.0f}{params:>11,}{ratios}")


if __name__ == "__main__":
    main()
