"""The training loop in Python: the walk through the book, smooth loss, samples, run directory.

The per-update work runs inside ``kernels.loop``; Python calls it for blocks of a few hundred
milliseconds so it can report progress, write samples and checkpoints in between.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import FastrnnError
from .model import State, save_checkpoint, with_streams
from .optimizers import learning_rates


def updates_per_epoch(n_chars: int, seq_length: int) -> int:
    """Chunks that fit in one pass: starts 0, n, 2n, ... with n + 1 characters each."""
    return (n_chars - 1) // seq_length


class Trainer:
    """The run state and workspace of ``kernels.loop`` for one run, allocated once, and the
    model states read back from them."""

    def __init__(self, state: State, book: np.ndarray, parallel: bool | None = None, share_machine: bool = False):
        """``parallel``: run the loop's parallel build (True) or its serial one (False); by
        default the parallel one where there are several blocks of streams and threads.
        ``share_machine``: run each block of updates on fewer of Numba's threads while other
        processes' threads are runnable (``sharing.py``)."""
        import numba

        from .kernels import loop
        from .kernels.workspace import new_run_state

        self.vocab, self.hyper, self.book = state.vocab, state.hyper, book
        n, B = state.hyper.seq_length, state.hyper.streams
        self.per_epoch = updates_per_epoch(book.shape[0], n)
        if B > self.per_epoch:
            raise ValueError(f"{B} streams on a text of {self.per_epoch} chunks: streams would coincide")
        if B > 1 and state.stream_h is None:
            state = with_streams(state.copy(), book.shape[0])
        H, positions = ((state.h[None, :], [state.position]) if B == 1
                        else (state.stream_h, state.stream_positions))
        self.run_state = new_run_state(state.params, state.opt_state, H, positions, state.update,
                                       state.smooth_loss, state.best_smooth_loss)
        self.work, dims, kind = model_workspace(state.layout, B, n, state.params.dtype, book.dtype,
                                                state.hyper.dropout, state.hyper.seed)
        self.best_val_loss = state.best_val_loss
        h = state.hyper
        if parallel is None:
            self._loop = loop.loop_for(len(self.work.block_starts) - 1, numba.get_num_threads(), kind, h.optimizer)
        else:
            self._loop = loop.train_loops(kind, h.optimizer)[1 if parallel else 0]
        dtype = state.params.dtype
        # the global-norm clip replaces the element-wise one
        clip = np.inf if h.clip_norm > 0 else h.clip
        self._opts = tuple(dtype.type(x) for x in (h.eps, clip, h.clip_norm, h.beta1, h.beta2, h.alpha,
                                                   h.weight_decay))
        self._dims = dims
        self._block = None  # the block function as the loop takes it, once needed
        self._share = None
        if share_machine and len(self.work.block_starts) > 2:
            from .sharing import ThreadShare

            self._share = ThreadShare(numba.get_num_threads())

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
            etas = learning_rates(self.hyper, self.update, count).astype(self.run_state.params.dtype)
            if self._block is None:
                self._block = self._loop.pointer(self.run_state, self.work, self.book, self._dims)
            if self._share is None:
                self._loop(losses[done:done + count], smooths[done:done + count], self.run_state, self.work,
                           self.book, etas, self._opts, self._dims, self._block)
            else:
                with self._share.threads_for_block():
                    self._loop(losses[done:done + count], smooths[done:done + count], self.run_state, self.work,
                               self.book, etas, self._opts, self._dims, self._block)
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

    def compile_loop(self) -> None:
        """Compile this trainer's loop build (or load it from the cache) without the block
        function it calls (``kernels.loop.TrainLoop``)."""
        losses = np.empty(1)
        etas = np.empty(1, self.run_state.params.dtype)
        self._loop.compile_loop(losses, losses, self.run_state, self.work, self.book, etas, self._opts, self._dims)

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


def model_workspace(layout, streams: int, n: int, dtype, index_dtype, dropout: float = 0.0, seed: int = 0):
    """(workspace, dims, kind) of a model of ``layout`` for the kernels: the classic cell's
    ``Workspace`` and (m, K), or a stack's ``StackWorkspace`` and (L, m, K, gm), with
    ``dropout`` (masks drawn from ``seed``); ``kind`` names the loop's build
    (``kernels.loop.train_loops``)."""
    from .kernels.workspace import allocate_stack_workspace, allocate_workspace

    m, K = layout.m, layout.K
    if layout.classic:
        return (allocate_workspace(streams, n, m, K, layout.size, dtype, index_dtype, dropout, seed), (m, K),
                "classic")
    dims = (layout.layers, m, K, layout.gm)
    return (allocate_stack_workspace(streams, n, layout.layers, m, layout.gm, K, layout.folded_size, dtype,
                                     index_dtype, dropout, seed, layout.embedding), dims, layout.cell)


