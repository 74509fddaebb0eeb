"""Time to quality: the held-out loss each cell reaches in a few minutes of training, beside the
PyTorch baseline (benchmarks/torch_lstm.py) given the same seconds in the same run.

    python benchmarks/quality.py --book tinyshakespeare.txt [--book novel.txt] [--minutes 1,3,10]
        [--models rnn,lstm,gru,torch] [--torch-python PYTHON] [--json OUT]

Each fastrnn row is `fastrnn train BOOK --cell C --time-limit T --val-fraction 0.1` with every
other setting the cell's default; the held-out tenth is scored from the model's carried state
(`fastrnn eval`'s way) at the end. The PyTorch row runs where torch is importable, by this
interpreter or by --torch-python; a book that is not plain text (tweets in JSON, a directory)
reaches it as the text fastrnn trains on, written under --out. Runs go one after another, never
side by side, and alternate their order from budget to budget. Prints bits/char (and
nats/char), chars/s and the command of each row; the run directories stay under --out, each
with sample.txt: 300 characters its best model writes.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def fastrnn_row(book: str, cell: str, seconds: float, out: str) -> dict:
    options = ["--cell", cell, "--time-limit", f"{seconds:g}s", "--val-fraction", "0.1"]
    fastrnn = [sys.executable, "-m", "fastrnn"]
    command = fastrnn + ["train", book] + options + ["--out", out, "--force", "-q", "--sample-every", "0"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
    # what the model writes: 300 characters of its best model
    sample = subprocess.run(fastrnn + ["sample", "--checkpoint", out, "--len", "300", "--seed", "1"],
                            capture_output=True, text=True)
    with open(os.path.join(out, "sample.txt"), "w", encoding="utf-8") as f:
        f.write(sample.stdout)
    summary = json.load(open(os.path.join(out, "summary.json")))
    nats = summary["best_val_nats_per_char"]
    shown = " ".join(["fastrnn", "train", os.path.basename(book)] + options)
    return {"model": cell, "nats": nats, "bits": nats / math.log(2), "chars_per_s": summary["chars_per_s"],
            "updates": summary["updates"], "seconds": summary["seconds"], "command": shown, "run": out}


def plain_text(book: str, out: str) -> str:
    """``book`` itself where it is a text file, else (tweets, a directory of texts) the text
    fastrnn trains on written to a file under ``out``: the PyTorch script reads plain text."""
    from fastrnn.formats import detect_format, load_corpus

    if detect_format(book) == "text":
        return book
    vocab, indices = load_corpus(book)
    path = os.path.join(out, os.path.basename(book.rstrip(os.sep)) + ".txt")
    os.makedirs(out, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(vocab.decode(indices))
    return path


def torch_row(book: str, seconds: float, python: str, out: str) -> dict:
    text = plain_text(book, out)
    command = [python, os.path.join(HERE, "torch_lstm.py"), "--book", text, "--seconds", f"{seconds:g}"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"model": "torch", "nats": result["held_out_nats_per_char"], "bits": result["held_out_bits_per_char"],
            "chars_per_s": result["chars_per_s"], "updates": result["updates"], "seconds": result["seconds"],
            "command": f"python benchmarks/torch_lstm.py --book {os.path.basename(book)} --seconds {seconds:g}"}


def torch_python(given: str | None) -> str | None:
    for python in ([given] if given else [sys.executable]):
        if subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0:
            return python
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--book", action="append", required=True)
    parser.add_argument("--minutes", default="1,3,10")
    parser.add_argument("--models", default="rnn,lstm,gru,torch")
    parser.add_argument("--torch-python", help="an interpreter that has torch [this one]")
    parser.add_argument("--out", default="quality-runs")
    parser.add_argument("--json")
    args = parser.parse_args()
    models = args.models.split(",")
    python = torch_python(args.torch_python) if "torch" in models else None
    if "torch" in models and python is None:
        print("torch is not importable: the PyTorch baseline is left out", file=sys.stderr)
        models.remove("torch")
    rows = []
    for book in args.book:
        for i, minutes in enumerate(float(m) for m in args.minutes.split(",")):
            order = models if i % 2 == 0 else models[::-1]
            for model in order:
                seconds = 60 * minutes
                out = os.path.join(args.out, f"{os.path.basename(book)}-{model}-{minutes:g}m")
                row = (torch_row(book, seconds, python, args.out) if model == "torch"
                       else fastrnn_row(book, model, seconds, out))
                row.update(book=os.path.basename(book), minutes=minutes)
                rows.append(row)
                print(f"{row['book']:<24} {minutes:>4g} min  {model:<6} {row['bits']:.3f} bits/char "
                      f"({row['nats']:.3f} nats)  {row['chars_per_s']:>9,.0f} chars/s  {row['command']}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
