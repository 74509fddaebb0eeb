"""Compare this checkout with another version of fastrnn (a refactor against the commit before
it): the same training bit for bit, and interleaved speed.

    git worktree add /tmp/before <commit>
    python benchmarks/versions.py --book BOOK --other /tmp/before [--rounds 9] [--cpu-name znver3]

Trains 1,500 updates (seed 3) with 1 and 16 streams in float64 and float32, 60 of a small
LSTM with the gated recipe's settings and 60 of a two-layer GRU with RMSprop, under each
version and compares every parameter, optimizer state, hidden state, loss and best model, and
a text sampled from and a text scored by the classic model, the LSTM and the GRU; then times
one stream (float64, float32; one thread), 16 streams (float64, two threads) and the LSTM and
GRU recipes (two threads) round by round, alternating which version goes first, and prints
the median ratio this/other with its range.
Each measurement is a fresh process, so each version uses its own code and kernel cache.
``--cpu-name`` compiles both for another CPU (NUMBA_CPU_NAME): ``znver3`` measures the 256-bit
(AVX2) kernels on a machine with AVX-512, with the host's features less AVX-512
(NUMBA_CPU_FEATURES, unless ``--cpu-features`` gives them).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# the Trainer of either version (fastrnn/train.py was renamed trainer.py, whose Trainer moved
# to engine.py)
FIND_TRAINER = """
import importlib, os
import fastrnn
def trainer_class():
    for name in ("engine", "trainer", "train"):
        if os.path.exists(os.path.join(fastrnn.__path__[0], name + ".py")):
            return importlib.import_module("fastrnn." + name).Trainer
"""

TRAJECTORY = FIND_TRAINER + """
import sys
import numpy as np
from fastrnn.cache import load_corpus_cached
from fastrnn.model import Hyper, init_state, with_streams
Trainer = trainer_class()
vocab, book = load_corpus_cached(sys.argv[1], "auto", "utf-8", 26, "")
out = {}
for streams in (1, 16):
    for dtype in ("float64", "float32"):
        t = Trainer(with_streams(init_state(vocab, Hyper(streams=streams, dtype=dtype, seed=3)), book.shape[0]), book)
        losses, smooths = zip(*(t.run(500) for _ in range(3)))
        state, best = t.state(), t.best_state()
        key = f"{streams}_{dtype}_"
        out.update({key + "params": state.params, key + "mem": state.adagrad, key + "h": state.h,
                    key + "losses": np.concatenate(losses), key + "smooths": np.concatenate(smooths),
                    key + "best_params": best.params, key + "best_h": best.h,
                    key + "positions": np.array([state.update, state.position, best.update, best.position])})
        if streams == 1 and dtype == "float64":
            classic = state
# a gated cell with the recipe's settings at a smaller size: Adam with weight decay, cosine,
# the norm's clip, an embedding, dropout, 32 streams in blocks (the parallel build on two
# threads); and a GRU of two layers with RMSprop, weight decay and the element-wise clip
GATED = dict(cell="lstm", hidden=96, seq_length=64, streams=32, dtype="float32", optimizer="adam", eta=0.004,
             schedule="cosine", schedule_updates=60, clip_norm=5.0, embedding=32, dropout=0.1, weight_decay=0.1,
             seed=3)
GRU = dict(cell="gru", layers=2, hidden=48, seq_length=32, streams=8, dtype="float64", optimizer="rmsprop",
           eta=0.002, clip=1.0, weight_decay=0.01, seed=3)
models = {"classic": classic}
for name, settings in (("lstm", GATED), ("gru", GRU)):
    t = Trainer(with_streams(init_state(vocab, Hyper(**settings)), book.shape[0]), book)
    losses, smooths = zip(*(t.run(20) for _ in range(3)))
    state, best = t.state(), t.best_state()
    models[name] = state
    out.update({f"{name}_params": state.params, f"{name}_opt_state": state.opt_state, f"{name}_h": state.stream_h,
                f"{name}_losses": np.concatenate(losses), f"{name}_smooths": np.concatenate(smooths),
                f"{name}_best_params": best.params, f"{name}_best_h": best.stream_h})