def chunk_gradients(state: State, x: np.ndarray, y: np.ndarray, h0: np.ndarray) -> tuple[float, np.ndarray]:
    """(loss, raw gradients (P,)) of one chunk from the kernels: inputs x, targets y (n,) int,
    from the flat carried state h0 (S,), for a model of any layout (gradcheck, tests)."""
    from .kernels import loop
    from .kernels.stack import kernels_for
    from .kernels.workspace import new_run_state

    layout = state.layout
    n = len(x)
    work, dims, kind = model_workspace(layout, 1, n, state.params.dtype, np.asarray(x).dtype)
    book = np.concatenate([np.asarray(x), np.asarray(y)[-1:]]).astype(np.asarray(x).dtype)
    run = new_run_state(state.params, state.opt_state, np.asarray(h0, state.params.dtype)[None, :], [0], 0,
                        float("nan"), float("inf"))
    params = run.params[0]
    if kind == "classic":
        loop.transposes_for(work, params, dims)
        loop.block_loss_and_grads(0, run, work, book, params, dims)
        return float(work.block_losses[0]), work.block_grads[0].copy()
    from .kernels.embedding import embedding_grads_into

    kernels = kernels_for(kind)
    model = layout.fold(params)
    kernels["transposes_for"](work, model, dims)
    kernels["block_loss_and_grads"](0, run, work, book, model, dims)
    grads = work.block_grads[0].copy()
    if layout.embedding:
        grads = np.empty(layout.size, params.dtype)
        embedding_grads_into(grads, work.block_grads[0], params, layout.K, layout.embedding, layout.gm)
    return float(work.block_losses[0]), grads


def compile_kernels(dtype, index_dtype, *, streams: int = 0, sampler: bool = False, scorer: bool = False,
                    cell: str = "rnn", layers: int = 1, optimizer: str = "adagrad", embedding: bool = False,
                    on_compile=None, slow_after: float = 1.0, parallel: bool | None = None,
                    loop_alone: bool = False) -> float:
    """Compile (or load from the on-disk cache) the kernels a command runs, for these dtypes
    and a model of ``layers`` layers of ``cell`` (each cell and optimizer compiles its own): the
    loop build that a run of ``streams`` streams uses (none for 0; ``parallel``: that build
    rather than the one this process's threads choose), the sampler, the scorer.

    With the training loop to compile and a core to spare, a child process compiles the product
    that the block function's backward pass needs last (``linalg.compile_transposed_product``),
    the loop without the block function it calls (``loop_alone``; ``kernels.loop.TrainLoop``),
    then the sampler and the scorer, into the cache, where this one loads them; this one
    compiles the block function (the cell's whole tree) meanwhile. ``on_compile(what)`` is
    called when one of them takes longer than ``slow_after`` seconds, which means a real
    compilation (a cache load takes a fraction of a second); its ``what`` says how long that
    compilation took here last time (``compile_times``).
    Returns the seconds it all took.
    """
    import threading

    import numba

    from .compile_times import CompileTimes
    from .evaluate import TextScorer
    from .kernels import CACHE_WRITABLE, loop
    from .kernels.linalg import compile_transposed_product
    from .model import Hyper, init_state
    from .sample import sample_indices
    from .text import Vocab

    start = time.perf_counter()
    vocab = Vocab(np.arange(2, dtype=np.uint32))
    book = np.zeros(5, dtype=index_dtype)
    state = init_state(vocab, Hyper(hidden=2, seq_length=2, dtype=np.dtype(dtype).name, cell=cell, layers=layers,
                                    optimizer=optimizer, embedding=2 if embedding else 0))
    trainer_kind = "classic" if state.layout.classic else cell
    blocks = len(model_workspace(state.layout, max(streams, 1), 1, dtype, index_dtype)[0].block_starts) - 1
    build = loop.loop_for(blocks, numba.get_num_threads(), trainer_kind, optimizer)
    if parallel is not None:
        build = loop.train_loops(trainer_kind, optimizer)[1 if parallel else 0]
    parallel_build = build is loop.train_loops(trainer_kind, optimizer)[1]

    def train():
        trainer = Trainer(state, book, parallel=parallel_build)
        if loop_alone:
            compile_transposed_product(dtype)
            trainer.compile_loop()
        else:
            trainer.run(1)

    jobs = [(streams > 0, f"the training loop{' (parallel build)' if parallel_build else ''}", train),
            (sampler, "the sampler", lambda: sample_indices(state.params, vocab, 2, 2, np.random.default_rng(0),
                                                            cell=cell, layers=layers, embedding=state.hyper.embedding)),
            (scorer, "the scorer", lambda: TextScorer(2, 2, state.params.dtype, index_dtype, chunk=2, cell=cell,
                                                      layers=layers, embedding=state.hyper.embedding
                                                      ).total_loss(state.params, book))]
    helper = None
    if streams > 0 and not loop_alone and CACHE_WRITABLE and not _cached(f"loop.{build.name}"):
        helper = _compile_in_child(dtype, index_dtype, streams, parallel_build, sampler, scorer, cell, layers,
                                   optimizer, embedding)
        if helper is not None and on_compile:
            on_compile(" and ".join(["part of the training loop"] + [what for wanted, what, _ in jobs[1:] if wanted])
                       + " in a second process (first run only)")
    times = CompileTimes()
    build = f"{trainer_kind} {layers if trainer_kind != 'classic' else ''} {optimizer} {np.dtype(dtype).name}"
    for wanted, what, job in jobs:
        if not wanted:
            continue
        if helper is not None and what in ("the sampler", "the scorer"):
            helper.wait()
            helper = None
        key = f"{what}, {' '.join(build.split())}"
        timer = (threading.Timer(slow_after, on_compile, args=(f"{what} (first run only{times.hint(key)})",))
                 if on_compile else None)
        if timer:
            timer.start()
        began = time.perf_counter()
        try:
            job()
        finally:
            if timer:
                timer.cancel()
        if time.perf_counter() - began > slow_after:
            times.record(key, time.perf_counter() - began)
    return time.perf_counter() - start


