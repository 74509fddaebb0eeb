"""Sweeps: many independent runs on a Dask cluster, with successive halving built on exact resume.

Every trial is an ordinary run directory under the sweep's directory (``DIR/<trial>``), trained
by ``fastrnn.train`` and continued by ``fastrnn.resume`` on whichever worker Dask gives it. A
trial whose worker dies is run again by the scheduler and resumes from its own last checkpoint,
which, resume being exact, ends where an undisturbed trial ends. ``DIR/sweep.json`` holds the sweep's
settings (so ``resume=True`` continues it), ``DIR/results.csv`` a row per trial and
``DIR/sweep.png`` validation bits/char against training seconds for every trial.

Successive halving (Hyperband, ASHA): with ``halving=ETA``, every trial trains a first rung of
updates, the best 1/ETA by validation continue to ETA times as many, and so on up to ``steps``.
Each trial is planned for all its updates from the first rung (``planned_updates``): a cosine
schedule spans them and the recipe's dropout follows them, so that a trial of the last rung ends
where one run of those updates ends, and the early rungs rank trials at their schedule's start.

Dask is an optional dependency: ``pip install "fastrnn[sweep]"``.
"""
from __future__ import annotations

import csv
import itertools
import json
import math
import os
import uuid
from dataclasses import dataclass

from .api import Run
from .cache import load_corpus_cached
from .errors import FastrnnError
from .files import atomic_write, write_text_atomic
from .model import updates_per_epoch
from .plan import held_out, named_corpus, total_updates
from .recipes import CLASSIC, fitted_streams, with_defaults
from .rundir import corpus_sha256
from .settings import BY_NAME, SWEEPABLE, OptionError, check


SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.csv"


def parse_grid(specs) -> dict[str, list]:
    """``["eta=0.05,0.1", "hidden=50,100"]`` -> {"eta": [0.05, 0.1], "hidden": [50, 100]}."""
    grid = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip().lstrip("-").replace("-", "_")
        if not sep or not values.strip():
            raise OptionError("grid", f"{spec!r} is not NAME=V1,V2,...")
        if name not in SWEEPABLE:
            raise OptionError("grid", f"{name!r} cannot be swept; these can: {', '.join(SWEEPABLE)}")
        try:
            grid[name] = [SWEEPABLE[name](v.strip()) for v in values.split(",")]
        except ValueError:
            raise OptionError("grid", f"{spec!r}: every value of {name} must be a {SWEEPABLE[name].__name__}") from None
    return grid


def trial_settings(grid: dict, seeds: int) -> list[dict]:
    """One settings dict per point of the grid and seed 0..seeds-1, named t000, t001, ..."""
    names = list(grid)
    points = [dict(zip(names, values)) for values in itertools.product(*grid.values())] or [{}]
    trials = []
    for point in points:
        for seed in ([point["seed"]] if "seed" in point else range(seeds)):
            trials.append({**point, "seed": seed})
    return [dict(trial, trial=f"t{i:03d}") for i, trial in enumerate(trials)]


def rungs(count: int, eta: int | None) -> list[tuple[int, int]]:
    """(divisor, trials) of each rung: a trial of S updates trains to S // divisor in it. Without
    halving one rung of all S; with it, as many rungs as halving ``count`` trials by ``eta``
    allows, the last of S."""
    if not eta:
        return [(1, count)]
    levels = max(1, int(math.floor(math.log(count, eta) + 1e-9)) + 1) if count > 1 else 1
    return [(eta ** (levels - 1 - i), max(1, math.ceil(count / eta ** i))) for i in range(levels)]


def run_trial(directory: str, book: str, settings: dict, steps: int, planned: int, options: dict,
              threads: int) -> dict:
    """Train the trial in ``directory`` to ``steps`` of its ``planned`` updates on ``threads``
    cores: from the start, or by resuming its own last checkpoint (an earlier rung, or an attempt
    whose worker died). Runs on a worker."""
    import fastrnn

    model = {k: v for k, v in settings.items() if k != "trial"}
    if os.path.exists(os.path.join(directory, "last.npz")) and os.path.exists(os.path.join(directory, "run.json")):
        run = fastrnn.resume(directory, steps=steps, threads=threads, progress=False)
    else:
        run = fastrnn.train(book, out=directory, steps=steps, planned_updates=planned, threads=threads, force=True,
                            progress=False, **model, **options)
    # from the checkpoint and the logs: a worker that died after the last checkpoint but before the
    # summary leaves a summary of an earlier session, and its retry nothing to train
    validation = run.validation
    return {"updates": run.model.update, "chars_per_s": run.summary.get("chars_per_s"),
            "best_val_bits_per_char": float(validation["bits_per_char"].min()) if validation else None}


