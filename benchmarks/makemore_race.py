"""fastrnn against makemore on a list of words: the same seconds each, and the test loss each reaches.

    python benchmarks/makemore_race.py --makemore makemore.py --list names.txt [--seconds 150]
        [--models transformer,gru] [--fastrnn-args "--cell lstm"] [--skip-fastrnn] [--out DIR]

makemore (https://github.com/karpathy/makemore, MIT licence; download its makemore.py from there,
and names.txt for its list of names) trains models that make more of "one thing per line". It
runs here unchanged, as a process of its own; it needs torch and tensorboard (the `bench` extra).

The split: makemore strips every line, drops the empty ones, seeds torch with 3407 (its default
--seed) and holds out the words at the last min(1000, 10 %) places of torch.randperm. The same is
done here with the same torch, checked against makemore's own create_datasets (imported from the
given file) word for word, and against the sizes makemore prints in each run; train.txt and
test.txt (one word a line) are written to the output directory.

Each makemore model (--type transformer, its default, then --type gru) trains on the whole list
(it splits it itself) with its defaults, in --out/makemore-TYPE, for exactly --seconds of wall
time from the start of its process: its start-up (importing torch) and its evaluations are inside
those seconds. Then its process group gets SIGTERM. makemore evaluates its test loss every 500
steps and saves model.pt only when that loss is the best so far, so the model scored is that last
saved one (the weights it trained after it are lost with the process): its test loss is computed
here with makemore's own classes on the whole test split, twice: with makemore's evaluate (the
mean of per-batch mean losses over batches of 100 words, which weighs batches equally) and as
the mean over every character predicted (each word's letters and its end token, each from the
start token: what fastrnn's eval of a lines file counts). The last test loss makemore printed
is reported too, with its step.

fastrnn trains on train.txt as documents (`--format lines`), validated on test.txt
(`--val-file`: best.npz is best on it, as makemore's model.pt is best on its test words) for
`--time-limit SECONDS`, which counts training time only: fastrnn's start-up, kernel loading and
validation are outside it (the kernels are compiled before, by a one-update run with the same
arguments, so no compilation is inside the run). Its test loss is `fastrnn eval best.npz test.txt
--format lines --json`: nats per character over the test words, each from the start state, its
end marker counted. The time it spent outside the limit is reported.

Runs are sequential, never two at once. Prints a table and writes race.json to --out.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

EVAL_KEY = "nats_per_char"  # the key of `fastrnn eval --json` read as the test loss
SEED = 3407  # makemore's default --seed, which fixes its split
EVAL_BATCH = 100  # words a batch when scoring a makemore model (as makemore's own evaluations)
STEP_LINE = re.compile(r"^step (\d+) \| loss \S+ \| step time ([\d.]+)ms$")
EVAL_LINE = re.compile(r"^step (\d+) train loss: (\S+) test loss: (\S+)$")
SAVED_LINE = re.compile(r"^test loss \S+ is the best so far, saving model to ")
SPLIT_LINE = re.compile(r"^split up the dataset into (\d+) training examples and (\d+) test examples$")


def read_words(path: str) -> list[str]:
    """The words of a list as makemore reads them: each line stripped, the empty ones dropped."""
    with open(path, encoding="utf-8") as f:
        return [w for w in (line.strip() for line in f.read().splitlines()) if w]


def split_like_makemore(words: list[str]) -> tuple[list[str], list[str]]:
    """makemore's train and test words: its seed, then the last places of a random permutation."""
    import torch

    torch.manual_seed(SEED)  # makemore draws nothing from torch between its seed and randperm
    test_size = min(1000, int(len(words) * 0.1))
    order = torch.randperm(len(words)).tolist()
    return [words[i] for i in order[:-test_size]], [words[i] for i in order[-test_size:]]


def load_makemore(path: str):
    """makemore.py as a module (its training runs only under ``__main__``)."""
    spec = importlib.util.spec_from_file_location("makemore", path)
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(module)
    module.args = SimpleNamespace(device="cpu")  # its evaluate reads the device from the command's args
    return module


def makemore_datasets(makemore, list_path: str):
    """makemore's own train and test datasets, split as its command splits them."""
    import torch

    torch.manual_seed(SEED)
    with contextlib.redirect_stdout(io.StringIO()):
        return makemore.create_datasets(list_path)


def check_split(makemore, list_path: str, train: list[str], test: list[str]) -> None:
    """Stop unless the split made here is makemore's, word for word."""
    train_set, test_set = makemore_datasets(makemore, list_path)
    if train_set.words != train or test_set.words != test:
        raise SystemExit("the split differs from makemore's create_datasets: this torch or makemore.py "
                         "does not split as this script assumes")


