"""Where text and scores start: h = 0 against the checkpoint's carried state, along long runs.

    python benchmarks/start_state.py --book BOOK [--updates 400000] [--every 10000]
        [--dtypes float64 float32] [--seeds 1 2 3] [--streams B] [--restart-every R] [--jobs 2]

Trains each (dtype, seed) on the first nine tenths of BOOK (as ``--val-fraction 0.1``) and at
every ``--every`` updates scores the held-out tenth from h = 0 and from the carried state (the
default of ``fastrnn eval`` and validation), and samples a 1,000-character passage from each
start (h = 0; the carried state fed its next character, the default of ``fastrnn sample``). A
passage is noise when under 95 % of its characters are among the book's 40 commonest. The
best passage is that of the checkpoint with the lowest validation loss by each rule, as a run
with ``--val-fraction`` would pick it. Writes ``benchmarks/results/start_state.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

COMMONEST = 40
NOISE_BELOW = 0.95
PASSAGE = 1000


def common_share(indices: np.ndarray, common: np.ndarray) -> float:
    """Fraction of ``indices`` among the ``common`` character indices."""
    return float(np.isin(indices, common).mean()) if indices.size else 1.0


def one_run(book_path: str, dtype: str, seed: int, updates: int, every: int, streams: int,
            restart_every: int, threads: int) -> dict:
    import numba

    # runs side by side share the cores: parallel kernels with more threads than cores slow
    # down by orders of magnitude
    numba.set_num_threads(threads)
    from fastrnn.cache import load_corpus_cached
    from fastrnn.engine import Trainer
    from fastrnn.evaluate import TextScorer
    from fastrnn.model import Hyper, init_state, with_streams
    from fastrnn.sample import sample_indices, start_state

    vocab, encoded = load_corpus_cached(book_path, "auto", "utf-8", 26, "")
    val_chars = int(round(0.1 * encoded.shape[0]))
    train_part, val_part = encoded[:-val_chars], encoded[-val_chars:]
    common = np.argsort(np.bincount(train_part, minlength=vocab.size))[::-1][:COMMONEST]
    hyper = Hyper(seed=seed, dtype=dtype, streams=streams, restart_every=restart_every)
    trainer = Trainer(with_streams(init_state(vocab, hyper), train_part.shape[0]), train_part)
    scorer = TextScorer(hyper.hidden, vocab.size, np.dtype(dtype), train_part.dtype)
    rows = []
    start = time.perf_counter()
    while trainer.update < updates:
        trainer.run(min(every, updates - trainer.update))
        state = trainer.state()
        row = {"update": state.update, "smooth_loss": state.smooth_loss}
        for rule, from_zero in (("zero", True), ("carried", False)):
            h, fed = start_state(state, from_zero)
            loss, count = scorer.total_loss(state.params, val_part, h)
            row[f"val_bits_{rule}"] = loss / count / math.log(2)
            passage = sample_indices(state.params, vocab, hyper.hidden, PASSAGE,
                                     np.random.default_rng([seed, state.update]), h=h, prime=fed)
            row[f"common_{rule}"] = common_share(passage, common)
            row[f"passage_{rule}"] = vocab.decode(passage[:120])
        rows.append(row)
    summary = {"dtype": dtype, "seed": seed, "streams": streams, "restart_every": restart_every,
               "seconds": time.perf_counter() - start, "checkpoints": rows}
    for rule in ("zero", "carried"):
        vals = [r[f"val_bits_{rule}"] for r in rows]
        best = rows[int(np.argmin(vals))]
        summary[rule] = {
            "worst_val_bits": max(vals), "best_val_bits": min(vals),
            "noisy_passages": sum(r[f"common_{rule}"] < NOISE_BELOW for r in rows),
            "best_update": best["update"], "best_passage_common": best[f"common_{rule}"],
            "best_passage_noise": best[f"common_{rule}"] < NOISE_BELOW,
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--book", required=True)
    parser.add_argument("--updates", type=int, default=400_000)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--restart-every", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "start_state.json"))
    args = parser.parse_args()
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    configs = [(args.book, d, s, args.updates, args.every, args.streams, args.restart_every, threads)
               for d in args.dtypes for s in args.seeds]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(one_run, *zip(*configs)))
    print(f"{'dtype':8} {'seed':>4}  {'worst val bits/char':>21}  {'noisy passages':>15}  "
          f"{'best passage noise':>19}")
    print(f"{'':8} {'':>4}  {'h = 0':>10} {'carried':>10}  {'h = 0':>7} {'carried':>7}  {'h = 0':>9} {'carried':>9}")
    for r in runs:
        z, c = r["zero"], r["carried"]
        n = len(r["checkpoints"])
        print(f"{r['dtype']:8} {r['seed']:>4}  {z['worst_val_bits']:>10.3f} {c['worst_val_bits']:>10.3f}  "
              f"{z['noisy_passages']:>3}/{n:<3} {c['noisy_passages']:>3}/{n:<3}  "
              f"{str(z['best_passage_noise']):>9} {str(c['best_passage_noise']):>9}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    from fastrnn.plan import machine

    with open(args.out, "w") as f:
        json.dump({"machine": machine(), "args": vars(args), "runs": runs}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
