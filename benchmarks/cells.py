"""fastrnn's cells against PyTorch's on the CPU: the same model trained the same way, side by side.

    python benchmarks/cells.py [--book BOOK.txt] [--only lstm256-b32,gru256-b32] [--rounds 5]
                               [--seconds 2] [--json OUT.json]

For each configuration both sides train the same model: one cell (``rnn``, ``gru`` or
``lstm``), hidden size m, L layers, one-hot inputs of the book's K characters, an output layer
m -> K, 25-character chunks from B streams spread evenly through the book, the hidden state
carried from chunk to chunk (and detached), the cross-entropy summed over each chunk and
averaged over the streams, every gradient clipped element-wise to [-5, 5], then one AdaGrad
step (learning rate 0.1, eps 1e-8: fastrnn's optimizer, and ``torch.optim.Adagrad`` on the
PyTorch side), in the same dtype on the same number of threads. PyTorch runs
``torch.nn.RNN/GRU/LSTM(input_size=K, hidden_size=m, num_layers=L)`` and ``torch.nn.Linear(m, K)``
on inputs one-hot encoded per chunk, started from fastrnn's initial weights; the first update's
losses of the two sides must agree, or the configuration is reported as not the same model
(and not timed).

Each side runs one update first (fastrnn compiles its kernels there, PyTorch allocates), then
the two are timed in turn for ``--seconds`` each, round after round; the speeds are training
characters per second (25 B per update), reported as median (min-max), and the ratio
fastrnn / PyTorch is the median of the per-round ratios. The PyTorch side runs where torch can
be imported; the fastrnn side always. A configuration that fastrnn cannot train yet is reported
as not available.

GFLOP/s count the matrix products a character needs when the input product is a gather of
weight columns (as fastrnn does it), forward and backward: 2 * 3 * (L G m^2 recurrent +
(L - 1) G m^2 input of the layers above the first + K m output), G being the cell's gate
multiple (1, 3, 4). They are set beside NumPy's matrix product on the same threads, measured in
the same run (in child processes, whose BLAS has that many threads): the recurrent product of an
LSTM 256 over 32 streams (1024x256 by 256x32) and a large one (2048^3).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from fastrnn.plan import machine
from fastrnn.cells import cell_of
from fastrnn.model import Hyper, init_state, with_streams
from fastrnn.text import build_vocab, load_book

SEQ_LENGTH = 25


@dataclass(frozen=True)
class Config:
    """One model trained by both sides."""

    name: str
    cell: str  # rnn, gru or lstm
    hidden: int
    layers: int
    streams: int
    threads: int
    dtype: str  # float32 or float64


CONFIGS = {c.name: c for c in (
    Config("lstm256-b32", "lstm", 256, 1, 32, 2, "float32"),
    Config("gru256-b32", "gru", 256, 1, 32, 2, "float32"),
    Config("lstm128-b1", "lstm", 128, 1, 1, 1, "float32"),
    Config("rnn100-b1-f64", "rnn", 100, 1, 1, 1, "float64"),
    Config("rnn100-b1-f32", "rnn", 100, 1, 1, 1, "float32"),
    # not run by default
    Config("lstm256x2-b32", "lstm", 256, 2, 32, 2, "float32"),
)}
DEFAULT = ("lstm256-b32", "gru256-b32", "lstm128-b1", "rnn100-b1-f64", "rnn100-b1-f32")

# NumPy matrix products timed beside the models: (rows, inner, columns)
GEMM_SHAPES = {"recurrent": (1024, 256, 32), "large": (2048, 2048, 2048)}


def flops_per_char(cell: str, m: int, K: int, layers: int = 1) -> int:
    """Matrix-product flops per training character, forward and backward (three products each,
    two flops per multiply-add), the first layer's input product being a gather: L G m^2
    recurrent, (L - 1) G m^2 input of the upper layers, K m output."""
    G = cell_of(cell).gates
    return 2 * 3 * (layers * G * m * m + (layers - 1) * G * m * m + K * m)


def generated_text(n_chars: int = 1_000_000, K: int = 65, seed: int = 0) -> str:
    """A text of K distinct characters (tiny Shakespeare's count) made of word-like groups, for
    runs without a book."""
    rng = np.random.default_rng(seed)
    letters = np.array([chr(c) for c in range(33, 33 + K - 2)])
    words = ["".join(rng.choice(letters, size=rng.integers(1, 9))) for _ in range(2000)]
    text = "".join(letters) + " \n" + " ".join(rng.choice(words, size=n_chars // 5))
    return text[:n_chars]


def summarize(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()), "rounds": v.tolist()}


# ----------------------------------------------------------------------------------------------
# the two sides: each offers first_loss() (the first update, which compiles or allocates) and
# run(updates) (training, returns seconds)

class FastrnnSide:
    def __init__(self, config: Config, vocab, book: np.ndarray):
        from fastrnn.engine import Trainer

        hyper = Hyper(hidden=config.hidden, seq_length=SEQ_LENGTH, streams=config.streams, dtype=config.dtype,
                      cell=config.cell, layers=config.layers)
        self.initial = with_streams(init_state(vocab, hyper), book.shape[0])
        self.trainer = Trainer(self.initial.copy(), book)

    def first_loss(self) -> float:
        return float(self.trainer.run(1)[0][0])

    def run(self, updates: int) -> float:
        start = time.perf_counter()
        self.trainer.run(updates)
        return time.perf_counter() - start


class TorchSide:
    """The model in PyTorch, from fastrnn's initial weights ``initial`` (a ``State``, read through
    ``Layout.torch_state_dict``) where given, else from PyTorch's own."""

    def __init__(self, config: Config, K: int, book: np.ndarray, initial=None):
        import torch

        self.torch, self.config, self.K = torch, config, K
        dtype = getattr(torch, config.dtype)
        module = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[config.cell]
        torch.manual_seed(0)
        self.rnn = module(input_size=K, hidden_size=config.hidden, num_layers=config.layers, dtype=dtype)
        self.head = torch.nn.Linear(config.hidden, K, dtype=dtype)
        if initial is not None:
            arrays = initial.layout.torch_state_dict(initial.params)
            tensors = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}
            self.rnn.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("head.")})
            self.head.load_state_dict({k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")})
        self.params = list(self.rnn.parameters()) + list(self.head.parameters())
        self.opt = torch.optim.Adagrad(self.params, lr=0.1, eps=1e-8)
        self.loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
        self.dtype = dtype
        self.data = torch.from_numpy(book.astype(np.int64))
        B = config.streams
        self.positions = np.arange(B, dtype=np.int64) * (book.shape[0] // B)  # where fastrnn's streams start
        self.offsets = np.arange(SEQ_LENGTH + 1, dtype=np.int64)
        shape = (config.layers, B, config.hidden)
        h = torch.zeros(shape, dtype=dtype)
        self.state = (h, torch.zeros(shape, dtype=dtype)) if config.cell == "lstm" else h

    def step(self) -> float:
        """One training update; returns its loss (summed over the chunk, averaged over streams)."""
        torch, n, B = self.torch, SEQ_LENGTH, self.config.streams
        ended = self.positions + n + 1 > self.data.shape[0]
        if ended.any():  # a stream at the end of the book starts it again, from h = 0
            self.positions[ended] = 0
            for s in (self.state if isinstance(self.state, tuple) else (self.state,)):
                s[:, torch.from_numpy(ended)] = 0.0
        chars = self.data[torch.from_numpy(self.positions[None, :] + self.offsets[:, None])]  # (n+1, B)
        x = torch.nn.functional.one_hot(chars[:-1], self.K).to(self.dtype)  # (n, B, K)
        out, state = self.rnn(x, self.state)
        loss = self.loss_fn(self.head(out).reshape(n * B, self.K), chars[1:].reshape(n * B)) / B
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_value_(self.params, 5.0)
        self.opt.step()
        self.state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        self.positions += n
        return loss.item()

    def first_loss(self) -> float:
        return self.step()

    def run(self, updates: int) -> float:
        start = time.perf_counter()
        for _ in range(updates):
            self.step()
        return time.perf_counter() - start


def torch_module():
    """torch, or None where it cannot be imported."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def set_threads(threads: int, torch=None) -> None:
    import numba

    numba.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)


def updates_for(side, seconds: float) -> int:
    """Updates that take about ``seconds``, from a warm-up that runs at least a tenth of it."""
    updates, spent = 1, side.run(1)
    while spent < max(0.1 * seconds, 0.02):
        updates *= 2
        spent = side.run(updates)
    return max(1, int(round(updates * seconds / spent)))


def same_loss(a: float, b: float, dtype: str) -> bool:
    return bool(np.isclose(a, b, rtol=1e-3 if dtype == "float32" else 1e-7, atol=0.0))


# ----------------------------------------------------------------------------------------------
# NumPy's matrix product on t threads (a child process: BLAS reads its thread count at start)

GEMM_CHILD = """
import json, sys, time
import numpy as np
dtype, shapes, seconds = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
rng, out = np.random.default_rng(0), {}
for name, (a, k, b) in shapes.items():
    x, y = rng.random((a, k)).astype(dtype), rng.random((k, b)).astype(dtype)
    x @ y
    def timed(reps):
        t = time.perf_counter()
        for _ in range(reps):
            x @ y
        return time.perf_counter() - t
    reps = 1
    while timed(reps) < seconds / 10:
        reps *= 2
    best = min(timed(reps) for _ in range(5))
    out[name] = 2 * a * k * b * reps / best / 1e9
print(json.dumps(out))
"""


def gemm_gflops(dtype: str, threads: int, seconds: float = 1.0, shapes=None) -> dict:
    """GFLOP/s of NumPy's matrix product of ``dtype`` on ``threads`` BLAS threads, best of five
    timings, for each of ``shapes`` (``GEMM_SHAPES``)."""
    env = dict(os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                        "MKL_NUM_THREADS")})
    out = subprocess.run([sys.executable, "-c", GEMM_CHILD, dtype, json.dumps(shapes or GEMM_SHAPES), str(seconds)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


# ----------------------------------------------------------------------------------------------

def prepare(config: Config, vocab, book, torch, seconds: float) -> dict:
    """Both sides of ``config``, past their first update and sized for ``seconds`` a measurement;
    an entry per side with its status ("ok", "not available", "differs", "skipped")."""
    K = vocab.size
    entry = {"config": asdict(config), "K": K, "flops_per_char": flops_per_char(config.cell, config.hidden, K,
                                                                               config.layers)}
    set_threads(config.threads, torch)
    print(f"{config.name}: fastrnn's first update (compiles its kernels) ...", file=sys.stderr)
    try:
        fast = FastrnnSide(config, vocab, book)
        t = time.perf_counter()
        entry["fastrnn_first_loss"] = fast.first_loss()
        entry["fastrnn_first_update_s"] = time.perf_counter() - t
        entry["fastrnn"] = {"status": "ok", "side": fast}
    except Exception as err:  # kernels not there (yet) for this cell, or failing: say so, go on
        entry["fastrnn"] = {"status": "not available", "why": f"{type(err).__name__}: {err}"}
        fast = None
    if torch is None:
        entry["torch"] = {"status": "skipped", "why": "torch is not installed"}
    else:
        side = TorchSide(config, K, book, fast.initial if fast else None)
        entry["torch_first_loss"] = side.first_loss()
        entry["torch"] = {"status": "ok", "side": side}
        if fast and not same_loss(entry["fastrnn_first_loss"], entry["torch_first_loss"], config.dtype):
            entry["fastrnn"] = {"status": "differs", "why": (
                f"its first loss {entry['fastrnn_first_loss']:.6g} is not PyTorch's {entry['torch_first_loss']:.6g} "
                "on the same weights and chunks")}
    for name in ("fastrnn", "torch"):
        if entry[name]["status"] == "ok":
            entry[name]["updates"] = updates_for(entry[name]["side"], seconds)
            entry[name]["chars_per_s"] = []
    return entry


def measure(configs, vocab, book, rounds: int = 5, seconds: float = 2.0, torch="auto") -> list[dict]:
    """Train every configuration on both sides, interleaved round by round; one entry per
    configuration with each side's status and speeds."""
    import numba

    if torch == "auto":
        torch = torch_module()
    cores = numba.config.NUMBA_NUM_THREADS
    configs = [c if c.threads <= cores else Config(**{**asdict(c), "threads": cores}) for c in configs]
    entries = [prepare(c, vocab, book, torch, seconds) for c in configs]
    chars = {e["config"]["name"]: SEQ_LENGTH * e["config"]["streams"] for e in entries}
    for r in range(rounds):
        line = []
        for e in entries:
            set_threads(e["config"]["threads"], torch)
            for name in ("fastrnn", "torch"):
                side = e[name]
                if side["status"] == "ok":
                    side["chars_per_s"].append(side["updates"] * chars[e["config"]["name"]]
                                               / side["side"].run(side["updates"]))
                    line.append(f"{e['config']['name']} {name} {side['chars_per_s'][-1]:,.0f}")
        print(f"round {r + 1}/{rounds}: " + ", ".join(line), file=sys.stderr)
    for e in entries:
        for name in ("fastrnn", "torch"):
            side = e[name]
            side.pop("side", None)
            if side["status"] == "ok":
                side["chars_per_s"] = summarize(side["chars_per_s"])
                side["gflops"] = side["chars_per_s"]["median"] * e["flops_per_char"] / 1e9
        if e["fastrnn"]["status"] == e["torch"]["status"] == "ok":
            e["fastrnn_vs_torch"] = summarize(np.asarray(e["fastrnn"]["chars_per_s"]["rounds"])
                                              / np.asarray(e["torch"]["chars_per_s"]["rounds"]))
    return entries


def torch_description(torch) -> dict | None:
    if torch is None:
        return None
    info = torch.__config__.parallel_info().splitlines()
    return {"version": torch.__version__, "parallel": [line.strip() for line in info if "backend" in line
                                                       or line.startswith(("OpenMP", "Intel", "MKL"))]}


def vector_isa() -> dict:
    """The CPU as LLVM (and so Numba) names it, and whether it has 512-bit vectors: on CPUs with
    AVX-512, libraries that use it (PyTorch's oneDNN) can pass NumPy's OpenBLAS product."""
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    return {"llvm_cpu": llvm.get_host_cpu_name(), "avx2": bool(features.get("avx2")),
            "avx512f": bool(features.get("avx512f"))}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--book", help="UTF-8 text to train on (default: a generated text of 65 characters)")
    ap.add_argument("--only", help=f"comma-separated configurations [{','.join(DEFAULT)}; also: "
                                   f"{','.join(c for c in CONFIGS if c not in DEFAULT)}]")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds [5]")
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement [2]")
    ap.add_argument("--json", metavar="OUT", help="also write the report to this JSON file")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(DEFAULT)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        ap.error(f"unknown configuration {', '.join(unknown)}: one of {', '.join(CONFIGS)}")
    if args.book:
        vocab, book = load_book(args.book)
    else:
        text = generated_text()
        vocab = build_vocab(text)
        book = vocab.encode(text)
    load_start = os.getloadavg()
    if load_start[0] > 0.5:
        print(f"warning: the machine is busy (load average {load_start[0]:.1f}): speeds will vary", file=sys.stderr)
    torch = torch_module()
    if torch is None:
        print("PyTorch side skipped: torch is not installed", file=sys.stderr)
    print(f"machine: {machine()['cpu']}, {os.cpu_count()} cores; book: {args.book or 'generated'} "
          f"({book.shape[0]:,} chars, K={vocab.size}); {args.rounds} rounds of {args.seconds:g} s", file=sys.stderr)
    entries = measure([CONFIGS[n] for n in names], vocab, book, args.rounds, args.seconds, torch)
    gemm = {}
    for e in entries:
        key = f"{e['config']['dtype']}/{e['config']['threads']}"
        if key not in gemm:
            gemm[key] = gemm_gflops(e["config"]["dtype"], e["config"]["threads"], min(args.seconds, 1.0))
        if e["fastrnn"]["status"] == "ok":
            e["fastrnn"]["fraction_of_gemm"] = {shape: e["fastrnn"]["gflops"] / rate
                                                for shape, rate in gemm[key].items()}
    report = {"machine": {**machine(), **vector_isa()}, "torch": torch_description(torch),
              "date": time.strftime("%Y-%m-%d"), "load_average": {"start": load_start, "end": os.getloadavg()},
              "book": args.book or "generated", "book_chars": int(book.shape[0]), "K": vocab.size,
              "seq_length": SEQ_LENGTH, "rounds": args.rounds, "seconds": args.seconds,
              "gemm_gflops": gemm, "gemm_shapes": GEMM_SHAPES, "configs": entries}
    print_table(report)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"\nwrote {args.json}")
    return report


def print_table(rep: dict) -> None:
    fmt = lambda s: f"{s['median']:>10,.0f} ({s['min']:,.0f}-{s['max']:,.0f})"  # noqa: E731
    torch = rep["torch"]
    print(f"\n{rep['machine']['cpu']} ({rep['machine']['llvm_cpu']}, "
          f"{'AVX-512' if rep['machine']['avx512f'] else 'no AVX-512'}), {rep['machine']['cores']} cores, "
          f"numba {rep['machine']['numba']}, "
          f"torch {torch['version'] if torch else 'not installed'}; K={rep['K']}, n={rep['seq_length']}; "
          "AdaGrad 0.1 and element-wise clip 5 on both sides; load average "
          f"{rep['load_average']['start'][0]:.1f} at the start, {rep['load_average']['end'][0]:.1f} at the end")
    print(f"{'configuration':<15}{'cell':>5}{'m':>5}{'L':>3}{'B':>4}{'thr':>4}{'dtype':>8}"
          f"{'fastrnn chars/s':>30}{'PyTorch chars/s':>30}{'ratio':>7}{'GFLOP/s':>9}{'of gemm':>9}")
    for e in rep["configs"]:
        c, f, t = e["config"], e["fastrnn"], e["torch"]
        fast = fmt(f["chars_per_s"]) if f["status"] == "ok" else f["status"]
        tor = fmt(t["chars_per_s"]) if t["status"] == "ok" else t["status"]
        ratio = f"{e['fastrnn_vs_torch']['median']:.2f}x" if "fastrnn_vs_torch" in e else "-"
        gf = f"{f['gflops']:.1f}" if f["status"] == "ok" else "-"
        frac = f"{f['fraction_of_gemm']['recurrent']:.0%}" if "fraction_of_gemm" in f else "-"
        print(f"{c['name']:<15}{c['cell']:>5}{c['hidden']:>5}{c['layers']:>3}{c['streams']:>4}{c['threads']:>4}"
              f"{c['dtype']:>8}{fast:>30}{tor:>30}{ratio:>7}{gf:>9}{frac:>9}")
    for e in rep["configs"]:
        for name in ("fastrnn", "torch"):
            if "why" in e[name] and e[name]["status"] != "skipped":
                print(f"  {e['config']['name']} {name}: {e[name]['status']}: {e[name]['why']}")
    for e in rep["configs"]:
        losses = "; first update's loss: " + ", ".join(
            f"{side} {e[side + '_first_loss']:.6g}" for side in ("fastrnn", "torch") if side + "_first_loss" in e)
        torch_gf = (f", PyTorch {e['torch']['gflops']:.1f} GFLOP/s of that count"
                    if e["torch"]["status"] == "ok" else "")
        print(f"  {e['config']['name']}: {e['flops_per_char']:,} flops/char{torch_gf}{losses}")
    shapes = rep["gemm_shapes"]
    print("NumPy matrix product, GFLOP/s (dtype/threads): " + "; ".join(
        f"{key}: " + ", ".join(f"{'x'.join(map(str, shapes[s]))} {v:.0f}" for s, v in rates.items())
        for key, rates in rep["gemm_gflops"].items()))
    print("'of gemm': fastrnn's GFLOP/s over the matrix product of the recurrent shape "
          f"({'x'.join(map(str, shapes['recurrent']))}) in the same dtype on the same threads")


if __name__ == "__main__":
    main()
