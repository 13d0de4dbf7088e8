"""Ingest at GENCODE scale: `isoclr validate` + `isoclr encode` against the usual reference path.

Generates (once, cached in --work) an annotation of GENCODE shape with
``isoclr synth`` (default 250,000 transcripts, ~3.4M GTF rows, genome FASTA
with .fai), then runs in the same session, each as its own process:

- ours: ``isoclr validate`` (GTF + genome -> checked transcripts table) then
  ``isoclr encode`` (track store);
- reference, two ways (parsing and splicing only: no CDS, no checks, nothing
  written), each then pyfaidx ``get_spliced_seq`` per transcript:
  ``default``: ``gtfparse.read_gtf(path)`` as usually called (every feature,
  every attribute expanded, pandas), exon rows taken afterwards;
  ``tuned``: ``read_gtf`` told to keep only exon rows and 5 columns, polars out.

Runs ``--repeat`` rounds (default 3), each ours then the references, and prints
each round's ratios, then wall time, peak RSS (from wait4 of each process) and
transcripts/s of the fastest run of each, the median of the per-round ratios
(the figure the target is judged on) and the fastest-against-fastest ratio, and
checks that both paths give the same sequences on a sample of transcripts.
Usage: ``python benchmarks/ingest.py [--transcripts N] [--work DIR] [--repeat R] [--references default tuned]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ISOCLR = Path(sys.executable).with_name("isoclr")
GIB = 1 << 30
CHECK_SAMPLE = 2000  # transcripts compared between the two paths
TARGET_SECONDS, TARGET_RSS_GIB, TARGET_SPEEDUP = 30.0, 3.0, 3.0


CPU = {}  # command -> user + system CPU seconds: steadier than wall time when other jobs share the cores


def run(cmd: list[str], **kw) -> tuple[float, float, str]:
    """(wall seconds, peak RSS GiB, stdout) of one child process; its CPU time goes to CPU."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, **kw)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed with exit code {proc.returncode}")
    CPU[cmd[1] if len(cmd) > 1 else cmd[0]] = usage.ru_utime + usage.ru_stime
    return wall, usage.ru_maxrss * 1024 / GIB, out


REFERENCE_MODES = ("default", "tuned")


