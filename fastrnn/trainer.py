"""The training loop in Python: the walk through the book, smooth loss, samples, run directory.

The per-update work runs inside ``kernels.loop``; Python calls it for blocks of a few hundred
milliseconds so it can report progress, write samples and checkpoints in between.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import FastrnnError
from .files import write_text_atomic
from .model import State, save_checkpoint, with_streams

METRICS_HEADER = "update,epoch,loss,smooth_loss\n"


def updates_per_epoch(n_chars: int, seq_length: int) -> int:
    """Chunks that fit in one pass: starts 0, n, 2n, ... with n + 1 characters each."""
    return (n_chars - 1) // seq_length


class Trainer:
    """The run state and workspace of ``kernels.loop`` for one run, allocated once, and the
    model states read back from them."""

    def __init__(self, state: State, book: np.ndarray, parallel: bool | None = None):
        """``parallel``: run the loop's parallel build (True) or its serial one (False); by
        default the parallel one where there are several blocks of streams and threads."""
        import numba

        from .kernels import loop
        from .kernels.workspace import allocate_workspace, new_run_state, stream_blocks

        self.vocab, self.hyper, self.book = state.vocab, state.hyper, book
        m, K, n, B = state.hyper.hidden, state.vocab.size, state.hyper.seq_length, state.hyper.streams
        self.per_epoch = updates_per_epoch(book.shape[0], n)
        if B > self.per_epoch:
            raise ValueError(f"{B} streams on a text of {self.per_epoch} chunks: streams would coincide")
        if B > 1 and state.stream_h is None:
            state = with_streams(state.copy(), book.shape[0])
        H, positions = ((state.h[None, :], [state.position]) if B == 1
                        else (state.stream_h, state.stream_positions))
        self.run_state = new_run_state(state.params, state.adagrad, H, positions, state.update,
                                       state.smooth_loss, state.best_smooth_loss)
        self.work = allocate_workspace(B, n, m, K, state.params.shape[0], state.params.dtype, book.dtype)
        self.best_val_loss = state.best_val_loss
        if parallel is None:
            self._loop = loop.loop_for(len(stream_blocks(B)), numba.get_num_threads())
        else:
            self._loop = loop.train_updates_parallel if parallel else loop.train_updates
        scalar = state.params.dtype.type
        self._args = (scalar(state.hyper.eta), scalar(state.hyper.eps), scalar(state.hyper.clip), m, K)

    @property
    def update(self) -> int:
        return int(self.run_state.update[0])

    @property
    def smooth_loss(self) -> float:
        return float(self.run_state.smooth[0])

    def run(self, n_updates: int) -> tuple[np.ndarray, np.ndarray]:
        """Apply ``n_updates`` updates; returns their chunk losses and smooth losses."""
        losses = np.empty(n_updates)
        smooths = np.empty(n_updates)
        every = self.hyper.restart_every
        done = 0
        while done < n_updates:
            count = n_updates - done
            if every:
                if self.update % every == 0 and self.update > 0:
                    self._restart_streams()
                count = min(count, every - self.update % every)
            self._loop(losses[done:done + count], smooths[done:done + count], self.run_state, self.work,
                       self.book, *self._args)
            done += count
        return losses, smooths

    def _restart_streams(self) -> None:
        """``restart_every``: every stream starts afresh, h = 0, at a place drawn from (seed,
        update), so that h = 0 means "anywhere in the book" to the model, not only its first
        line; a function of the update alone, so resumed runs restart where straight ones do."""
        rng = np.random.default_rng([self.hyper.seed, 2, self.update])
        last_start = self.book.shape[0] - self.hyper.seq_length - 1
        run = self.run_state
        run.positions[:] = rng.integers(0, last_start + 1, size=run.positions.shape[0])
        run.H[:] = 0.0

    def epoch_of(self, update: int) -> int:
        """The pass over the book that the chunks of update number ``update`` (B chunks each,
        counted from 1) belong to, counted from 0; for one stream without restarts, the wraps
        so far."""
        return max(0, update * self.hyper.streams - 1) // self.per_epoch

    def _char_at(self, position: int) -> int | None:
        """The input that follows a hidden state carried to ``position``: book[position], even
        where the next update starts the book again (h then ends a chunk that read the
        characters before it, so the pair is still a state of the model on the book)."""
        return int(self.book[position]) if position < self.book.shape[0] else None

    def live_params(self) -> np.ndarray:
        """The live parameter buffer (a view, not a copy)."""
        return self.run_state.params[self.run_state.current[0]]

    def _state(self, buffer: int, H: np.ndarray, positions: np.ndarray, update: int, epoch: int,
               smooth: float, best_smooth: float) -> State:
        run = self.run_state
        state = State(self.vocab, self.hyper, run.params[buffer].copy(), run.mem[buffer].copy(), H[0].copy(),
                      update, epoch, int(positions[0]), smooth, best_smooth, self.best_val_loss,
                      next_char=self._char_at(int(positions[0])))
        if self.hyper.streams > 1:
            state.stream_h, state.stream_positions = H.copy(), positions.copy()
        return state

    def state(self) -> State:
        """A copy of the live model and optimizer state."""
        run = self.run_state
        return self._state(run.current[0], run.H, run.positions, self.update, self.epoch_of(self.update),
                           self.smooth_loss, float(run.best_smooth[0]))

    def best_state(self) -> State | None:
        """The model with the lowest smooth loss seen by this trainer, or None if none yet.

        It is the model *before* the update whose chunk gave that smooth loss: the one that
        was evaluated, with the hidden states and positions its chunks started from.
        ``smooth_loss`` holds that lowest value.
        """
        run = self.run_state
        if run.best[0] < 0:
            return None
        update, s = int(run.best_update[0]), float(run.best_smooth[0])
        state = self._state(run.best[0], run.best_H, run.best_positions, update, self.epoch_of(update + 1), s, s)
        state.best_val_loss = float("inf")
        return state


def compile_kernels(dtype, index_dtype, *, streams: int = 0, sampler: bool = False, scorer: bool = False,
                    on_compile=None, slow_after: float = 1.0) -> float:
    """Compile (or load from the on-disk cache) the kernels a command runs, for these dtypes:
    the training loop build that a run of ``streams`` streams uses (none for 0), the sampler,
    the scorer.

    With the training loop to compile and a core to spare, the sampler and the scorer compile
    at the same time in a child process that leaves them in the cache, where this one loads
    them. ``on_compile(what)`` is called when one of them takes longer than ``slow_after``
    seconds, which means a real compilation (a cache load takes a fraction of a second).
    Returns the seconds it all took.
    """
    import threading

    import numba

    from .evaluate import TextScorer
    from .kernels import loop
    from .kernels.workspace import stream_blocks
    from .model import Hyper, init_state
    from .sample import sample_indices
    from .text import Vocab

    start = time.perf_counter()
    vocab = Vocab(np.arange(2, dtype=np.uint32))
    book = np.zeros(5, dtype=index_dtype)
    state = init_state(vocab, Hyper(hidden=2, seq_length=2, dtype=np.dtype(dtype).name))
    build = loop.loop_for(len(stream_blocks(max(streams, 1))), numba.get_num_threads())

    def train():
        Trainer(state, book, parallel=build is loop.train_updates_parallel).run(1)

    parallel = " (parallel build)" if build is loop.train_updates_parallel else ""
    jobs = [(streams > 0, f"the training loop{parallel}", train),
            (sampler, "the sampler", lambda: sample_indices(state.params, vocab, 2, 2, np.random.default_rng(0))),
            (scorer, "the scorer", lambda: TextScorer(2, 2, state.params.dtype, index_dtype, chunk=2)
             .total_loss(state.params, book))]
    helper = None
    if streams > 0 and (sampler or scorer) and not _cached("loop.train_updates"):
        helper = _compile_in_child(dtype, index_dtype, sampler, scorer)
        if helper is not None and on_compile:
            on_compile(" and ".join(what for wanted, what, _ in jobs[1:] if wanted) + " in a second process")
    for wanted, what, job in jobs:
        if not wanted:
            continue
        if helper is not None and what in ("the sampler", "the scorer"):
            helper.wait()
            helper = None
        timer = threading.Timer(slow_after, on_compile, args=(what,)) if on_compile else None
        if timer:
            timer.start()
        try:
            job()
        finally:
            if timer:
                timer.cancel()
    return time.perf_counter() - start


def _cached(name: str) -> bool:
    """Whether the kernel cache holds compiled code of ``name`` (module.function), in any
    version: a cold cache holds none."""
    import glob

    from .kernels import CACHE_DIR

    return bool(glob.glob(os.path.join(glob.escape(CACHE_DIR), "*", f"{name}-*.nbi")))


def _compile_in_child(dtype, index_dtype, sampler: bool, scorer: bool):
    """A child process compiling the sampler and/or the scorer into the cache, or None on a
    single core; if it fails, the parent compiles them itself."""
    import subprocess
    import sys

    if (os.cpu_count() or 1) < 2:
        return None
    code = ("import numpy as np; from fastrnn.trainer import compile_kernels; "
            f"compile_kernels(np.dtype('{np.dtype(dtype).name}'), np.dtype('{np.dtype(index_dtype).name}'), "
            f"sampler={sampler}, scorer={scorer})")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@dataclass
class Progress:
    """What a progress callback is told after each block of updates."""

    update: int
    total: int
    epoch: int
    smooth_loss: float
    chars_per_s: float
    seconds: float  # since the run started
    seconds_per_update: float  # training time per update so far, for the time left


class Interrupted(Exception):
    """Training stopped on request (a signal) after writing a checkpoint."""

    def __init__(self, update: int, out_dir: str):
        super().__init__(f"stopped at update {update}")
        self.update, self.out_dir = update, out_dir


class NonFiniteError(FastrnnError, FloatingPointError):
    """The loss or the parameters stopped being finite; nothing was written after that."""


@dataclass
class RunOptions:
    total_updates: int
    sample_every: int = 10_000
    sample_len: int = 200
    final_len: int = 1000
    log_every: int = 100
    checkpoint_every: int = 10_000
    val_every: int = 10_000
    block_seconds: float = 0.25
    on_progress: object = None  # callable(Progress) or None
    should_stop: object = None  # callable() -> bool, checked between blocks, or None
    extra_summary: dict = field(default_factory=dict)


def _sample_rng(seed: int, update: int) -> np.random.Generator:
    # one stream per (seed, update) so samples do not depend on how the run was split up
    return np.random.default_rng([seed, 1, update])


def _training_sample(trainer: Trainer, n: int) -> str:
    from .sample import sample_text

    state = trainer.state()
    return sample_text(state, n, rng=_sample_rng(state.hyper.seed, state.update))


VALIDATION_HEADER = "update,val_nats_per_char,val_bits_per_char\n"
SAMPLE_HEADER = "--- update "
FINAL_HEADER = "=== best model"


_SAMPLE_LINE = re.compile(r"^--- update (\d+), smooth loss [^\n]* ---$", re.MULTILINE)
_FINAL_LINE = re.compile(r"^=== best model \(", re.MULTILINE)


def truncate_logs(out_dir: str, update: int) -> None:
    """Drop what a run wrote after the checkpoint it resumes from (update ``update``):
    metrics and validation rows, samples, and the end-of-run passage. A row cut short by a
    crash (no line end) or one that does not parse is dropped too."""
    for name in ("metrics.csv", "validation.csv"):
        path = os.path.join(out_dir, name)
        if os.path.exists(path):
            with open(path) as f:
                lines = f.read().splitlines(keepends=True)
            keep = lines[:1] + [ln for ln in lines[1:] if _row_update(ln) is not None and _row_update(ln) <= update]
            write_text_atomic(path, "".join(keep))
    path = os.path.join(out_dir, "samples.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        cut = len(text)
        final = _FINAL_LINE.search(text)
        if final:
            cut = final.start()
        for header in _SAMPLE_LINE.finditer(text, 0, cut):
            if int(header.group(1)) > update:
                cut = header.start()
                break
        write_text_atomic(path, text[:cut], encoding="utf-8")


def _row_update(line: str) -> int | None:
    if not line.endswith("\n"):
        return None
    try:
        return int(line.split(",", 1)[0])
    except ValueError:
        return None


def train_run(state: State, book: np.ndarray, out_dir: str, opts: RunOptions, resume: bool = False,
              val_book: np.ndarray | None = None) -> dict:
    """Train from ``state`` until ``opts.total_updates`` and fill the run directory.

    Writes metrics.csv, samples.txt, last.npz, best.npz, loss.png and summary.json (and
    validation.csv with ``val_book``) in ``out_dir`` and returns the summary. ``resume``
    continues the logs of an existing run from ``state.update``. With ``val_book``, best.npz is
    the model with the lowest validation loss (checked every ``opts.val_every`` updates).
    Raises NonFiniteError on a non-finite loss or parameter (the checkpoints on disk are then
    those of the last good state) and Interrupted when ``opts.should_stop()`` says so (after
    writing a checkpoint).
    """
    from .model import load_checkpoint
    from .sample import sample_text

    os.makedirs(out_dir, exist_ok=True)
    path = lambda name: os.path.join(out_dir, name)  # noqa: E731
    trainer = Trainer(state, book)
    n = state.hyper.seq_length
    chars_per_update = n * state.hyper.streams
    per_epoch = updates_per_epoch(book.shape[0], n)
    scorer = None
    if val_book is not None:
        from .evaluate import TextScorer

        scorer = TextScorer(state.hyper.hidden, state.vocab.size, state.params.dtype, val_book.dtype)
    best_saved = state.best_val_loss if scorer else state.best_smooth_loss
    if resume:
        truncate_logs(out_dir, state.update)
    else:
        # the starting point, so that --resume after a crash before the first checkpoint
        # continues this run and never whatever an overwritten run left behind
        save_checkpoint(path("best.npz"), trainer.state())
        save_checkpoint(path("last.npz"), trainer.state())
    samples = open(path("samples.txt"), "a" if resume else "w", encoding="utf-8")
    metrics = open(path("metrics.csv"), "a" if resume else "w")
    validation = open(path("validation.csv"), "a" if resume else "w") if scorer else None
    if not resume:
        metrics.write(METRICS_HEADER)
        if validation:
            validation.write(VALIDATION_HEADER)

    def write_sample():
        text = _training_sample(trainer, opts.sample_len)
        samples.write(f"{SAMPLE_HEADER}{trainer.update}, smooth loss {trainer.smooth_loss:.4f} ---\n{text}\n\n")
        samples.flush()

    def validate():
        nonlocal best_saved
        current = trainer.state()
        loss, count = scorer.total_loss(current.params, val_book, current.h)  # as `fastrnn eval` scores
        nats = loss / count
        validation.write(f"{current.update},{nats:.6f},{nats / np.log(2):.6f}\n")
        validation.flush()
        if nats < best_saved:
            current.best_val_loss = nats
            save_checkpoint(path("best.npz"), current)
            best_saved = nats
        trainer.best_val_loss = best_saved

    def checkpoint():
        nonlocal best_saved
        # best.npz first: a crash in between must not leave last.npz claiming a best on disk
        best = None if scorer else trainer.best_state()
        if best is not None and best.best_smooth_loss < best_saved:
            save_checkpoint(path("best.npz"), best)
            best_saved = best.best_smooth_loss
        save_checkpoint(path("last.npz"), trainer.state())

    start_update = trainer.update
    train_seconds = 0.0
    wall_start = time.perf_counter()

    def summarize(finished: bool) -> dict:
        final = trainer.state()
        chars = (final.update - start_update) * chars_per_update
        best_model = load_checkpoint(path("best.npz"))
        finite = lambda x: x if np.isfinite(x) else None  # noqa: E731
        summary = {
            "finished": finished,
            "updates": final.update,
            "updates_this_run": final.update - start_update,
            "epochs": final.update * state.hyper.streams / per_epoch,
            "chars": chars,
            "seconds": train_seconds,
            "chars_per_s": chars / train_seconds if train_seconds > 0 else None,
            "wall_seconds": time.perf_counter() - wall_start,
            "best_smooth_loss": finite(final.best_smooth_loss),
            "best_model_update": best_model.update,
            "final_smooth_loss": finite(final.smooth_loss),
            "best_val_nats_per_char": finite(best_saved) if scorer else None,
            "book_chars": int(book.shape[0]),
            "val_chars": int(val_book.shape[0]) if val_book is not None else 0,
            "vocab_size": state.vocab.size,
            "hyper": {k: getattr(state.hyper, k) for k in state.hyper.__dataclass_fields__},
            **opts.extra_summary,
        }
        write_text_atomic(path("summary.json"), json.dumps(summary, indent=2) + "\n")
        _plot(out_dir)
        return summary

    try:
        if trainer.update == 0 and not resume:
            if opts.sample_every > 0:
                write_sample()
            if scorer:
                validate()
        block = 16
        while trainer.update < opts.total_updates:
            u = trainer.update
            stop = opts.total_updates
            for every in (opts.sample_every, opts.checkpoint_every, opts.val_every if scorer else 0):
                if every > 0:
                    stop = min(stop, (u // every + 1) * every)
            count = min(block, stop - u)
            t0 = time.perf_counter()
            losses, smooths = trainer.run(count)
            dt = time.perf_counter() - t0
            train_seconds += dt
            block = int(np.clip(count * opts.block_seconds / max(dt, 1e-6), 1, 1_000_000))
            if not (np.all(np.isfinite(losses)) and np.all(np.isfinite(trainer.live_params()))):
                bad = u + 1 + int(np.argmin(np.isfinite(losses))) if not np.all(np.isfinite(losses)) else u + count
                raise NonFiniteError(f"the loss or the parameters became non-finite by update {bad}; "
                                     f"the checkpoints keep the last good state (try a smaller --eta)")
            updates = np.arange(u + 1, u + count + 1)
            keep = updates % opts.log_every == 0
            if np.any(keep):
                rows = np.column_stack([updates[keep], [trainer.epoch_of(u) for u in updates[keep]],
                                        losses[keep], smooths[keep]])
                np.savetxt(metrics, rows, fmt=["%d", "%d", "%.6f", "%.6f"], delimiter=",")
                metrics.flush()
            done = trainer.update
            if opts.sample_every > 0 and done % opts.sample_every == 0:
                write_sample()
            if scorer and opts.val_every > 0 and done % opts.val_every == 0:
                validate()
            if opts.checkpoint_every > 0 and done % opts.checkpoint_every == 0:
                checkpoint()
            if opts.on_progress:
                chars = (done - start_update) * chars_per_update
                opts.on_progress(Progress(done, opts.total_updates, trainer.epoch_of(done),
                                          trainer.smooth_loss, chars / max(train_seconds, 1e-9),
                                          time.perf_counter() - wall_start,
                                          train_seconds / max(done - start_update, 1)))
            if opts.should_stop and opts.should_stop() and done < opts.total_updates:
                checkpoint()
                samples.close()
                metrics.close()
                summarize(finished=False)
                raise Interrupted(done, out_dir)
        checkpoint()
        best_model = load_checkpoint(path("best.npz"))
        passage = sample_text(best_model, opts.final_len, seed=state.hyper.seed)
        what = "validation loss" if scorer else "smooth loss"
        value = best_model.best_val_loss if scorer else best_model.smooth_loss
        start = ("from its carried hidden state and next character" if best_model.next_char is not None
                 else "from its carried hidden state")
        samples.write(f"{FINAL_HEADER} (update {best_model.update}, {what} {value:.4f}): "
                      f"{opts.final_len} characters {start} ===\n{passage}\n")
    finally:
        for f in (samples, metrics, validation):
            if f is not None and not f.closed:
                f.close()
    return summarize(finished=True)


def read_csv_rows(path: str, columns: int) -> np.ndarray:
    """The rows of a run's CSV file (metrics.csv: update, epoch, loss, smooth_loss;
    validation.csv: update, nats/char, bits/char) as a (rows, columns) float array; empty when
    the file is missing or has no rows."""
    if not os.path.exists(path):
        return np.empty((0, columns))
    with open(path) as f:
        rows = f.read().splitlines()[1:]
    return np.loadtxt(rows, delimiter=",", ndmin=2).reshape(-1, columns) if rows else np.empty((0, columns))


def read_metrics(path: str) -> np.ndarray:
    """metrics.csv as a (rows, 4) float array: update, epoch, loss, smooth_loss."""
    return read_csv_rows(path, 4)


def _plot(out_dir: str) -> None:
    from .plot import plot_loss

    plot_loss(read_metrics(os.path.join(out_dir, "metrics.csv")), os.path.join(out_dir, "loss.png"),
              read_csv_rows(os.path.join(out_dir, "validation.csv"), 3))