def _warm_up(models) -> None:
    """Compile (or load) the kernels the trials run, once per worker, before its first trial:
    ``models`` is a list of (dtype, cell, layers)."""
    import numpy as np

    from .build import KernelSet, compile_kernels

    for dtype, cell, layers in models:
        compile_kernels(KernelSet(np.dtype(dtype), np.uint8, cell, layers, streams=1, sampler=True, scorer=True))


@dataclass
class Trial:
    settings: dict
    steps: int = 0  # updates of its last rung
    seconds: float = 0.0  # training time over all rungs
    updates: int = 0
    chars_per_s: float | None = None
    best_val_bits_per_char: float | None = None
    status: str = "pending"

    @property
    def name(self) -> str:
        return self.settings["trial"]


def _client(scheduler, scheduler_file, workers, threads):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise FastrnnError('sweeps run on Dask, which is not installed: pip install "fastrnn[sweep]"') from None
    if scheduler_file and not os.path.isfile(scheduler_file):
        raise FastrnnError(f"{scheduler_file}: no such scheduler file")
    if scheduler or scheduler_file:
        try:
            return Client(scheduler, scheduler_file=scheduler_file, timeout="5s"), None
        except (OSError, TimeoutError, ValueError) as err:
            raise FastrnnError(f"cannot reach the Dask scheduler at {scheduler or scheduler_file}: {err}") from None
    cores = os.cpu_count() or 1
    # on an event loop of our own: Dask gives the thread of one it starts itself 10 s, which a
    # loaded machine can miss
    loop = _EventLoopThread()
    try:
        cluster = LocalCluster(n_workers=workers or max(1, cores // threads), threads_per_worker=1, processes=True,
                               dashboard_address=None, env={"NUMBA_NUM_THREADS": str(threads)}, loop=loop.loop)
        client = Client(cluster, loop=loop.loop)
    except (AssertionError, OSError, RuntimeError, TimeoutError) as err:
        loop.stop()
        raise FastrnnError(f"cannot start a local Dask cluster: {type(err).__name__}: {err}") from None
    cluster.event_loop_thread = loop  # stopped after the cluster closes
    return client, cluster


class _EventLoopThread:
    """A Tornado event loop running in a daemon thread, waited for however long it takes to
    start."""

    def __init__(self):
        import asyncio
        import threading

        from tornado.ioloop import IOLoop

        started = threading.Event()

        async def run():
            self.loop = IOLoop.current()
            self._done = asyncio.Event()
            started.set()
            await self._done.wait()

        self._thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True, name="fastrnn sweep loop")
        self._thread.start()
        started.wait()

    def stop(self):
        self.loop.add_callback(self._done.set)
        self._thread.join(timeout=10)


# options a sweep sets itself, per trial or for all of them
_RESERVED = {"book", "text", "out", "steps", "epochs", "force", "progress", "should_stop", "threads", "val_fraction",
             "seed", "planned_updates", "time_limit"}