def run_makemore(script: str, list_path: str, model_type: str, seconds: float, work_dir: str) -> dict:
    """makemore's command on the whole list for `seconds` of wall time, then SIGTERM; what its log says."""
    os.makedirs(work_dir, exist_ok=True)
    log_path = os.path.join(work_dir, "log.txt")
    model_path = os.path.join(work_dir, "model.pt")
    if os.path.exists(model_path):
        os.remove(model_path)  # a model left by an earlier race would be scored as this one's
    args = [sys.executable, script, "--input-file", list_path, "--work-dir", work_dir, "--type", model_type]
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # its log up to the moment it is stopped
    first_step = []  # seconds from the start to its first step's line: its start-up
    start = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    copying = threading.Thread(target=copy_log, args=(proc.stdout, log_path, start, first_step))
    copying.start()
    try:
        proc.wait(timeout=seconds)
        copying.join()
        raise SystemExit(f"makemore --type {model_type} ended by itself (exit {proc.returncode}) before "
                         f"{seconds:g} s; see {log_path}")
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # its data loader's workers too
    wall = time.monotonic() - start
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    copying.join()
    with open(log_path) as log:
        return dict(read_log(log.read().splitlines()), wall_s=wall, startup_s=first_step[0] if first_step else None,
                    log=log_path)


def copy_log(stream, log_path: str, start: float, first_step: list) -> None:
    """makemore's output into its log, noting when its first step was done."""
    with open(log_path, "w") as log:
        for line in stream:
            if not first_step and STEP_LINE.match(line.rstrip("\n")):
                first_step.append(time.monotonic() - start)
            log.write(line)


def read_log(lines: list[str]) -> dict:
    """Steps, step times, test losses and the split's sizes from makemore's output."""
    logged, step_ms, evals, saved_at, sizes = -1, [], [], None, None
    for line in lines:
        if m := STEP_LINE.match(line):
            logged = int(m[1])
            if logged > 0:  # the first step warms up
                step_ms.append(float(m[2]))
        elif m := EVAL_LINE.match(line):
            evals.append((int(m[1]), float(m[3])))
        elif SAVED_LINE.match(line):
            saved_at = evals[-1][0]
        elif m := SPLIT_LINE.match(line):
            sizes = (int(m[1]), int(m[2]))
    return {
        "steps_at_least": logged + 1,  # it prints every 10th step, counted from 0
        "median_step_ms": statistics.median(step_ms) if step_ms else None,
        "last_printed_test_loss": evals[-1][1] if evals else None,
        "last_printed_step": evals[-1][0] if evals else None,
        "saved_at_step": saved_at,
        "split_sizes": sizes,
    }


def score_makemore(makemore, list_path: str, model_type: str, model_path: str) -> dict:
    """The test loss of makemore's saved model: makemore's evaluate, and the mean per character."""
    import torch
    from torch.nn import functional as F

    _, test_set = makemore_datasets(makemore, list_path)
    config = makemore.ModelConfig(vocab_size=test_set.get_vocab_size(), block_size=test_set.get_output_length())
    # ModelConfig's sizes are the command's defaults (4 layers, 4 heads, 64 channels)
    models = {"transformer": makemore.Transformer, "bigram": makemore.Bigram, "mlp": makemore.MLP,
              "bow": makemore.BoW, "rnn": lambda c: makemore.RNN(c, cell_type="rnn"),
              "gru": lambda c: makemore.RNN(c, cell_type="gru")}
    with contextlib.redirect_stdout(io.StringIO()):
        model = models[model_type](config)
    model.load_state_dict(torch.load(model_path, map_location="cpu"))
    torch.manual_seed(SEED)  # its evaluate shuffles the batches, which moves its batch-weighted mean
    batch_weighted = makemore.evaluate(model, test_set, batch_size=EVAL_BATCH)
    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for x, y in torch.utils.data.DataLoader(test_set, batch_size=EVAL_BATCH):
            logits, _ = model(x, y)
            total += F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=-1,
                                     reduction="sum").item()
            count += int((y != -1).sum())
    return {"test_nats_per_char": total / count, "makemore_evaluate": batch_weighted, "predicted": count}


def fastrnn(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "fastrnn", *args], check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"fastrnn {' '.join(args)} failed:\n{proc.stderr.strip()}")
    return proc


