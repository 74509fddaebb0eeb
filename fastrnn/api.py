"""The Python API of runs: train and resume them, open them, check the gradients; a trained
model's is ``trained.py`` (``load``, ``Model``).

The command line is a thin layer over these functions. Every error a user can cause is a
``FastrnnError`` whose message is one line; ``OptionError`` names the option that was wrong.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import plan
from .errors import FastrnnError
from .model import load_checkpoint
from .progress import ProgressDisplay
from .recipes import run_settings
from .rundir import RunDir, RunLock, default_run_dir, holds_run, load_run_config
from .settings import (BY_NAME, OPTIONS, RUN, STORED, OptionError, check, check_count, check_positive,
                       parameter_docs)
from .stopping import StopRequest
from .text import read_text
from .trained import Model, load

__all__ = ["OptionError", "Run", "Sample", "gradcheck", "resume", "train"]


def gradcheck(book=None, *, text: str | None = None, cell: str = "rnn", layers: int = 1, hidden: int = 5,
              seq_length: int = 25, seed: int = 0, sigma: float = 0.01, chunks: int = 0, h: float = 1e-4,
              tol: float | None = None, dtype: str = "float64", encoding: str = "utf-8", embedding: int = 0):
    """Analytic gradients of the kernels and of the NumPy reference against numerical ones, for
    every parameter array of a model of ``layers`` layers of ``cell`` (after an input embedding
    of width ``embedding``, 0: none), on the first chunk of
    ``book`` (a file) or ``text`` (a small built-in text without either) and ``chunks`` more.
    Returns a ``GradientCheck``: ``.results``, ``.passed``, ``.table()`` (what ``fastrnn
    gradcheck`` prints)."""
    from .gradients import BUILTIN_TEXT, CheckSettings, gradient_check  # Numba: not while ``import fastrnn``

    for name, value in dict(cell=cell, dtype=dtype, layers=layers, hidden=hidden, seq_length=seq_length, seed=seed,
                            embedding=embedding, sigma=sigma).items():
        check(name, value)
    check_count("chunks", chunks, least=0)
    check_positive("h", h)
    check_positive("tol", tol)
    if text is None:
        text = read_text(book, encoding) if book is not None else BUILTIN_TEXT
    return gradient_check(text, CheckSettings(cell=cell, layers=int(layers), embedding=int(embedding), hidden=hidden,
                                              sigma=sigma, dtype=dtype, seq_length=seq_length, seed=seed, chunks=chunks,
                                              h=h), tol)


@dataclass(frozen=True)
class Sample:
    """A text generated during training."""

    update: int
    smooth_loss: float
    text: str


class Run:
    """A run directory, finished or not: ``fastrnn.Run(path)``.

    ``metrics`` and ``validation`` are dicts of NumPy arrays by column; ``samples`` the texts
    generated every ``sample_every`` updates; ``summary`` the contents of summary.json (empty
    while the run has not written one).
    """

    def __init__(self, path):
        self.dir = os.fspath(path)
        """The run directory."""
        if not os.path.isdir(self.dir) or not holds_run(self.dir):
            raise FastrnnError(f"{self.dir}: not a fastrnn run directory")
        self._files = RunDir(self.dir)
        self.updates_trained = None
        """Updates trained by the ``train`` or ``resume`` call that returned this run (None
        for a run opened with ``Run(path)``)."""

    def __repr__(self) -> str:
        return f"<fastrnn.Run {self.dir}>"

    @property
    def model(self) -> Model:
        """The model at the end of the run (last.npz)."""
        return load(self._files.file("last.npz"))

    @property
    def best_model(self) -> Model:
        """The best model (best.npz): lowest validation loss, or lowest smooth loss."""
        return load(self._files.file("best.npz"))

    @property
    def metrics(self) -> dict[str, np.ndarray]:
        """update, epoch, loss, smooth_loss every ``log_every`` updates."""
        rows = self._files.metrics()
        return {"update": rows[:, 0].astype(np.int64), "epoch": rows[:, 1].astype(np.int64), "loss": rows[:, 2],
                "smooth_loss": rows[:, 3]}

    @property
    def validation(self) -> dict[str, np.ndarray] | None:
        """update, nats_per_char, bits_per_char of the held-out text, or None without one."""
        if not os.path.exists(self._files.file("validation.csv")):
            return None
        rows = self._files.validation()
        return {"update": rows[:, 0].astype(np.int64), "nats_per_char": rows[:, 1], "bits_per_char": rows[:, 2]}

    @property
    def samples(self) -> list[Sample]:
        """The texts generated every ``sample_every`` updates, in order."""
        return [Sample(*sample) for sample in self._files.samples()]

    @property
    def summary(self) -> dict:
        """summary.json ({} while the run has not written one)."""
        return self._files.summary()

    def report(self, path, markdown: bool = False) -> None:
        """Write the run's report (``report.py``): one self-contained HTML page, or Markdown with
        the loss figure as a PNG file beside it."""
        from .report import write_html, write_markdown

        (write_markdown if markdown else write_html)(self.dir, path)

    def plot(self):
        """A matplotlib Figure of the smooth loss per update (and the validation bits per
        character, when the run held text out)."""
        from .plot import loss_figure

        return loss_figure(self._files.metrics(), self._files.validation())


def _display(progress):
    """(the callable told of progress or None, a function for lines of its own)."""
    if progress is True:
        display = ProgressDisplay()
        return display, display.say
    if callable(progress):
        return progress, getattr(progress, "say", lambda message: None)
    return None, lambda message: None


def train(book=None, *, text=None, out=None, steps: int | None = None, epochs: int | None = None,
          init=None, cell: str | None = None, layers: int | None = None, hidden: int | None = None,
          seq_length: int | None = None, eta: float | None = None, sigma: float | None = None, seed: int = 0,
          optimizer: str | None = None, beta1: float | None = None,
          beta2: float | None = None, alpha: float | None = None, weight_decay: float | None = None,
          schedule: str | None = None, min_eta: float | None = None, warmup: int = 0, decay: float | None = None,
          decay_every: int | None = None, clip: float | None = None, clip_norm: float | None = None,
          dropout: float | None = None, embedding: int | None = None, dtype: str | None = None,
          streams: int | None = None, restart_every: int = 0, threads: int | None = None,
          val_fraction: float = 0.0, val_file=None, val_every: int | None = None, sample_every: int = 10_000,
          sample_length: int = 200, log_every: int = 100, checkpoint_every: int = 10_000, encoding: str = "utf-8",
          format: str = "auto", force: bool = False,
          time_limit=None, planned_updates: int | None = None, progress=True, should_stop=None) -> Run:
    """Train a model on a book and return its run.

    Every setting is declared once in ``fastrnn.settings``, with its range, default and help
    (the options of ``fastrnn train``); a setting not given (None) takes the cell's recipe
    (``recipes.py``): for rnn the assignment's rule (hidden 100, seq_length 25, 1 stream,
    float64, AdaGrad at eta 0.1, each element clipped to 5), for gru and lstm hidden 384,
    seq_length 64, 32 streams, float32, an embedding of 256, Adam at 0.004 with the cosine
    schedule and the global norm clipped to 5 (lstm: dropout 0.1, 0.2 past 12 epochs, and
    weight decay 0.1).

    Parameters
    ----------
    book : str or path, optional
        A text file, a directory of .txt files, tweets in JSON, or a corpus name from
        ``fastrnn corpus list``; None (and no ``text``) trains on the built-in demo corpus.
    text : str or list of str, optional
        The book as a string, or a list of documents (names, tweets), each read from the start
        state as ``format="lines"`` reads a list's lines; kept in the run directory as
        book.txt so that the run can be resumed.
    out : str or path, optional
        The run directory [default: ``runs/<book>-<date>-<time>``]; an existing run is kept
        unless ``force``.
    steps, epochs : int, optional
        Total updates and/or passes over the book (the fewer wins) [default: 5 epochs].
    time_limit : str or float, optional
        Train for this long instead ("150s", "2.5m", "1h", or seconds; compilation and
        validation not counted): the updates that fit, measured before the run starts, become
        its number of updates (a cosine schedule spans them, ``resume`` continues to them).
    planned_updates : int, optional
        Train the first ``steps`` updates of a run planned for this many, which ``resume``
        continues (a sweep's halving trains its trials so).
    init : str or path, optional
        Fine-tune: start from this trained model (a checkpoint, or a run directory's best.npz).
        The vocabulary becomes the union of the model's and the text's; the cell, layers,
        hidden size, embedding and dtype are the model's; the optimizer starts afresh.
    SETTINGS
        Every setting's entry, written from its declaration (``fastrnn.settings``) when the
        module is imported.
    force : bool
        Replace a run already in ``out``.
    progress : bool or callable
        True: a progress display on stderr; False: none; a callable: called with a
        ``trainer.Progress`` after each block of updates.
    should_stop : callable, optional
        Asked between blocks of updates; True stops the run after a checkpoint by raising
        ``fastrnn.Interrupted``. By default an interrupt (Ctrl-C, a notebook's) does that, and
        ``fastrnn.resume`` continues the run exactly; a second interrupt stops at once.

    Returns
    -------
    Run

    Examples
    --------
    >>> text = "the rain in spain falls mainly on the plain. " * 100
    >>> run = fastrnn.train(text=text, steps=300, hidden=16, out="runs/doc", force=True, progress=False)
    >>> run.summary["updates"], bool(run.metrics["smooth_loss"][-1] < run.metrics["smooth_loss"][0])
    (300, True)
    >>> fastrnn.resume("runs/doc", steps=400, progress=False).updates_trained
    100
    """
    arguments = locals()
    given = {s.name: arguments[s.name] for s in OPTIONS}
    if book is not None and text is not None:
        raise OptionError("text", "give a book or a text, not both")
    start = None
    if init is not None:
        start = load(init)
        for name in ("cell", "layers", "hidden", "dtype", "embedding"):
            have = start.hyper[name]
            if given[name] is not None and given[name] != have:
                raise OptionError(name, f"{name} comes from the init model ({have!r}), not {given[name]!r}")
            given[name] = have
        given["sigma"] = start.hyper["sigma"] if sigma is None else sigma
    if val_file is not None:
        given["val_file"] = val_file = os.fspath(val_file)
        if val_fraction:
            raise OptionError("val_file", "give val_fraction or val_file, not both")
    settings = run_settings({s.name: given[s.name] for s in STORED if s.option})
    for s in OPTIONS:
        if s.group == RUN and s.name not in ("time_limit", "threads"):  # read by parse_time_limit, use_threads
            check(s.name, given[s.name])
    if time_limit is not None:
        time_limit = plan.parse_time_limit(time_limit, steps, epochs, planned_updates)
    plan.use_threads(threads)
    tell, say = _display(progress)
    if text is None:
        book = plan.named_corpus(book) if book is not None else plan.demo_corpus(say)
    settings["documents"] = plan.reads_documents(format, book) if text is None else not isinstance(text, str)
    if start is not None and start._state.hyper.documents and not settings["documents"]:
        raise OptionError("init", f"{init} was trained on documents (a list, tweets): fine-tune it on documents "
                                  f"(--format lines), not on a book")
    out = os.fspath(out or default_run_dir("text" if text is not None else os.fspath(book)))
    with RunLock(out):  # before the check: two runs told the same --out cannot both pass it
        if holds_run(out) and not force:
            raise FastrnnError(f"{out} already holds a run; pass --force (force=True) to overwrite it or "
                               f"--resume (fastrnn.resume) to continue it")
        intervals = {name: given[name] for name in plan.INTERVALS}
        with plan.staged_text(text, out, settings["seq_length"]) as staged:
            new = plan.RunPlan(out, staged.book if staged else book, staged.source if staged else book,
                               "utf-8" if staged else encoding, "text" if staged else format, float(val_fraction),
                               intervals, steps, epochs, settings=settings, init=start and start._state,
                               init_path=start and os.path.abspath(start.path), time_limit=time_limit,
                               planned_updates=planned_updates, dropout_by_epochs=dropout is None, force=force,
                               share_machine=threads is None, val_file=val_file)
            return _carry_out(new, tell, say, should_stop)


train.__doc__ = train.__doc__.replace(
    "    SETTINGS\n        Every setting's entry, written from its declaration (``fastrnn.settings``) when the\n"
    "        module is imported.\n",
    parameter_docs([s.name for s in OPTIONS if s.name not in ("steps", "epochs", "time_limit", "planned_updates")]))


def resume(run_dir, *, steps: int | None = None, epochs: int | None = None, book=None, encoding: str | None = None,
           format: str | None = None, threads: int | None = None, sample_every: int | None = None,
           sample_length: int | None = None, log_every: int | None = None, checkpoint_every: int | None = None,
           val_every: int | None = None, progress=True, should_stop=None) -> Run:
    """Continue the run in ``run_dir`` exactly from its last checkpoint, to ``steps`` updates or
    ``epochs`` passes in all (by default the total it was started with). The book, encoding,
    format and intervals are the run's own unless given. A finished run is returned as it is."""
    run_dir = os.fspath(run_dir)
    arguments = locals()
    given = {name: value for name, value in arguments.items() if name in BY_NAME}
    for name, value in given.items():
        check(name, value)
    if not os.path.isdir(run_dir):
        raise FastrnnError(f"{run_dir}: no such run directory")
    with RunLock(run_dir):
        config = load_run_config(run_dir)
        state = load_checkpoint(os.path.join(run_dir, "last.npz"))
        plan.use_threads(threads)
        tell, say = _display(progress)
        # what a run's files are written by: the run's own unless given (a run older than a setting: its default)
        intervals = {name: config.get(name, BY_NAME[name].default) if given[name] is None else int(given[name])
                     for name in plan.INTERVALS}
        book = plan.named_corpus(book) if book is not None else config["book"]
        if steps is None and epochs is None:
            steps = config["total_updates"]
        if format is not None and (plan.reads_documents(format, book)
                                   != plan.reads_documents(config["format"], config["book"])):
            raise OptionError("format", f"{run_dir} was trained on "
                                        f"{'documents' if state.hyper.documents else 'a book'} "
                                        f"(--format {config['format']}); it cannot resume on --format {format}")
        resumed = plan.RunPlan(run_dir, book, book, encoding or config["encoding"], format or config["format"],
                               config["val_fraction"], intervals, steps, epochs, resumed=state, config=config,
                               share_machine=threads is None, val_file=config.get("val_file"))
        return _carry_out(resumed, tell, say, should_stop)


def _carry_out(run_plan, tell, say, should_stop) -> Run:
    """``plan.carry_out``; without ``should_stop``, an interrupt (Ctrl-C, a notebook's) stops
    the run after a checkpoint, as at the command line."""
    if should_stop is None:
        with StopRequest() as stop:
            return _carry_out(run_plan, tell, say, stop)
    summary = plan.carry_out(run_plan, tell, say, should_stop)
    run = Run(run_plan.out)
    run.updates_trained = summary["updates_this_run"]
    return run