def sweep(book=None, *, grid=(), seeds: int = 1, steps: int | None = None, epochs: int | None = None, out=None,
          val_fraction: float = 0.1, halving: int | None = None, workers: int | None = None, threads: int = 1,
          scheduler: str | None = None, scheduler_file: str | None = None, resume: bool = False, say=None,
          **train_options) -> list[dict]:
    """Train every point of ``grid`` (NAME=V1,V2,... strings, or a dict of lists) for each of
    ``seeds`` seeds, ``steps`` updates or ``epochs`` passes each (the fewer wins), on a Dask
    cluster, and return the rows of results.csv, best validation first. ``resume=True``
    continues the sweep in ``out`` with its own settings and skips finished trials.
    ``train_options`` are more options of ``fastrnn.train`` for every trial (``dtype``, say)."""
    say = say or (lambda message: None)
    if out is None:
        raise OptionError("out", "a sweep needs a directory (--out)")
    out = os.fspath(out)
    if resume:
        settings = _load_sweep(out)
        book, grid, seeds, steps, epochs, val_fraction, halving = (
            settings.get(k) for k in ("book", "grid", "seeds", "steps", "epochs", "val_fraction", "halving"))
        train_options = settings["options"]
        _check_options(train_options, grid)
    else:
        grid, book = _check_new_sweep(book, grid, steps, epochs, val_fraction, halving, out, train_options)
    trials = [Trial(s) for s in trial_settings(grid, seeds)]
    for trial in trials:
        trial.steps = _trial_steps(book, trial.settings, train_options, steps, epochs, val_fraction)
    plan = rungs(len(trials), halving)
    longest = max(t.steps for t in trials)
    first_rung = max(1, min(t.steps for t in trials) // plan[0][0])
    # several validations within the shortest rung, on which the trials are ranked
    options = {"val_fraction": val_fraction, "val_every": max(1, min(first_rung // 4, longest // 10)),
               "sample_every": 0, "checkpoint_every": max(1, longest // 20),
               "log_every": max(1, min(100, longest // 50)), **train_options}
    client, cluster = _client(scheduler, scheduler_file, workers, threads)
    token = uuid.uuid4().hex[:8]  # task keys of this sweep alone, on a scheduler others may share
    try:
        if not resume:  # written once the cluster answered, so a failed start leaves nothing behind
            os.makedirs(out, exist_ok=True)
            write_text_atomic(os.path.join(out, SWEEP_FILE), json.dumps(
                {"book": book, "grid": grid, "seeds": seeds, "steps": steps, "epochs": epochs,
                 "val_fraction": val_fraction, "halving": halving, "options": train_options}, indent=2) + "\n")
        models = [_trial_options(t.settings, train_options) for t in trials]
        client.run(_warm_up, sorted({(o["dtype"], o["cell"], 1 if o["layers"] == 1 else 2) for o in models}))
        alive = trials
        for rung, (divisor, _) in enumerate(plan):
            say(f"rung {rung + 1} of {len(plan)}: {len(alive)} trial{'s' if len(alive) != 1 else ''}"
                + (f" to 1/{divisor} of their updates" if divisor > 1 else ""))
            # a task whose worker dies is run again by the scheduler; run_trial then resumes
            futures = {client.submit(run_trial, os.path.join(out, t.name), book, t.settings,
                                     max(1, t.steps // divisor), t.steps, options, threads, pure=False,
                                     key=f"{t.name}-rung{rung}-{token}"): t for t in alive}
            for future, trial in futures.items():
                try:
                    result = future.result()
                except FastrnnError as err:
                    trial.status = f"failed: {err}"
                    continue
                except Exception as err:  # noqa: BLE001 (a worker lost too often, a bug): the others go on
                    trial.status = f"failed: {type(err).__name__}: {err}"
                    continue
                _record(trial, os.path.join(out, trial.name), result)
                trial.status = "finished" if divisor == 1 else f"stopped at rung {rung + 1}"
            ranked = sorted((t for t in alive if not t.status.startswith("failed") and t.best_val_bits_per_char
                             is not None), key=lambda t: t.best_val_bits_per_char)
            alive = ranked[:plan[rung + 1][1]] if rung + 1 < len(plan) else ranked
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
            cluster.event_loop_thread.stop()
    rows = _write_results(out, trials, grid)
    _plot(out, trials)
    if trials and all(t.status.startswith("failed") for t in trials):
        raise FastrnnError(f"every trial failed; the first: {trials[0].status[len('failed: '):]}")
    return rows


def _check_options(train_options: dict, grid: dict) -> None:
    """OptionError for a train option the sweep or its grid sets, also in a sweep.json read back."""
    if not isinstance(train_options, dict) or not isinstance(grid, dict):
        raise FastrnnError("the sweep's options and grid must be mappings")
    clash = sorted((_RESERVED | set(grid)) & set(train_options))
    if clash:
        raise OptionError(clash[0], f"{clash[0]} is set by the sweep (or its grid), not as a train option")
    unknown = sorted(set(train_options) - set(BY_NAME) - {"init"}) + sorted(set(grid) - set(SWEEPABLE))
    if unknown:
        raise OptionError(unknown[0], f"{unknown[0]!r} is not a train option a sweep can set; a grid can vary "
                                      f"{', '.join(SWEEPABLE)}")


def _check_new_sweep(book, grid, steps, epochs, val_fraction, halving, out, train_options):
    """(grid as a dict, the book's absolute path) once the settings of a new sweep are usable."""
    if book is None:
        raise OptionError("book", "a sweep needs a BOOK")
    if not isinstance(grid, dict):
        grid = parse_grid(grid)
    _check_options(train_options, grid)
    if (steps is None or steps < 1) and (epochs is None or epochs < 1):
        raise OptionError("steps", "a sweep needs --steps or --epochs, how long each trial trains")
    if halving is not None and halving < 2:
        raise OptionError("halving", "halving keeps 1/ETA of the trials at each rung: ETA must be at least 2")
    if not 0 < val_fraction < 0.5:
        raise OptionError("val_fraction", "a sweep ranks its trials on held-out text: val_fraction must be "
                                          "above 0 and below 0.5")
    for name, values in [*grid.items(), *((k, [v]) for k, v in train_options.items())]:
        for value in values:
            if name in BY_NAME:
                check(name, value)
    try:
        json.dumps(train_options)
    except TypeError as err:
        raise OptionError("options", f"train options must be plain numbers and strings ({err})") from None
    if os.path.isdir(out) and os.listdir(out):
        what = "a sweep; pass --resume to continue it" if os.path.exists(os.path.join(out, SWEEP_FILE)) \
            else "files that are not a sweep"
        raise FastrnnError(f"{out} already holds {what}")
    book = os.path.abspath(named_corpus(book))
    if not os.path.exists(book):
        raise FastrnnError(f"{book}: no such file")
    return grid, book


def _trial_options(settings: dict, options: dict) -> dict:
    """A trial's cell, layers and the options its cell's recipe fills in where neither the
    trial's settings nor the sweep's options give them (``recipes.py``)."""
    given = {**options, **settings}
    cell = given.get("cell", "rnn")
    return dict(with_defaults(cell, {name: given.get(name) for name in set(CLASSIC) | {"clip"}}), cell=cell,
                layers=given.get("layers", 1))


def _trial_steps(book: str, settings: dict, options: dict, steps, epochs, val_fraction: float) -> int:
    """Updates of a trial: ``steps``, or ``epochs`` passes over the book's training part at the
    trial's chunk length and stream count (the fewer wins)."""
    if epochs is None:
        return steps
    trial = _trial_options(settings, options)
    n = trial["seq_length"]
    _, encoded = load_corpus_cached(book, options.get("format", "auto"), options.get("encoding", "utf-8"), n + 1,
                                    corpus_sha256(book))
    train_part, _ = held_out(encoded, val_fraction, n, book)
    chunks = updates_per_epoch(train_part.shape[0], n)
    streams = trial["streams"] or fitted_streams(trial["cell"], chunks)  # as the trial's run will have them
    return total_updates(steps, epochs, chunks, streams)


def _record(trial: Trial, directory: str, result: dict) -> None:
    run = Run(directory)
    trial.updates = result["updates"]
    trial.seconds = _training_seconds(run)
    trial.chars_per_s = result["chars_per_s"]
    trial.best_val_bits_per_char = result["best_val_bits_per_char"]


def _training_seconds(run: Run) -> float:
    """Training seconds of a trial over all its sessions: summary.json has the last session's,
    so the earlier ones are counted at its speed."""
    summary = run.summary
    if summary.get("updates_this_run"):
        return summary["seconds"] / summary["updates_this_run"] * summary["updates"]
    return summary.get("seconds", 0.0)


def _write_results(out: str, trials: list[Trial], grid: dict) -> list[dict]:
    swept = [name for name in grid if name != "seed"]
    rows = []
    for t in sorted(trials, key=lambda t: (t.status.startswith("failed"), t.best_val_bits_per_char is None,
                                            t.best_val_bits_per_char or 0)):
        rows.append({"trial": t.name, **{k: t.settings.get(k) for k in swept}, "seed": t.settings["seed"],
                     "best_val_bits_per_char": t.best_val_bits_per_char, "chars_per_s": t.chars_per_s,
                     "seconds": t.seconds, "updates": t.updates, "status": t.status})
    path = os.path.join(out, RESULTS_FILE)
    fields = ["trial", *swept, "seed", "best_val_bits_per_char", "chars_per_s", "seconds", "updates", "status"]
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())
    return rows


def _plot(out: str, trials: list[Trial]) -> None:
    from .plot import NotebookFigure  # matplotlib: only when a sweep has finished

    fig = NotebookFigure(figsize=(8, 4.5), dpi=100)
    ax = fig.subplots()
    for t in trials:
        run_dir = os.path.join(out, t.name)
        if not os.path.exists(os.path.join(run_dir, "validation.csv")) or not t.updates:
            continue
        val = Run(run_dir).validation
        per_update = t.seconds / t.updates
        swept = ", ".join(f"{k} {v}" for k, v in t.settings.items() if k != "trial")
        ax.plot(val["update"] * per_update, val["bits_per_char"], marker="o", ms=2, lw=1, label=f"{t.name}: {swept}")
    ax.set_xlabel("training seconds")
    ax.set_ylabel("validation bits per character")
    ax.set_title("sweep")
    ax.grid(alpha=0.3)
    if len(trials) <= 12:
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_write(os.path.join(out, "sweep.png"), "wb") as f:
        fig.savefig(f, format="png")


def _load_sweep(out: str) -> dict:
    path = os.path.join(out, SWEEP_FILE)
    if not os.path.isfile(path):
        raise FastrnnError(f"{out}: not a sweep (no {SWEEP_FILE})")
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
    except (OSError, ValueError, RecursionError) as err:
        raise FastrnnError(f"{path}: unreadable ({type(err).__name__})") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("options", {}), dict):
        raise FastrnnError(f"{path}: not a sweep's settings (a JSON object)")
    return settings
