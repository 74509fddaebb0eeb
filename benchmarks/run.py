"""fastrnn benchmark suite: the Numba kernels against the NumPy reference, on one core.

    python benchmarks/run.py --book BOOK.txt          # full run (a few minutes)
    python benchmarks/run.py --book BOOK.txt --quick  # under a minute

Variants are interleaved round by round and reported as median (min-max); ratios are the
median of per-round ratios, so a slow moment of a shared machine hits both sides of a ratio.
Writes a JSON file with the machine description beside the numbers.
"""
from __future__ import annotations

import os

# BLAS on one thread: the reference figures are per core (the kernels' threads are set per
# measurement with numba.set_num_threads).
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from fastrnn import reference  # noqa: E402
from fastrnn.build import KernelSet, compile_kernels  # noqa: E402
from fastrnn.engine import Trainer  # noqa: E402
from fastrnn.plan import machine  # noqa: E402
from fastrnn.model import Hyper, init_state, save_checkpoint, with_streams  # noqa: E402
from fastrnn.sample import sample_indices  # noqa: E402
from fastrnn.text import build_vocab, load_book  # noqa: E402

# the reference's speed on the day cold starts are quoted for (the machines' speed varies
# 2-2.5x from day to day, so a wall time alone says little)
REFERENCE_DAY = 13_300


def flops_per_char(m: int, K: int) -> int:
    """Matrix-product flops per training character: forward W h and V h; backward dV, dW,
    W^T da and V^T g (2 flops per multiply-add)."""
    return 6 * m * m + 6 * K * m