def _cached(name: str) -> bool:
    """Whether the kernel cache holds compiled code of ``name`` (module.function), in any
    version: a cold cache holds none."""
    import glob

    from .kernels import CACHE_DIR

    return bool(glob.glob(os.path.join(glob.escape(CACHE_DIR), "*", f"{name}-*.nbi")))


def _compile_in_child(dtype, index_dtype, streams: int, parallel: bool, sampler: bool, scorer: bool, cell: str,
                      layers: int, optimizer: str, embedding: bool):
    """A child process compiling the training loop alone (``compile_kernels``'s
    ``loop_alone``), then the sampler and/or the scorer, into the cache, or None on a single
    core; if it fails, the parent compiles them itself."""
    import subprocess
    import sys

    if (os.cpu_count() or 1) < 2:
        return None
    code = ("import numpy as np; from fastrnn.trainer import compile_kernels; "
            f"compile_kernels(np.dtype('{np.dtype(dtype).name}'), np.dtype('{np.dtype(index_dtype).name}'), "
            f"streams={streams}, parallel={parallel}, loop_alone=True, sampler={sampler}, scorer={scorer}, "
            f"cell={cell!r}, layers={layers}, optimizer={optimizer!r}, embedding={embedding})")
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


def _training_sample(trainer: Trainer, n: int) -> str:
    from .sample import sample_text

    state = trainer.state()
    return sample_text(state, n, rng=_sample_rng(state.hyper.seed, state.update))


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
    return _Training(state, book, out_dir, opts, resume, val_book).run()


class _Training:
    """One call of ``train_run``: the trainer, the run directory, and the best model on disk."""

    def __init__(self, state: State, book: np.ndarray, out_dir: str, opts: RunOptions, resume: bool,
                 val_book: np.ndarray | None):
        from .rundir import RunDir

        self.state0, self.book, self.opts, self.resume, self.val_book = state, book, opts, resume, val_book
        self.dir = RunDir(out_dir)
        self.trainer = Trainer(state, book, share_machine=opts.share_machine)
        self.scorer = None
        if val_book is not None:
            from .evaluate import TextScorer

            self.scorer = TextScorer(state.hyper.hidden, state.vocab.size, state.params.dtype, val_book.dtype,
                                     cell=state.hyper.cell, layers=state.hyper.layers,
                                     embedding=state.hyper.embedding)
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
        """A periodic sample, from the carried state, with random numbers of (seed, update)."""
        from .sample import sample_text

        state = self.trainer.state()
        text = sample_text(state, self.opts.sample_length, rng=_sample_rng(state.hyper.seed, state.update))
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
        from .model import load_checkpoint
        from .sample import sample_text

        best = load_checkpoint(self.dir.file("best.npz"))
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
        from .model import load_checkpoint

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
