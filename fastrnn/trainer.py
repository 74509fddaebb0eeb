"""The run loop: blocks of updates, progress, samples, validation, checkpoints, the run
directory.

The updates themselves run inside the kernels (``engine.Trainer``); the loop calls them for
blocks of a few hundred milliseconds so it can report progress, write samples and checkpoints
in between.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import FastrnnError
from .model import State, load_checkpoint, save_checkpoint
from .rundir import RunDir


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
    val_loss: float | None = None  # the latest held-out loss, nats/char (runs with validation)
    budget_left: float | None = None  # seconds of training left of a time limit


class Interrupted(Exception):
    """Training stopped on request (a signal) after writing a checkpoint."""

    def __init__(self, update: int, out_dir: str):
        super().__init__(f"stopped at update {update}")
        self.update, self.out_dir = update, out_dir

    def __reduce__(self):
        return type(self), (self.update, self.out_dir)


class NonFiniteError(FastrnnError, FloatingPointError):
    """The loss or the parameters stopped being finite; nothing was written after that."""


FINAL_DOCUMENTS = 20  # documents the best model of a documents run writes at the end of samples.txt


@dataclass
class RunOptions:
    total_updates: int
    sample_every: int = 10_000
    sample_length: int = 200
    final_len: int = 1000
    log_every: int = 100
    checkpoint_every: int = 10_000
    val_every: int = 10_000
    block_seconds: float = 0.25
    on_progress: object = None  # callable(Progress) or None
    should_stop: object = None  # callable() -> bool, checked between blocks, or None
    share_machine: bool = False  # fewer threads while other processes are busy (``Trainer``)
    time_limit: float | None = None  # seconds of training, after which the run ends early
    extra_summary: dict = field(default_factory=dict)


def _sample_rng(seed: int, update: int) -> np.random.Generator:
    # one stream per (seed, update) so samples do not depend on how the run was split up
    return np.random.default_rng([seed, 1, update])


def train_run(state: State, book: np.ndarray, out_dir: str, opts: RunOptions, resume: bool = False,
              val_book: np.ndarray | None = None, documents=None) -> dict:
    """Train from ``state`` until ``opts.total_updates`` and fill the run directory.

    Writes metrics.csv, samples.txt, last.npz, best.npz, loss.png and summary.json (and
    validation.csv with ``val_book``) in ``out_dir`` and returns the summary. ``resume``
    continues the logs of an existing run from ``state.update``. With ``val_book``, best.npz is
    the model with the lowest validation loss (checked every ``opts.val_every`` updates).
    Raises NonFiniteError on a non-finite loss or parameter (the checkpoints on disk are then
    those of the last good state) and Interrupted when ``opts.should_stop()`` says so (after
    writing a checkpoint).
    """
    return _Training(state, book, out_dir, opts, resume, val_book, documents).run()


class _Training:
    """One call of ``train_run``: the trainer, the run directory, and the best model on disk."""

    def __init__(self, state: State, book: np.ndarray, out_dir: str, opts: RunOptions, resume: bool,
                 val_book: np.ndarray | None, documents):
        # the kernels (Numba) load when a run starts, not with ``import fastrnn``, which imports
        # this module for ``Interrupted``
        from .engine import Trainer
        from .evaluate import TextScorer

        self.state0, self.book, self.opts, self.resume, self.val_book = state, book, opts, resume, val_book
        self.dir = RunDir(out_dir)
        self.trainer = Trainer(state, book, share_machine=opts.share_machine, documents=documents)
        self.scorer = None
        if val_book is not None:
            self.scorer = TextScorer(state.hyper.hidden, state.vocab.size, state.params.dtype, val_book.dtype,
                                     cell=state.hyper.cell, layers=state.hyper.layers,
                                     embedding=state.hyper.embedding, restart=state.restart)
        # the loss of the best model on disk: validation loss with held-out text, else smooth loss
        self.best_saved = state.best_val_loss if self.scorer else state.best_smooth_loss
        self.start_update = self.trainer.update
        self.validated_at, self.last_val = None, None  # the update and loss of the last validation
        self.train_seconds = 0.0
        self.wall_start = time.perf_counter()

    def run(self) -> dict:
        trainer, opts = self.trainer, self.opts
        if self.resume:
            self.dir.truncate(self.state0.update)
        else:
            self.dir.begin(validation=self.scorer is not None)
            # the starting point, so that resuming after a crash before the first checkpoint
            # continues this run and never whatever an overwritten run left behind
            save_checkpoint(self.dir.file("best.npz"), trainer.state())
            save_checkpoint(self.dir.file("last.npz"), trainer.state())
            if opts.sample_every > 0:
                self.sample()
            if self.scorer:
                self.validate()
        block = 16
        while trainer.update < opts.total_updates:
            u = trainer.update
            stop = opts.total_updates
            for every in (opts.sample_every, opts.checkpoint_every, opts.val_every if self.scorer else 0):
                if every > 0:
                    stop = min(stop, (u // every + 1) * every)
            count = min(block, stop - u)
            if opts.time_limit is not None:
                if self.train_seconds >= opts.time_limit:
                    break
                if u > self.start_update:  # no further past the limit than a block
                    per_update = self.train_seconds / (u - self.start_update)
                    count = max(1, min(count, math.ceil((opts.time_limit - self.train_seconds) / per_update)))
            t0 = time.perf_counter()
            losses, smooths = trainer.run(count)
            dt = time.perf_counter() - t0
            self.train_seconds += dt
            block = int(np.clip(count * opts.block_seconds / max(dt, 1e-6), 1, 1_000_000))
            self.check_finite(u, losses)
            updates = np.arange(u + 1, u + count + 1)
            keep = updates % opts.log_every == 0
            if np.any(keep):
                self.dir.append_metrics(np.column_stack([updates[keep], [trainer.epoch_of(v) for v in updates[keep]],
                                                         losses[keep], smooths[keep]]))
            done = trainer.update
            if opts.sample_every > 0 and done % opts.sample_every == 0:
                self.sample()
            if self.scorer and opts.val_every > 0 and done % opts.val_every == 0:
                self.validate()
                if opts.time_limit is not None:  # the budget left and the held-out loss, as it goes
                    self.summarize(finished=False)
            if opts.checkpoint_every > 0 and done % opts.checkpoint_every == 0:
                self.checkpoint()
            if opts.on_progress:
                self.report(done)
            if opts.should_stop and opts.should_stop() and done < opts.total_updates:
                self.checkpoint()
                self.summarize(finished=False)
                raise Interrupted(done, self.dir.path)
        if opts.time_limit is not None and self.scorer and self.validated_at != trainer.update:
            self.validate()  # what the budget reached
        self.checkpoint()
        self.best_passage()
        return self.summarize(finished=True)

    def check_finite(self, u: int, losses: np.ndarray) -> None:
        finite = np.isfinite(losses)
        if not (np.all(finite) and np.all(np.isfinite(self.trainer.live_params()))):
            bad = u + 1 + int(np.argmin(finite)) if not np.all(finite) else u + len(losses)
            raise NonFiniteError(f"the loss or the parameters became non-finite by update {bad}; "
                                 f"the checkpoints keep the last good state (try a smaller eta)")

    def sample(self) -> None:
        """A periodic sample, from the carried state, with random numbers of (seed, update); of
        a documents model, documents one per line, as many as fill the sample's length."""
        from .sample import sample_documents, sample_text  # the kernels: as in __init__

        state = self.trainer.state()
        rng, length = _sample_rng(state.hyper.seed, state.update), self.opts.sample_length
        if state.hyper.documents:
            documents = []
            while sum(len(d) + 1 for d in documents) < length and len(documents) < length:
                documents += sample_documents(state, 8, length, int(rng.integers(2**62)))
            text = "\n".join(documents)
        else:
            text = sample_text(state, length, rng=rng)
        self.dir.append_sample(state.update, state.smooth_loss, text)

    def validate(self) -> None:
        """The validation loss of the live model, scored as ``fastrnn eval`` scores (from its
        carried state); best.npz when it is the lowest yet."""
        current = self.trainer.state()
        loss, count = self.scorer.total_loss(current.params, self.val_book, current.h)
        nats = loss / count
        self.dir.append_validation(current.update, nats)
        self.validated_at = current.update
        self.last_val = nats
        if nats < self.best_saved:
            current.best_val_loss = nats
            save_checkpoint(self.dir.file("best.npz"), current)
            self.best_saved = nats
        self.trainer.best_val_loss = self.best_saved

    def checkpoint(self) -> None:
        # best.npz first: a crash in between must not leave last.npz claiming a best on disk
        best = None if self.scorer else self.trainer.best_state()
        if best is not None and best.best_smooth_loss < self.best_saved:
            save_checkpoint(self.dir.file("best.npz"), best)
            self.best_saved = best.best_smooth_loss
        save_checkpoint(self.dir.file("last.npz"), self.trainer.state())

    def best_passage(self) -> None:
        from .sample import sample_documents, sample_text  # the kernels: as in __init__

        best = load_checkpoint(self.dir.file("best.npz"))
        if best.hyper.documents:
            passage = "\n".join(sample_documents(best, FINAL_DOCUMENTS, self.opts.final_len, self.state0.hyper.seed))
            start = f"in {FINAL_DOCUMENTS} documents, each from the start state"
        else:
            passage = sample_text(best, self.opts.final_len, seed=self.state0.hyper.seed)
            start = ("from its carried hidden state and next character" if best.next_char is not None
                     else "from its carried hidden state")
        if self.scorer:
            self.dir.append_best_passage(best.update, "validation loss", best.best_val_loss, start, passage)
        else:
            self.dir.append_best_passage(best.update, "smooth loss", best.smooth_loss, start, passage)

    def report(self, done: int) -> None:
        trainer = self.trainer
        chars = (done - self.start_update) * trainer.hyper.seq_length * trainer.hyper.streams
        limit = self.opts.time_limit
        self.opts.on_progress(Progress(done, self.opts.total_updates, trainer.epoch_of(done), trainer.smooth_loss,
                                       chars / max(self.train_seconds, 1e-9), time.perf_counter() - self.wall_start,
                                       self.train_seconds / max(done - self.start_update, 1), self.last_val,
                                       None if limit is None else max(0.0, limit - self.train_seconds)))

    def summarize(self, finished: bool) -> dict:
        state, trainer = self.state0, self.trainer
        final = trainer.state()
        chars = (final.update - self.start_update) * state.hyper.seq_length * state.hyper.streams
        finite = lambda x: x if np.isfinite(x) else None  # noqa: E731
        summary = {
            "finished": finished,
            "updates": final.update,
            "updates_this_run": final.update - self.start_update,
            "epochs": final.update * state.hyper.streams / trainer.per_epoch,
            "chars": chars,
            "seconds": self.train_seconds,
            "chars_per_s": chars / self.train_seconds if self.train_seconds > 0 else None,
            "wall_seconds": time.perf_counter() - self.wall_start,
            "best_smooth_loss": finite(final.best_smooth_loss),
            "best_model_update": load_checkpoint(self.dir.file("best.npz")).update,
            "final_smooth_loss": finite(final.smooth_loss),
            "best_val_nats_per_char": finite(self.best_saved) if self.scorer else None,
            "last_val_nats_per_char": self.last_val,
            "time_limit": self.opts.time_limit,
            "time_left": (max(0.0, self.opts.time_limit - self.train_seconds) if self.opts.time_limit is not None
                          else None),
            "book_chars": int(self.book.shape[0]),
            "val_chars": int(self.val_book.shape[0]) if self.val_book is not None else 0,
            "vocab_size": state.vocab.size,
            "hyper": {k: getattr(state.hyper, k) for k in state.hyper.__dataclass_fields__},
            **self.opts.extra_summary,
        }
        self.dir.write_summary(summary)
        return summary