def run_fastrnn(out: str, seconds: float, extra: list[str]) -> dict:
    """fastrnn on train.txt for `seconds` of training, validated on test.txt; its test loss."""
    train, test = os.path.join(out, "train.txt"), os.path.join(out, "test.txt")
    common = [train, "--format", "lines", "--val-file", test, *extra, "--force", "-q"]
    fastrnn("train", *common, "--steps", "1", "--out", os.path.join(out, "fastrnn-warm-up"))  # compiles
    run_dir = os.path.join(out, "fastrnn")
    start = time.monotonic()
    fastrnn("train", *common, "--time-limit", f"{seconds:g}s", "--out", run_dir)
    wall = time.monotonic() - start
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    score = json.loads(fastrnn("eval", os.path.join(run_dir, "best.npz"), test, "--format", "lines",
                               "--json").stdout)
    if score.get("unknown_chars"):
        print(f"fastrnn: {score['unknown_chars']} test characters outside the training vocabulary were skipped",
              file=sys.stderr)
    return {"model": " ".join(["fastrnn", *extra]), "seconds": summary["seconds"], "wall_s": wall,
            "outside_limit_s": wall - summary["seconds"], "steps": summary["updates"], "chars": summary["chars"],
            "test_nats_per_char": score[EVAL_KEY],
            "how": f"best.npz on test.txt (fastrnn eval --format lines, '{EVAL_KEY}')"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--makemore", required=True, help="makemore.py, from https://github.com/karpathy/makemore")
    parser.add_argument("--list", required=True, help="one word a line (makemore's names.txt)")
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--models", default="transformer,gru", help="makemore's --type values ('' for none)")
    parser.add_argument("--fastrnn-args", default="", help="more arguments of fastrnn train, as one string")
    parser.add_argument("--skip-fastrnn", action="store_true")
    parser.add_argument("--out", default="makemore-race")
    args = parser.parse_args()
    import torch

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    list_path = os.path.abspath(args.list)
    makemore = load_makemore(args.makemore)
    train, test = split_like_makemore(read_words(list_path))
    check_split(makemore, list_path, train, test)
    for name, words in (("train.txt", train), ("test.txt", test)):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write("\n".join(words) + "\n")
    print(f"split: {len(train)} training words, {len(test)} test words (makemore's, checked word for word); "
          f"torch {torch.__version__}", file=sys.stderr)

    results = []
    for model_type in filter(None, args.models.split(",")):
        print(f"makemore --type {model_type}: {args.seconds:g} s...", file=sys.stderr)
        work_dir = os.path.join(out, f"makemore-{model_type}")
        ran = run_makemore(os.path.abspath(args.makemore), list_path, model_type, args.seconds, work_dir)
        if ran["split_sizes"] not in (None, (len(train), len(test))):
            raise SystemExit(f"makemore split the list into {ran['split_sizes']}, not ({len(train)}, {len(test)})")
        row = {"model": f"makemore {model_type}", "seconds": args.seconds, "steps": ran["steps_at_least"], **ran}
        model_path = os.path.join(work_dir, "model.pt")
        if os.path.exists(model_path):
            row.update(score_makemore(makemore, list_path, model_type, model_path))
            row["how"] = (f"model.pt saved at step {ran['saved_at_step']} (best printed test loss), "
                          f"scored on all test words")
        else:
            row.update(test_nats_per_char=None, how="no model saved (no evaluation at step 500 yet)")
        results.append(row)
    if not args.skip_fastrnn:
        print(f"fastrnn: {args.seconds:g} s of training...", file=sys.stderr)
        results.append(run_fastrnn(out, args.seconds, shlex.split(args.fastrnn_args)))

    print(f"\n{'model':<24} {'seconds':>8} {'wall s':>7} {'steps':>8} {'test nats/char':>15}  how")
    for r in results:
        loss = "-" if r["test_nats_per_char"] is None else f"{r['test_nats_per_char']:.4f}"
        print(f"{r['model']:<24} {r['seconds']:>8.1f} {r['wall_s']:>7.1f} {r['steps']:>8,} {loss:>15}  {r['how']}")
        if "makemore_evaluate" in r:
            print(f"{'':<24} makemore's evaluate (batch means) {r['makemore_evaluate']:.4f}; last printed test "
                  f"loss {r['last_printed_test_loss']:.4f} at step {r['last_printed_step']}; "
                  f"first step done after {r['startup_s'] or float('nan'):.1f} s, "
                  f"median step {r['median_step_ms']:.1f} ms")
        elif "outside_limit_s" in r:
            print(f"{'':<24} {r['outside_limit_s']:.1f} s of its wall time outside the time limit (start-up, "
                  f"validation, writing)")
    report = {"list": list_path, "seconds": args.seconds, "train_words": len(train), "test_words": len(test),
              "torch": torch.__version__, "results": results}
    with open(os.path.join(out, "race.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwrote {os.path.join(out, 'race.json')}", file=sys.stderr)


if __name__ == "__main__":
    main()
