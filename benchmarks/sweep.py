"""A sweep with and without successive halving: wall time and the best validation each finds.

    python benchmarks/sweep.py --book BOOK [--steps 30000] [--halving 3] [--workers 2]

Eight configurations (hidden 50, 100; eta 0.05, 0.1; seq_length 25, 50), one seed, on a local
Dask cluster; the same sweep straight and with ``--halving``. Writes
``benchmarks/results/sweep.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

GRID = ["hidden=50,100", "eta=0.05,0.1", "seq_length=25,50"]


def main() -> None:
    from fastrnn import sweep

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--book", required=True)
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--halving", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "sweep.json"))
    args = parser.parse_args()
    report = {"grid": GRID, "steps": args.steps, "workers": args.workers, "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        for name, halving in (("straight", None), (f"halving {args.halving}", args.halving)):
            start = time.perf_counter()
            rows = sweep(args.book, grid=GRID, steps=args.steps, halving=halving, workers=args.workers,
                         out=os.path.join(tmp, name.replace(" ", "-")))
            wall = time.perf_counter() - start
            best = rows[0]
            report[name] = {"wall_seconds": wall, "best_trial": best,
                            "updates": sum(row["updates"] for row in rows)}
            print(f"{name}: {wall:.1f} s wall, {report[name]['updates']:,} updates in all; best "
                  f"{best['best_val_bits_per_char']:.4f} bits/char (hidden {best['hidden']}, eta {best['eta']}, "
                  f"seq_length {best['seq_length']})")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
