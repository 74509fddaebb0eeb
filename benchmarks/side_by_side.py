"""Several fastrnn trainings started together on one machine: how much of the machine they keep.

    python benchmarks/side_by_side.py --book BOOK.txt [--counts 1,2,3] [--rounds 3]
        [--variants shared,fixed,passive] [--streams 16] [--steps 6000] [--dtype float64]

Each round runs, for each variant and each count k, k processes of `fastrnn train BOOK
--streams 16` started at the same moment, and reads their chars/s (training time only) from
summary.json. The machine's throughput is that of one process alone in the same variant and
round; k together keep (sum of their chars/s) / (one alone's). Variants:

    shared    the default: as many threads as cores, fewer while other processes are busy
    fixed     --threads set to the cores: every process keeps them all (before sharing)
    passive   fixed, with OMP_WAIT_POLICY=passive: threads sleep as soon as they wait
    spin10k   fixed, with GOMP_SPINCOUNT=10000: threads spin 10,000 rounds, not 300,000

Prints medians over rounds with their ranges; the kernel cache is warmed first, so nothing
compiles while a round is timed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CORES = str(len(os.sched_getaffinity(0)))
VARIANTS = {  # (extra arguments, environment)
    "shared": ([], {}),
    "fixed": (["--threads", CORES], {}),
    "passive": (["--threads", CORES], {"OMP_WAIT_POLICY": "passive"}),
    "spin10k": (["--threads", CORES], {"GOMP_SPINCOUNT": "10000"}),
}
POLICY_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def start(book: str, out: str, options: list, env: dict) -> subprocess.Popen:
    args = [sys.executable, "-m", "fastrnn", "train", book, "--out", out, "--force", "-q", "--sample-every", "0",
            "--checkpoint-every", "0"] + options
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def together(book: str, k: int, options: list, env: dict, tmp: str) -> list[float]:
    """chars/s of each of k processes started at once."""
    outs = [os.path.join(tmp, f"run{i}") for i in range(k)]
    procs = [start(book, out, options, env) for out in outs]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"fastrnn train failed: {err.strip().splitlines()[-1:]}")
    return [json.load(open(os.path.join(out, "summary.json")))["chars_per_s"] for out in outs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--book", required=True)
    parser.add_argument("--counts", default="1,2,3")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="shared,fixed,passive")
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--dtype", default="float64")
    args = parser.parse_args()
    common = ["--streams", str(args.streams), "--dtype", args.dtype]
    counts = [int(c) for c in args.counts.split(",")]
    variants = args.variants.split(",")
    base = {k: v for k, v in os.environ.items() if k not in POLICY_VARS}
    alone, kept = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for options in ([], ["--threads", CORES]):  # both builds of the loop into the cache
            together(args.book, 1, common + options + ["--steps", "50"], base, tmp)
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for name in order:
                extra, variables = VARIANTS[name]
                env = dict(base, **variables)
                options = common + extra + ["--steps", str(args.steps)]
                one = together(args.book, 1, options, env, tmp)[0]
                alone.setdefault(name, []).append(one)
                for k in counts:
                    if k > 1:
                        speeds = together(args.book, k, options, env, tmp)
                        kept.setdefault((name, k), []).append(sum(speeds) / one)
                        print(f"round {r + 1} {name:8s} alone {one:10,.0f}  {k} together: "
                              + " + ".join(f"{s:,.0f}" for s in speeds) + f" = {sum(speeds) / one:.0%}", flush=True)
    print(f"\n{args.streams} streams, {args.steps} updates, {args.dtype}, {CORES} cores; medians (ranges) of "
          f"{args.rounds} rounds")
    for name in variants:
        v = alone[name]
        line = f"{name:8s} alone {statistics.median(v):10,.0f} chars/s ({min(v):,.0f}-{max(v):,.0f})"
        for k in counts:
            if k > 1:
                f = kept[name, k]
                line += f"   {k} together keep {statistics.median(f):.0%} ({min(f):.0%}-{max(f):.0%})"
        print(line)


if __name__ == "__main__":
    main()