def reference(mode: str, gtf: str, genome: str, out: str) -> None:
    """The usual path: gtfparse read_gtf, then pyfaidx spliced extraction per transcript."""
    import gtfparse
    import polars as pl
    import pyfaidx

    columns = ["seqname", "start", "end", "strand", "transcript_id"]
    if mode == "default":
        table = gtfparse.read_gtf(gtf)
        frame = pl.from_pandas(table.loc[table["feature"] == "exon", columns])
        del table
    else:
        frame = gtfparse.read_gtf(gtf, features={"exon"}, result_type="polars", usecols=columns)
    exons = frame.group_by("transcript_id", maintain_order=True).agg(
        pl.col("seqname").first(), pl.col("strand").first(), pl.col("start"), pl.col("end")
    )
    fasta = pyfaidx.Fasta(genome, sequence_always_upper=True)
    seqs = {}
    for tid, contig, strand, starts, ends in exons.iter_rows():
        # get_spliced_seq takes 1-based closed intervals in genomic order.
        intervals = sorted(zip(starts, ends, strict=True))
        seqs[tid] = fasta.get_spliced_seq(contig, [list(i) for i in intervals], rc=strand == "-").seq
    sample = dict(list(seqs.items())[:: max(1, len(seqs) // CHECK_SAMPLE)])
    Path(out).write_text(json.dumps({"n": len(seqs), "sample": sample}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transcripts", type=int, default=250_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/isoclr-bench-ingest"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of ours then the references (default: 3)")
    parser.add_argument(
        "--references",
        nargs="+",
        choices=REFERENCE_MODES,
        default=list(REFERENCE_MODES),
        help="reference variants to run (default: both)",
    )
    parser.add_argument("--reference", nargs=4, metavar=("MODE", "GTF", "GENOME", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference:
        reference(*args.reference)
        return

    import pyarrow.parquet

    data = args.work / f"synth-{args.transcripts}-{args.seed}"
    if not (data / "done").is_file():
        wall, rss, out = run(
            [
                str(ISOCLR),
                "synth",
                str(data),
                "--transcripts",
                str(args.transcripts),
                "--seed",
                str(args.seed),
                "--contigs",
                "24",
            ]
        )
        (data / "done").write_text(out)
        print(f"synth: {wall:.1f} s, {rss:.2f} GiB: {out.strip()}")
    print(f"data: {(data / 'done').read_text().strip()}")
    gtf, genome = data / "annotation.gtf", data / "genome.fa"
    n_rows = sum(1 for line in gtf.open() if not line.startswith("#"))

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"] = {
        "dir": str(data),
        "annotations": [
            {
                "name": "synth",
                "format": "gtf_genome_fasta",
                "gtf": gtf.name,
                "genome": genome.name,
                "species": "synthetic",
                "assembly": f"synth{args.seed}",
            }
        ],
        "paralogs": "paralog_pairs.csv",
    }
    params["validate"]["max_quarantine_fraction"] = 0.5
    out = args.work / "out"
    out.mkdir(parents=True, exist_ok=True)
    (args.work / "params.yaml").write_text(yaml.safe_dump(params))
    p = ["--params", str(args.work / "params.yaml")]

    def ours() -> dict:
        t_val, rss_val, _ = run(
            [
                str(ISOCLR),
                "validate",
                *p,
                "--transcripts",
                str(out / "t.parquet"),
                "--quarantine",
                str(out / "q.tsv"),
                "--summary",
                str(out / "v.json"),
            ]
        )
        t_enc, rss_enc, _ = run(
            [str(ISOCLR), "encode", *p, "--transcripts", str(out / "t.parquet"), "--store", str(out / "tracks")]
        )
        return {
            "validate": t_val,
            "encode": t_enc,
            "wall": t_val + t_enc,
            "rss_validate": rss_val,
            "rss_encode": rss_enc,
            "rss": max(rss_val, rss_enc),
            "cpu": CPU["validate"] + CPU["encode"],
        }

    def reference_run(mode: str) -> dict:
        ref_out = args.work / f"reference-{mode}.json"
        wall, rss, _ = run([sys.executable, __file__, "--reference", mode, str(gtf), str(genome), str(ref_out)])
        return {"wall": wall, "rss": rss, "cpu": CPU[__file__], "out": json.loads(ref_out.read_text())}

    # Rounds alternate ours and the references, so each ratio compares runs made minutes apart: this machine's
    # speed drifts by tens of percent over the day, and a lone pair of runs can land on either side of a drift.
    rounds = []
    for k in range(args.repeat):
        row = {"ours": ours(), **({} if args.skip_reference else {m: reference_run(m) for m in args.references})}
        rounds.append(row)
        ratios = "".join(
            f" | {m} {row[m]['wall']:.1f} s ({row[m]['wall'] / row['ours']['wall']:.2f}x)" for m in row if m != "ours"
        )
        print(f"round {k + 1}: ours {row['ours']['wall']:.1f} s{ratios}")
    best = min((r["ours"] for r in rounds), key=lambda o: o["wall"])
    summary = json.loads((out / "v.json").read_text())
    n_total = summary["n_transcripts"] + summary["n_quarantined"]
    print(f"input: {n_total} transcripts, {n_rows} GTF rows, genome {genome.stat().st_size / GIB:.2f} GiB")
    print(f"ours (fastest of {len(rounds)})")
    print(
        f"  validate {best['validate']:6.1f} s  {best['rss_validate']:.2f} GiB | "
        f"encode {best['encode']:5.1f} s  {best['rss_encode']:.2f} GiB"
    )
    print(
        f"  total    {best['wall']:6.1f} s  peak {best['rss']:.2f} GiB  {n_total / best['wall']:8.0f} transcripts/s  "
        f"cpu {best['cpu']:.1f} s  ({summary['n_transcripts']} kept, {summary['by_rule']})"
    )
    if not args.skip_reference:
        seqs = pyarrow.parquet.read_table(out / "t.parquet", columns=["transcript_id", "seq"]).to_pandas()
        seqs = seqs.set_index("transcript_id")["seq"]
        for mode in args.references:
            ref = min((r[mode] for r in rounds), key=lambda o: o["wall"])
            print(f"reference {mode} gtfparse+pyfaidx (fastest of {len(rounds)})")
            print(
                f"  total    {ref['wall']:6.1f} s  peak {ref['rss']:.2f} GiB  "
                f"{ref['out']['n'] / ref['wall']:8.0f} transcripts/s  cpu {ref['cpu']:.1f} s"
            )
            checked = [t for t in ref["out"]["sample"] if t in seqs.index]
            same = sum(seqs[t] == ref["out"]["sample"][t] for t in checked)
            print(f"  sequences equal on {same}/{len(checked)} sampled transcripts")
            paired = sorted(r[mode]["wall"] / r["ours"]["wall"] for r in rounds)
            print(
                f"  speed-up ours / reference {mode}: wall {statistics.median(paired):.1f}x median of "
                f"{len(paired)} rounds ({', '.join(f'{x:.2f}' for x in paired)}), fastest against fastest "
                f"{ref['wall'] / best['wall']:.1f}x, cpu {ref['cpu'] / best['cpu']:.1f}x "
                f"(target >= {TARGET_SPEEDUP}x)"
            )
    print(
        f"ours: wall {'OK' if best['wall'] <= TARGET_SECONDS else 'OVER'} (<= {TARGET_SECONDS} s), "
        f"RSS {'OK' if best['rss'] <= TARGET_RSS_GIB else 'OVER'} (<= {TARGET_RSS_GIB} GiB)"
    )


if __name__ == "__main__":
    main()