def generated_text(n_chars: int = 400_000, K: int = 80, seed: int = 0) -> str:
    """A text with K distinct characters and word-like structure, for runs without a book."""
    rng = np.random.default_rng(seed)
    alphabet = [chr(c) for c in range(33, 33 + K - 2)] + [" ", "\n"]
    words = ["".join(rng.choice(alphabet[:-2], size=rng.integers(1, 9))) for _ in range(2000)]
    text = " ".join(rng.choice(words, size=n_chars // 5))
    text = "".join(alphabet) + text  # every character occurs
    return text[:n_chars]


def peak_gflops(n: int = 2000, repeats: int = 3) -> float:
    """Single-threaded float64 GFLOP/s of a large NumPy matrix product: this core's practical peak."""
    a, b = np.random.default_rng(0).random((2, n, n))
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def reference_train(state, book, updates: int) -> float:
    """chars/s of the reference: the classic loop in plain NumPy, on contiguous arrays of its
    own as hand-written code keeps them (the state's U is a transposed view of the flat buffer,
    which makes the reference's np.outer accumulation into it about 9 % slower)."""
    params, mem = _own_arrays(state.views()), _own_arrays(state.layout.views(state.adagrad))
    h, n, pos = state.h.copy(), state.hyper.seq_length, 0
    start = time.perf_counter()
    for _ in range(updates):
        if pos + n + 1 > book.shape[0]:
            pos, h = 0, np.zeros_like(h)
        loss, grads, h = reference.loss_and_grads(params, book[pos:pos + n], book[pos + 1:pos + n + 1], h)
        reference.adagrad_step(params, mem, grads)
        pos += n
    return updates * n / (time.perf_counter() - start)


def _own_arrays(views: dict) -> dict:
    """Contiguous copies of named parameter views."""
    return {name: np.ascontiguousarray(view) for name, view in views.items()}


def kernel_train(trainer, updates: int) -> float:
    n = trainer.hyper.seq_length
    return updates * n / _timed(lambda: trainer.run(updates))


def torch_trainer(vocab, book):
    """The same model in PyTorch (nn.RNN + Linear, batch 1, float64, Adagrad, value clipping),
    for an extra column when torch is installed; None otherwise. Returns a function that runs
    ``updates`` updates and returns chars/s."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    torch.manual_seed(0)
    m, K, n = 100, vocab.size, 25
    rnn = torch.nn.RNN(K, m, nonlinearity="tanh", dtype=torch.float64)
    out = torch.nn.Linear(m, K, dtype=torch.float64)
    params = list(rnn.parameters()) + list(out.parameters())
    with torch.no_grad():
        for p in params:
            p.normal_(0.0, 0.01) if p.dim() == 2 else p.zero_()
    opt = torch.optim.Adagrad(params, lr=0.1, eps=1e-8)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
    data = torch.from_numpy(book.astype(np.int64))
    state = {"h": torch.zeros(1, 1, m, dtype=torch.float64), "pos": 0}

    def run(updates: int) -> float:
        start = time.perf_counter()
        for _ in range(updates):
            pos = state["pos"]
            if pos + n + 1 > data.shape[0]:
                pos, state["h"] = 0, torch.zeros(1, 1, m, dtype=torch.float64)
            x = torch.nn.functional.one_hot(data[pos:pos + n], K).to(torch.float64).unsqueeze(1)
            seq, h = rnn(x, state["h"])
            loss = loss_fn(out(seq.squeeze(1)), data[pos + 1:pos + n + 1])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_value_(params, 5.0)
            opt.step()
            state["h"], state["pos"] = h.detach(), pos + n
        return updates * n / (time.perf_counter() - start)

    return run


def reference_sample(state, n: int) -> float:
    uniforms = np.random.default_rng(0).random(n)
    params = _own_arrays(state.views())
    return n / _timed(lambda: reference.sample(params, state.h, 0, n, uniforms))


def kernel_sample(state, n: int) -> float:
    rng = np.random.default_rng(0)
    return n / _timed(lambda: sample_indices(state.params, state.vocab, state.hyper.hidden, n, rng))


def summarize(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()), "rounds": v.tolist()}


# Runs a command in a child and prints its wall seconds and peak RSS (KiB): RUSAGE_CHILDREN of a
# fresh process covers that one command only.
MEASURE = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
           "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
           "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def measured_run(args, env=None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one command."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *args], check=True, capture_output=True,
                         text=True, env=env).stdout.split()
    return float(out[0]), int(out[1]) / 1024  # ru_maxrss is in KiB on Linux


def compile_and_startup(tmp: str, trained_state, book_path: str) -> dict:
    """Whole-process wall seconds of each command on an empty kernel cache (cold: what it
    compiles) and again on the cache it left (warm), and of `fastrnn --help`."""
    ckpt = os.path.join(tmp, "model.npz")
    save_checkpoint(ckpt, trained_state)
    text = os.path.join(tmp, "text.txt")
    with open(book_path, encoding="utf-8") as f:
        head = f.read(5000)
    with open(text, "w", encoding="utf-8") as f:
        f.write(head)
    cli = [sys.executable, "-m", "fastrnn"]
    commands = {
        "train": ["train", book_path, "--steps", "1", "--out", os.path.join(tmp, "run"), "--force", "-q"],
        # each gated cell with its recipe (the parallel build of the loop, on two or more cores)
        **{f"train_{cell}": ["train", book_path, "--cell", cell, "--steps", "1", "--out", os.path.join(tmp, cell),
                             "--force", "-q"] for cell in ("lstm", "gru")},
        "sample": ["sample", "--checkpoint", ckpt, "--len", "100", "--seed", "1"],
        "eval": ["eval", ckpt, text],
    }
    report = {}
    for name, args in commands.items():
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, f"numba-cache-{name}"))
        report[f"{name}_cold_s"] = measured_run(cli + args, env)[0]
        report[f"{name}_warm_s"] = min(measured_run(cli + args, env)[0] for _ in range(2))
    report["help_s"] = min(measured_run(cli + ["--help"], env)[0] for _ in range(3))
    return report


def peak_memory_mb(book_path: str, tmp: str) -> float:
    """Peak resident memory of a `fastrnn train` process (2,000 updates, compiled kernels
    cached by an earlier run), in MB."""
    train = [sys.executable, "-m", "fastrnn", "train", book_path, "--steps", "2000", "-q", "--force"]
    measured_run(train + ["--out", os.path.join(tmp, "warm")])  # fills the compile cache
    return measured_run(train + ["--out", os.path.join(tmp, "mem")])[1]


def huge_texts(sizes_mb=(100, 500)) -> list[dict]:
    """Time and peak memory of `fastrnn train` (one update) on generated texts of these sizes,
    first with an empty encoded-book cache, then again with the cache filled."""
    rows = []
    block = generated_text(1 << 20, seed=1).encode("utf-8")
    for mb in sizes_mb:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"generated-{mb}mb.txt")
            with open(path, "wb") as f:
                for _ in range(mb * 1_000_000 // len(block)):
                    f.write(block)
            env = dict(os.environ, FASTRNN_DATA=os.path.join(tmp, "data"))
            row = {"mb": os.path.getsize(path) / 1e6}
            for run_name in ("first", "cached"):
                row[f"{run_name}_s"], row[f"{run_name}_peak_mb"] = measured_run(
                    [sys.executable, "-m", "fastrnn", "train", path, "--out", os.path.join(tmp, run_name),
                     "--steps", "1", "--sample-every", "0", "-q"], env)
            rows.append(row)
            print(f"huge text {row['mb']:.0f} MB: first run {row['first_s']:.1f} s "
                  f"(peak {row['first_peak_mb']:.0f} MB), cached {row['cached_s']:.1f} s "
                  f"(peak {row['cached_peak_mb']:.0f} MB)", file=sys.stderr)
    return rows


def thread_counts(cores: int) -> list[int]:
    """1, 2, 4, ... up to ``cores``, and ``cores`` itself."""
    counts = [1 << i for i in range(cores.bit_length()) if 1 << i < cores]
    return counts + [cores]


def scaling(vocab, book, rounds: int, chars: int = 400_000, streams=(1, 4, 16, 64),
            float32_streams=(16, 64)) -> list[dict]:
    """Training chars/s for B streams on 1..all cores (float64, and float32 for the larger B),
    interleaved round by round, with the ratio to one float64 stream on one core measured in
    the same round."""
    import numba

    threads = thread_counts(numba.config.NUMBA_NUM_THREADS)
    variants = [(b, "float64") for b in streams] + [(b, "float32") for b in float32_streams]
    cases = [(b, dtype, t) for b, dtype in variants for t in threads]
    trainers = {(b, dtype): Trainer(with_streams(init_state(vocab, Hyper(streams=b, dtype=dtype)), book.shape[0]),
                                    book) for b, dtype in variants}
    for trainer in trainers.values():
        trainer.run(2)  # compiles the loop's builds once per dtype
    speeds = {case: [] for case in cases}
    for _ in range(rounds):
        for b, dtype, t in cases:
            numba.set_num_threads(t)
            speeds[(b, dtype, t)].append(kernel_train(trainers[(b, dtype)], max(1, chars // (25 * b))) * b)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    single = np.asarray(speeds[(1, "float64", 1)])
    return [{"streams": b, "dtype": dtype, "threads": t, "chars_per_s": summarize(speeds[(b, dtype, t)]),
             "vs_one_stream": summarize(np.asarray(speeds[(b, dtype, t)]) / single)} for b, dtype, t in cases]


def stream_quality(book, vocab, chars: int, seeds=(0, 1, 2)) -> dict:
    """Smooth loss after the same number of characters with 1 and with 16 streams, for a few
    seeds: runs from different seeds differ by a few nats, so one pair proves little."""
    out = {}
    for b in (1, 16):
        out[b] = []
        for seed in seeds:
            trainer = Trainer(with_streams(init_state(vocab, Hyper(streams=b, seed=seed)), book.shape[0]), book)
            out[b].append(float(trainer.run(chars // (25 * b))[1][-1]))
    return {"chars": chars, "seeds": list(seeds), "smooth_loss_1_stream": out[1], "smooth_loss_16_streams": out[16]}


def quality(book, vocab, updates: int) -> dict:
    """Smooth loss after ``updates`` updates of the classic algorithm (float64, seed 0)."""
    trainer = Trainer(init_state(vocab, Hyper()), book)
    smooth = []
    done = 0
    t = time.perf_counter()
    while done < updates:
        step = min(10_000, updates - done)
        smooth.append(float(trainer.run(step)[1][-1]))
        done += step
    return {"updates": updates, "smooth_loss": smooth[-1], "smooth_loss_every_10000": smooth,
            "seconds": time.perf_counter() - t}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--book", help="UTF-8 text to train on (default: a generated text with 80 characters)")
    ap.add_argument("--quick", action="store_true", help="fewer rounds, no quality run: under a minute")
    ap.add_argument("--rounds", type=int, help="interleaved rounds [5; 3 with --quick]")
    ap.add_argument("--quality-updates", type=int, default=100_000,
                    help="updates for the quality check [100000; 0 to skip, skipped with --quick]")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "latest.json"))
    ap.add_argument("--updates", type=int, nargs=2, metavar=("REFERENCE", "KERNEL"),
                    help="updates timed per round [100 6000; 40 2000 with --quick]")
    ap.add_argument("--huge", action="store_true",
                    help="also time `fastrnn train` start-up on generated 100 MB and 500 MB texts "
                         "(needs ~1.5 GB of disk)")
    ap.add_argument("--scaling", action="store_true",
                    help="also the streams x threads table and the 1- vs 16-stream quality check")
    ap.add_argument("--skip-startup", action="store_true",
                    help="leave out compile, start-up and memory figures (they start new processes)")
    args = ap.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    if args.book:
        vocab, book = load_book(args.book)
    else:
        text = generated_text()
        vocab = build_vocab(text)
        book = vocab.encode(text)
    m, n = 100, 25
    K = vocab.size
    ref_updates, kern_updates = args.updates or ((40, 2000) if args.quick else (100, 6000))
    print(f"machine: {machine()['cpu']}, {os.cpu_count()} cores; book: {args.book or 'generated'} "
          f"({book.shape[0]:,} chars, K={K}); m={m}, n={n}; {rounds} rounds", file=sys.stderr)
    for dtype in (np.float64, np.float32):
        compile_kernels(KernelSet(dtype, book.dtype, streams=1, sampler=True))
    trainers = {d: Trainer(init_state(vocab, Hyper(dtype=d)), book) for d in ("float64", "float32")}
    for tr in trainers.values():
        tr.run(100)  # leave the first steps (and page faults) out
    sample_state = trainers["float64"].state()
    torch_run = torch_trainer(vocab, book)
    results = {k: [] for k in ("reference", "float64", "float32", "sample_reference", "sample_kernel")}
    if torch_run:
        results["torch"] = []
        torch_run(20)
    for r in range(rounds):
        results["reference"].append(reference_train(init_state(vocab, Hyper()), book, ref_updates))
        if torch_run:
            results["torch"].append(torch_run(ref_updates))
        results["float64"].append(kernel_train(trainers["float64"], kern_updates))
        results["float32"].append(kernel_train(trainers["float32"], kern_updates))
        results["sample_reference"].append(reference_sample(sample_state, 500 if args.quick else 2000))
        results["sample_kernel"].append(kernel_sample(sample_state, 200_000 if args.quick else 1_000_000))
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in results.items()),
              file=sys.stderr)
    ratio = lambda a, b: summarize(np.asarray(results[a]) / np.asarray(results[b]))  # noqa: E731
    peak = peak_gflops()
    fpc = flops_per_char(m, K)
    report = {
        "machine": machine(),
        "book": args.book or "generated", "book_chars": int(book.shape[0]), "K": K, "m": m, "seq_length": n,
        "chars_per_s": {k: summarize(v) for k, v in results.items()},
        "ratios": {"float64_vs_reference": ratio("float64", "reference"),
                   "float32_vs_reference": ratio("float32", "reference"),
                   "sample_vs_reference": ratio("sample_kernel", "sample_reference"),
                   **({"torch_vs_reference": ratio("torch", "reference"),
                       "float64_vs_torch": ratio("float64", "torch")} if torch_run else {})},
        "peak_gflops_one_core": peak, "flops_per_char": fpc,
        "fraction_of_peak": {d: float(np.median(results[d])) * fpc / (peak * 1e9) for d in ("float64", "float32")},
        "epoch_seconds_float64": book.shape[0] / float(np.median(results["float64"])),
        "epoch_seconds_float32": book.shape[0] / float(np.median(results["float32"])),
    }
    if not args.skip_startup:
        with tempfile.TemporaryDirectory() as tmp:
            book_path = args.book
            if book_path is None:
                book_path = os.path.join(tmp, "generated.txt")
                with open(book_path, "w", encoding="utf-8") as f:
                    f.write(vocab.decode(book))
            report["startup"] = compile_and_startup(tmp, sample_state, book_path)
            report["peak_rss_mb_train"] = peak_memory_mb(book_path, tmp)
    if args.scaling:
        report["scaling"] = scaling(vocab, book, rounds, chars=100_000 if args.quick else 400_000)
        if not args.quick:
            report["stream_quality"] = stream_quality(book, vocab, 2_500_000)
    if args.huge:
        report["huge_texts"] = huge_texts()
    if not args.quick and args.quality_updates > 0:
        report["quality"] = quality(book, vocab, args.quality_updates)
    print_table(report)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwrote {args.out}")
    return report


def print_table(rep: dict) -> None:
    c, r = rep["chars_per_s"], rep["ratios"]
    fmt = lambda s: f"{s['median']:>12,.0f}  ({s['min']:,.0f}-{s['max']:,.0f})"  # noqa: E731
    fr = lambda s: f"{s['median']:.1f}x ({s['min']:.1f}-{s['max']:.1f})"  # noqa: E731
    print(f"\n{rep['machine']['cpu']}, one thread; K={rep['K']}, m={rep['m']}, n={rep['seq_length']}")
    print(f"{'training chars/s':<28}{'median (min-max)':>30}   vs reference")
    print(f"{'  reference (NumPy)':<28}{fmt(c['reference'])}")
    if "torch" in c:
        print(f"{'  PyTorch CPU (float64)':<28}{fmt(c['torch'])}   {fr(r['torch_vs_reference'])}")
    print(f"{'  kernels float64':<28}{fmt(c['float64'])}   {fr(r['float64_vs_reference'])}")
    print(f"{'  kernels float32':<28}{fmt(c['float32'])}   {fr(r['float32_vs_reference'])}")
    print(f"{'sampling chars/s':<28}")
    print(f"{'  reference (NumPy)':<28}{fmt(c['sample_reference'])}")
    print(f"{'  kernel':<28}{fmt(c['sample_kernel'])}   {fr(r['sample_vs_reference'])}")
    print(f"one core's peak (float64 matmul): {rep['peak_gflops_one_core']:.1f} GFLOP/s; "
          f"{rep['flops_per_char']:,} flops/char; fraction reached: float64 "
          f"{rep['fraction_of_peak']['float64']:.0%}, float32 {rep['fraction_of_peak']['float32']:.0%}")
    print(f"one epoch of this book, one stream: {rep['epoch_seconds_float64']:.1f} s in float64, "
          f"{rep['epoch_seconds_float32']:.1f} s in float32 (training time)")
    s = rep.get("startup")
    if s:
        commands = ("train", "train_lstm", "train_gru", "sample", "eval")
        print("whole commands, seconds on an empty kernel cache (cold) / on the cache they left (warm): "
              + "; ".join(f"{c} {s[c + '_cold_s']:.1f} / {s[c + '_warm_s']:.2f}" for c in commands)
              + f"; `fastrnn --help` {s['help_s']:.2f}")
        scale = c["reference"]["median"] / REFERENCE_DAY
        print(f"cold, in seconds of a {REFERENCE_DAY:,} chars/s reference day (x{scale:.2f}): "
              + "; ".join(f"{c} {s[c + '_cold_s'] * scale:.1f}" for c in commands))
    if rep.get("peak_rss_mb_train"):
        print(f"peak memory of `fastrnn train`: {rep['peak_rss_mb_train']:.0f} MB")
    if "scaling" in rep:
        print(f"\n{'streams':>8}{'dtype':>9}{'threads':>8}{'chars/s median (min-max)':>34}   "
              "vs 1 float64 stream, 1 thread")
        for row in rep["scaling"]:
            print(f"{row['streams']:>8}{row['dtype']:>9}{row['threads']:>8}{fmt(row['chars_per_s'])}   "
                  f"{fr(row['vs_one_stream'])}")
    if "stream_quality" in rep:
        q = rep["stream_quality"]
        losses = lambda key: ", ".join(f"{x:.2f}" for x in q[key])  # noqa: E731
        print(f"smooth loss after {q['chars']:,} characters, seeds {q['seeds']}: "
              f"1 stream {losses('smooth_loss_1_stream')}; 16 streams {losses('smooth_loss_16_streams')}")
    for row in rep.get("huge_texts", []):
        print(f"`fastrnn train` on a generated {row['mb']:.0f} MB text, one update: {row['first_s']:.1f} s "
              f"(peak {row['first_peak_mb']:.0f} MB), again with the encoded book cached {row['cached_s']:.1f} s "
              f"(peak {row['cached_peak_mb']:.0f} MB)")
    if "quality" in rep:
        q = rep["quality"]
        print(f"quality: smooth loss after {q['updates']:,} updates: {q['smooth_loss']:.2f} ({q['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