# each model's sampler and scorer, from its carried state
from fastrnn.evaluate import evaluate_text
from fastrnn.sample import sample_text
text = vocab.decode(book[:3000])
for name, state in models.items():
    out[f"{name}_sample"] = np.array([ord(c) for c in sample_text(state, 300, seed=5)])
    out[f"{name}_score"] = np.array(evaluate_text(state, text)["nats_per_char"])
np.savez(sys.argv[2], **out)
"""

SPEED = FIND_TRAINER + """
import sys, time
import numba
from fastrnn.cache import load_corpus_cached
from fastrnn.model import Hyper, init_state, with_streams
Trainer = trainer_class()
from fastrnn.recipes import RECIPES
streams, dtype, threads, updates = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
numba.set_num_threads(threads)
vocab, book = load_corpus_cached(sys.argv[1], "auto", "utf-8", 26, "")
hyper = Hyper(streams=streams, dtype=dtype) if sys.argv[6] == "rnn" else Hyper(
    cell=sys.argv[6], **{k: v for k, v in RECIPES[sys.argv[6]].items() if k != "schedule"})
t = Trainer(with_streams(init_state(vocab, hyper), book.shape[0]), book)
t.run(max(200 // hyper.seq_length, 3))
best = 0.0
for _ in range(3):
    start = time.perf_counter()
    t.run(updates)
    best = max(best, updates * hyper.seq_length * hyper.streams / (time.perf_counter() - start))
print(best)
"""

# (streams, dtype, threads, updates, cell): the gated cell with its whole recipe (a constant
# rate: the schedule changes no arithmetic)
CONFIGS = [(1, "float64", 1, 3000, "rnn"), (1, "float32", 1, 5000, "rnn"), (16, "float64", 2, 400, "rnn"),
           (32, "float32", 2, 12, "lstm"), (32, "float32", 2, 12, "gru")]


def python(root: str, code: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(root))
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                          cwd=tempfile.gettempdir())
    if done.returncode:
        sys.exit(f"{root}: {done.stderr.strip().splitlines()[-1]}")
    return done.stdout


def features_without_avx512() -> str:
    """The host CPU's features as NUMBA_CPU_FEATURES takes them, every AVX-512 (and AVX10) one off."""
    from llvmlite import binding

    return ",".join(("+" if on and "avx512" not in name and not name.startswith("avx10") else "-") + name
                    for name, on in sorted(binding.get_host_cpu_features().items()))


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--book", required=True)
    parser.add_argument("--other", required=True, help="the root of another fastrnn checkout")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--cpu-name", help="compile for this CPU (NUMBA_CPU_NAME), e.g. znver3: AVX2 only")
    parser.add_argument("--cpu-features", help="with --cpu-name: its LLVM features (default: the host's less AVX-512)")
    args = parser.parse_args()
    if args.cpu_name:  # every child process inherits them
        os.environ["NUMBA_CPU_NAME"] = args.cpu_name
        os.environ["NUMBA_CPU_FEATURES"] = args.cpu_features or features_without_avx512()
    book = os.path.abspath(args.book)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, root in (("this", HERE), ("other", args.other)):
            files[name] = os.path.join(tmp, f"{name}.npz")
            python(root, TRAJECTORY, book, files[name])
        this, other = np.load(files["this"]), np.load(files["other"])
        differ = [k for k in this.files if not np.array_equal(this[k], other[k])]
        print(f"trajectories: {len(this.files) - len(differ)} of {len(this.files)} arrays equal bit for bit"
              + (f"; differ: {', '.join(differ)}" if differ else ""))
    ratios = {c: [] for c in CONFIGS}
    for r in range(args.rounds):
        for config in CONFIGS:
            order = (HERE, args.other) if r % 2 == 0 else (args.other, HERE)
            speed = {root: float(python(root, SPEED, book, *map(str, config))) for root in order}
            ratios[config].append(speed[HERE] / speed[args.other])
    for (streams, dtype, threads, _, cell), values in ratios.items():
        print(f"{cell} {streams:>2} streams {dtype} {threads} thread(s): this/other {statistics.median(values):.3f} "
              f"({min(values):.3f}-{max(values):.3f})")


if __name__ == "__main__":
    main()
