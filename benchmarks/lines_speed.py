"""A list trained as documents (--format lines) against the same file read as a book: chars/s.

    python benchmarks/lines_speed.py --list names.txt [--rounds 3] [--seconds 6]
        [--models rnn-1-float64,rnn-16-float32,lstm-1-float32,lstm-32-float32,...]

Documents are packed back to back into each stream's chunks, and the state restarts in the
kernels at every document start (``documents.py``); a book's chunks carry it through. Each
model (cell-streams-dtype; rnn is the classic cell, the gated cells take their recipe's other
settings) trains on the list both ways for --seconds of training time, alternating which goes
first from round to round, and the chars/s of its summary.json are compared: lines / book per
round, then the median and range over rounds. Nothing compiles inside a timed run: each model
runs a few updates both ways first.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

MODELS = ("rnn-1-float64", "rnn-1-float32", "rnn-16-float64", "rnn-16-float32", "gru-1-float32", "gru-32-float32",
          "gru-32-float64", "lstm-1-float32", "lstm-32-float32", "lstm-32-float64")
FORMATS = ("lines", "text")


def options(model: str) -> list[str]:
    cell, streams, dtype = model.split("-")
    return ["--cell", cell, "--streams", streams, "--dtype", dtype]


def train(book: str, fmt: str, model: str, limit: list[str], out: str) -> float:
    """chars/s of one run of ``model`` on ``book`` read as ``fmt``."""
    args = [sys.executable, "-m", "fastrnn", "train", book, "--format", fmt, "--out", out, "--force", "-q",
            "--sample-every", "0", "--checkpoint-every", "0", "--log-every", "1000000"] + options(model) + limit
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"fastrnn train failed: {done.stderr.strip().splitlines()[-1:]}")
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)["chars_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--list", required=True, help="a list, one document per line")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="training time of each run")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    models = args.models.split(",")
    ratios = {model: [] for model in models}
    speeds = {(model, fmt): [] for model in models for fmt in FORMATS}
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:  # compile both ways before anything is timed
            for fmt in FORMATS:
                train(args.list, fmt, model, ["--steps", "3"], os.path.join(tmp, "warm"))
        for r in range(args.rounds):
            for model in models:
                order = FORMATS if r % 2 == 0 else FORMATS[::-1]
                got = {fmt: train(args.list, fmt, model, ["--time-limit", f"{args.seconds}s"], os.path.join(tmp, fmt))
                       for fmt in order}
                for fmt in FORMATS:
                    speeds[model, fmt].append(got[fmt])
                ratios[model].append(got["lines"] / got["text"])
                print(f"round {r + 1} {model:16s} lines {got['lines']:10,.0f}  book {got['text']:10,.0f}  "
                      f"{got['lines'] / got['text']:.3f}", flush=True)
    print(f"\n{os.cpu_count()} cores; medians of {args.rounds} rounds (ranges of lines / book)")
    for model in models:
        r = ratios[model]
        print(f"{model:16s} lines {statistics.median(speeds[model, 'lines']):10,.0f} chars/s  "
              f"book {statistics.median(speeds[model, 'text']):10,.0f}  lines / book {statistics.median(r):.3f} "
              f"({min(r):.3f}-{max(r):.3f})")


if __name__ == "__main__":
    main()
