"""Wall time of the 2-D map methods on (n, d) embeddings: scikit-learn TSNE, openTSNE, umap-learn.

Picks the libraries behind :mod:`isoclr.maps` by measuring. Each method runs in
its own process, so the first ("cold") call pays the imports and any numba JIT
compile, as a pipeline stage would; a second call on new data in the same
process is the "warm" time. CPU time (all threads) is printed beside wall time:
on a machine shared with other jobs the wall time mostly measures the others.
Data: ``--clusters`` planted Gaussian clusters, so the silhouette of the 2-D
map by cluster says whether the method kept them apart.

    python benchmarks/maps.py                      # 2,000 x 128, 2 threads
    python benchmarks/maps.py --n 5000 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

METHODS = ("sklearn_tsne", "opentsne", "opentsne_fft", "umap")


def _data(n: int, d: int, clusters: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    label = rng.integers(0, clusters, n)
    centres = rng.normal(0, 1, (clusters, d))
    return (centres[label] + rng.normal(0, 1.5, (n, d))).astype(np.float32), label


def _run(method: str, x, threads: int, seed: int):
    if method == "sklearn_tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=30, init="pca", random_state=seed, n_jobs=threads).fit_transform(x)
    if method.startswith("opentsne"):
        from openTSNE import TSNE

        gradient = "fft" if method.endswith("fft") else "bh"  # openTSNE's "auto" is bh below 10,000 rows
        return TSNE(
            perplexity=30, initialization="pca", negative_gradient_method=gradient, random_state=seed, n_jobs=threads
        ).fit(x)
    if method == "umap":
        import umap

        return umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed, n_jobs=threads).fit_transform(x)
    raise ValueError(method)


def child(method: str, n: int, d: int, clusters: int, threads: int) -> dict:
    """Time one method twice in this process: cold (imports + JIT) and warm (new data)."""
    import numpy as np
    from sklearn.metrics import silhouette_score

    out: dict = {"method": method}
    for name, seed in (("cold_s", 1), ("warm_s", 2)):
        x, label = _data(n, d, clusters, seed)
        start, cpu = time.perf_counter(), time.process_time()
        coords = np.asarray(_run(method, x, threads, seed))
        out[name] = round(time.perf_counter() - start, 2)
        out[f"{name[:4]}_cpu_s"] = round(time.process_time() - cpu, 2)  # all threads: robust to a shared machine
        out[f"silhouette_{name[:4]}"] = round(float(silhouette_score(coords, label)), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--clusters", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n, args.d, args.clusters, args.threads)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "NUMBA_NUM_THREADS": str(args.threads)}
    print(f"{args.n} x {args.d} embeddings, {args.clusters} planted clusters, {args.threads} threads")
    for method in args.methods:
        start = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                method,
                "--n",
                str(args.n),
                "--d",
                str(args.d),
                "--clusters",
                str(args.clusters),
                "--threads",
                str(args.threads),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["process_s"] = round(time.perf_counter() - start, 2)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
