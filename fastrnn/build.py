"""Compiling the kernels a command runs, before it runs them: what to compile (``KernelSet``),
a second process on a cold start, the "compiling ..." messages, and how long each build took
here (``CompileTimes``), so that the message can say how long to expect.

Compiled code is kept in the kernel cache (``kernels.CACHE_DIR``, which ``paths.py`` names); a
build found there loads in a fraction of a second.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

from .engine import Trainer, engine_for
from .files import atomic_write
from .kernels import CACHE_DIR, CACHE_ROOT, CACHE_WRITABLE
from .kernels.linalg import compile_transposed_product
from .model import Hyper, init_state
from .text import Vocab


@dataclasses.dataclass(frozen=True)
class KernelSet:
    """The kernels a command runs: for parameters of ``dtype`` and texts of ``index_dtype``, a
    model of ``layers`` layers of ``cell`` (after an input embedding with ``embedding``; each
    cell and optimizer compiles its own), the training loop of a run of ``streams`` streams
    (none for 0) with ``optimizer``, the sampler, the scorer.

    ``parallel``: that build of the loop rather than the one this process's threads choose.
    ``loop_alone``: the loop without the block function it calls (``kernels.loop.TrainLoop``)
    and the product the block function's backward pass needs last: what the second process
    compiles on a cold start.
    """

    dtype: str
    index_dtype: str
    cell: str = "rnn"
    layers: int = 1
    embedding: bool = False
    optimizer: str = "adagrad"
    streams: int = 0
    sampler: bool = False
    scorer: bool = False
    parallel: bool | None = None
    loop_alone: bool = False

    def __post_init__(self):
        # dtypes by name, so that the set is plain data for the second process's command line
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
        object.__setattr__(self, "index_dtype", np.dtype(self.index_dtype).name)

    @classmethod
    def of(cls, hyper: Hyper, index_dtype, **parts) -> KernelSet:
        """The kernels of a model of ``hyper`` on texts of ``index_dtype``; ``parts``: streams,
        sampler, scorer, parallel."""
        return cls(hyper.dtype, index_dtype, hyper.cell, hyper.layers, hyper.embedding > 0, hyper.optimizer, **parts)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> KernelSet:
        return cls(**json.loads(text))


def compile_kernels(kernels: KernelSet, on_compile=None, slow_after: float = 1.0) -> float:
    """Compile (or load from the on-disk cache) ``kernels``.

    With the training loop to compile and a core to spare, a child process compiles the product
    that the block function's backward pass needs last (``linalg.compile_transposed_product``),
    the loop without the block function it calls, then the sampler and the scorer, into the
    cache, where this one loads them; this one compiles the block function (the cell's whole
    tree) meanwhile. ``on_compile(what)`` is called when one of them takes longer than
    ``slow_after`` seconds, which means a real compilation (a cache load takes a fraction of a
    second); its ``what`` says how long that compilation took here last time
    (``CompileTimes``). Returns the seconds it all took.
    """
    start = time.perf_counter()
    vocab = Vocab(np.arange(2, dtype=np.uint32))
    book = np.zeros(5, dtype=kernels.index_dtype)
    state = init_state(vocab, Hyper(hidden=2, seq_length=2, dtype=kernels.dtype, cell=kernels.cell,
                                    layers=kernels.layers, optimizer=kernels.optimizer,
                                    embedding=2 if kernels.embedding else 0))
    engine = engine_for(state.layout)
    blocks = len(engine.workspace(max(kernels.streams, 1), 1, kernels.dtype, kernels.index_dtype).block_starts) - 1
    build = engine.training_loop(kernels.optimizer, blocks, kernels.parallel)
    parallel = build is engine.training_loops(kernels.optimizer)[1]

    def train():
        trainer = Trainer(state, book, parallel=parallel)
        if kernels.loop_alone:
            compile_transposed_product(kernels.dtype)
            trainer.compile_loop()
        else:
            trainer.run(1)

    def score():
        engine.text_loss(engine.workspace(1, 2, kernels.dtype, kernels.index_dtype), state.params, book,
                         np.zeros(state.layout.state_size, state.params.dtype))

    jobs = [(kernels.streams > 0, f"the training loop{' (parallel build)' if parallel else ''}", train),
            (kernels.sampler, "the sampler", lambda: engine.sample(state.params, 2, np.random.default_rng(0))),
            (kernels.scorer, "the scorer", score)]
    helper = None
    if kernels.streams > 0 and not kernels.loop_alone and CACHE_WRITABLE and not _cached(f"loop.{build.name}"):
        helper = _compile_in_child(dataclasses.replace(kernels, parallel=parallel, loop_alone=True))
        if helper is not None and on_compile:
            on_compile(" and ".join(["part of the training loop"] + [what for wanted, what, _ in jobs[1:] if wanted])
                       + " in a second process (first run only)")
    times = CompileTimes()
    model = f"{engine.name} {kernels.optimizer} {kernels.dtype}"
    for wanted, what, job in jobs:
        if not wanted:
            continue
        if helper is not None and what in ("the sampler", "the scorer"):
            helper.wait()
            helper = None
        key = f"{what}, {model}"
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
    return bool(glob.glob(os.path.join(glob.escape(CACHE_DIR), "*", f"{name}-*.nbi")))


# the second process's program; its argument: the kernels to compile, as JSON
CHILD = ("import sys; from fastrnn.build import KernelSet, compile_kernels; "
         "compile_kernels(KernelSet.from_json(sys.argv[1]))")


def _compile_in_child(kernels: KernelSet):
    """A child process compiling ``kernels`` into the cache, or None on a single core; if it
    fails, the parent compiles them itself."""
    if (os.cpu_count() or 1) < 2:
        return None
    return subprocess.Popen([sys.executable, "-c", CHILD, kernels.to_json()], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


class CompileTimes:
    """How long each kernel build took to compile on this machine. Kept beside the compiled
    code, across versions (a new version compiles about as long as the one before); a cache
    that cannot be written keeps none."""

    FILE = "compile_seconds.json"

    def __init__(self):
        self.path = os.path.join(CACHE_ROOT, self.FILE)
        try:
            with open(self.path) as f:
                self.seconds = {k: float(v) for k, v in json.load(f).items()}
        except (OSError, ValueError, AttributeError, TypeError):
            self.seconds = {}

    def hint(self, key: str) -> str:
        """"; about N s on this machine" after a compilation of ``key`` measured here before, else ""."""
        seconds = self.seconds.get(key)
        return f"; about {seconds:.0f} s on this machine" if seconds else ""

    def record(self, key: str, seconds: float) -> None:
        self.seconds[key] = round(seconds, 1)
        try:
            with atomic_write(self.path, "w") as f:
                json.dump(self.seconds, f, indent=1, sort_keys=True)
        except OSError:
            pass
