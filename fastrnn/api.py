"""The Python API: train and resume runs, open them, load models, sample and score text.

The command line is a thin layer over these functions. Every error a user can cause is a
``FastrnnError`` whose message is one line; ``OptionError`` names the option that was wrong.
"""
from __future__ import annotations

import math
import numbers
import os
import secrets
from dataclasses import dataclass

import numpy as np

from .errors import FastrnnError

VAL_EVERY = 10_000  # updates between validations, unless told


class OptionError(FastrnnError, ValueError):
    """An option (a keyword argument; a command-line option) with a value that cannot be used.
    ``option`` is its name."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option

    def __reduce__(self):  # pickled whole: raised on a Dask worker, it reaches the sweep intact
        return type(self), (self.option, str(self))


# ---------------------------------------------------------------------------------------------
# Models

@dataclass(frozen=True)
class Score:
    """How well a model predicts a text (``Model.evaluate``)."""

    bits_per_char: float
    nats_per_char: float
    perplexity: float
    chars: int  # characters in the text
    predicted: int  # characters predicted (each after one the model was fed)
    unknown_chars: int  # characters outside the model's vocabulary, skipped
    unknown_distinct: str  # those characters, each once


def _say_compiling(what: str) -> None:
    import sys

    print(f"compiling {what}...", file=sys.stderr, flush=True)


class Model:
    """A trained model: parameters, vocabulary and the state it was in when saved.

    Open one with ``fastrnn.load``. ``params`` holds every parameter array by name, read-only,
    as ``cells.Layout`` declares them: the classic cell's ``W`` (m, m), ``U`` (m, K), ``V``
    (K, m), ``b`` (m,), ``c`` (K,) (also attributes of the model); a stack's under PyTorch's
    names (``weight_ih_l0``, ..., ``head.weight``, ``head.bias``). ``state`` holds the carried
    state: h (and c for the LSTM).
    """

    def __init__(self, state, path: str | None = None):
        self._state = state
        self.path = path

    def __repr__(self) -> str:
        h = self._state.hyper
        where = f" from {self.path}" if self.path else ""
        cell = "" if self._state.layout.classic else f"{h.cell} x{h.layers} "
        return (f"<fastrnn.Model {cell}m={h.hidden} K={self._state.vocab.size} {h.dtype}, "
                f"update {self.update:,}{where}>")

    @property
    def vocab(self) -> str:
        """The characters the model knows, in index order."""
        return self._state.vocab.chars

    @property
    def hyper(self) -> dict:
        """The hyperparameters of its run (hidden, seq_length, eta, sigma, seed, dtype, ...)."""
        return {k: getattr(self._state.hyper, k) for k in self._state.hyper.__dataclass_fields__}

    @property
    def update(self) -> int:
        """Updates applied to these parameters."""
        return self._state.update

    @property
    def cell(self) -> str:
        """rnn, gru or lstm."""
        return self._state.hyper.cell

    @property
    def layers(self) -> int:
        return self._state.hyper.layers

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Every parameter array by name (read-only views), in the order of ``cells.Layout``."""
        return {name: self._readonly(view) for name, view in self._state.views().items()}

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The carried state sampling and scoring start from: h (m,) for the classic cell, h
        (layers, m) for a stack, and c (layers, m) for the LSTM (read-only)."""
        layout = self._state.layout
        return {name: self._readonly(view) for name, view in layout.state_views(self._state.h).items()}

    def torch_state_dict(self) -> dict[str, np.ndarray]:
        """The parameters under PyTorch's names (copies): ``weight_ih_l{k}`` ... for
        ``torch.nn.RNN/GRU/LSTM`` and ``head.weight``, ``head.bias`` for the output
        ``torch.nn.Linear`` (the classic cell's W, U, b as layer 0's, its bias_hh_l0 zero)."""
        return self._state.layout.torch_state_dict(self._state.params)

    @staticmethod
    def _readonly(view: np.ndarray) -> np.ndarray:
        view = view.view()
        view.flags.writeable = False
        return view

    def _param(self, name: str) -> np.ndarray:
        if not self._state.layout.classic:
            raise AttributeError(f"a {self.cell} model has no {name} (the classic rnn's); see Model.params")
        return self._readonly(self._state.views()[name])

    W = property(lambda self: self._param("W"), doc="hidden-to-hidden weights (m, m)")
    U = property(lambda self: self._param("U"), doc="input-to-hidden weights (m, K)")
    V = property(lambda self: self._param("V"), doc="hidden-to-output weights (K, m)")
    b = property(lambda self: self._param("b"), doc="hidden bias (m,)")
    c = property(lambda self: self._param("c"), doc="output bias (K,)")

    def sample(self, length: int = 1000, *, temperature: float = 1.0, prime: str = "", seed: int | None = None,
               num: int | None = None, top_k: int = 0, from_zero: bool = False,
               until_end: bool = False) -> str | list[str]:
        """Generate text: ``prime`` followed by ``length`` sampled characters.

        Parameters
        ----------
        length : int
            Characters to sample (with ``until_end``, at most).
        temperature : float
            Below 1: likelier characters; above 1: more varied text.
        prime : str
            Text fed to the model after its start state, and returned at the start of each text.
        seed : int, optional
            The same model and seed give the same text; None draws a fresh seed.
        num : int, optional
            Sample this many texts at once and return a list.
        top_k : int
            Pick each character among the ``top_k`` most likely only (0: among all).
        from_zero : bool
            Start from h = 0 instead of the state the model was in when saved (its carried
            hidden state, fed the character that came next in the book).
        until_end : bool
            For models trained on tweets: start a new text and stop at its end.

        Returns
        -------
        str or list of str

        Examples
        --------
        >>> model = fastrnn.load("runs/doc")
        >>> text = model.sample(40, seed=1)
        >>> len(text), text == model.sample(40, seed=1)
        (40, True)
        >>> model.sample(20, prime="the ", seed=2, num=2)[1][:4]
        'the '
        """
        from .sample import sample_texts
        from .build import KernelSet, compile_kernels
        from .text import TextError

        state = self._state
        _check_counts(dict(num=num), dict(length=length, top_k=top_k, seed=seed))
        _check("temperature", temperature, isinstance(temperature, numbers.Real) and temperature > 0,
               "a positive number")
        try:
            missing = state.vocab.missing(prime) if prime else ""
        except TextError as err:
            raise OptionError("prime", str(err)) from None
        if missing:
            raise OptionError("prime", "characters not in the model's vocabulary: "
                                       + " ".join(repr(ch) for ch in missing))
        compile_kernels(KernelSet.of(state.hyper, state.vocab.index_dtype(), sampler=True), on_compile=_say_compiling)
        seed = secrets.randbelow(2**31) if seed is None else seed
        texts = sample_texts(state, length, 1 if num is None else num, seed, temperature, prime, top_k=top_k,
                             from_zero=from_zero, until_end=until_end)
        return texts[0] if num is None else texts

    def evaluate(self, text: str, *, from_zero: bool = False) -> Score:
        """Bits per character, nats per character and perplexity of the model on ``text``,
        scored from its carried hidden state (from h = 0 with ``from_zero``). Characters outside
        the vocabulary are counted and skipped."""
        from .build import KernelSet, compile_kernels
        from .evaluate import evaluate_text

        state = self._state
        compile_kernels(KernelSet.of(state.hyper, state.vocab.index_dtype(), scorer=True), on_compile=_say_compiling)
        result = evaluate_text(state, text, from_zero)
        if result["predicted"] == 0:
            raise FastrnnError("no two consecutive characters of the model's vocabulary to score")
        return Score(**result)

    def export(self, path, html: bool = False) -> None:
        """Write the model as JSON (``export.py`` documents the format) for any language, or, with
        ``html``, as a self-contained web page that samples text from it."""
        if html:
            from .webpage import write_sampler_page

            write_sampler_page(path, self._state)
        else:
            from .export import write_model_json

            write_model_json(path, self._state)

    def save(self, path) -> None:
        """Write the model as a checkpoint (``.npz``) that ``fastrnn.load`` and
        ``fastrnn sample --checkpoint`` read."""
        from .model import save_checkpoint

        save_checkpoint(path, self._state)


def load(path=None) -> Model:
    """A model from a checkpoint file, or from a run directory (its best.npz), or, without a
    path, the best model of the latest run under ``runs/``.

    Examples
    --------
    >>> model = fastrnn.load("runs/doc")
    >>> model.hyper["hidden"], "r" in model.vocab, model.W.shape
    (16, True, (16, 16))
    >>> round(model.evaluate("the rain in spain").bits_per_char, 1) < 4
    True
    """
    from .model import load_checkpoint
    from .rundir import resolve_checkpoint

    try:
        checkpoint = resolve_checkpoint(None if path is None else os.fspath(path))
    except FileNotFoundError as err:
        raise FastrnnError(str(err)) from None
    return Model(load_checkpoint(checkpoint), checkpoint)


def gradcheck(book=None, *, text: str | None = None, cell: str = "rnn", layers: int = 1, hidden: int = 5,
              seq_length: int = 25, seed: int = 0, sigma: float = 0.01, chunks: int = 0, h: float = 1e-4,
              tol: float | None = None, dtype: str = "float64", encoding: str = "utf-8", embedding: int = 0):
    """Analytic gradients of the kernels and of the NumPy reference against numerical ones, for
    every parameter array of a model of ``layers`` layers of ``cell`` (after an input embedding
    of width ``embedding``, 0: none), on the first chunk of
    ``book`` (a file) or ``text`` (a small built-in text without either) and ``chunks`` more.
    Returns a ``GradientCheck``: ``.results``, ``.passed``, ``.table()`` (what ``fastrnn
    gradcheck`` prints)."""
    from .cells import CELLS
    from .gradients import BUILTIN_TEXT, gradient_check
    from .text import read_text

    _check("cell", cell, isinstance(cell, str) and cell in CELLS, "one of " + ", ".join(CELLS))
    _check("dtype", dtype, dtype in ("float64", "float32"), "float64 or float32")
    _check_counts(dict(layers=layers, hidden=hidden, seq_length=seq_length),
                  dict(seed=seed, chunks=chunks, embedding=embedding))
    for name, value in (("sigma", sigma), ("h", h)) + ((("tol", tol),) if tol is not None else ()):
        _check(name, value, isinstance(value, numbers.Real) and 0 < value < math.inf, "a positive number")
    if text is None:
        text = read_text(book, encoding) if book is not None else BUILTIN_TEXT
    return gradient_check(text, hidden=hidden, seq_length=seq_length, seed=seed, sigma=sigma, chunks=chunks, h=h,
                          tol=tol, dtype=dtype, cell=cell, layers=int(layers), embedding=int(embedding))


# ---------------------------------------------------------------------------------------------
# Runs

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
        from .rundir import RunDir, holds_run

        self.dir = os.fspath(path)
        if not os.path.isdir(self.dir) or not holds_run(self.dir):
            raise FastrnnError(f"{self.dir}: not a fastrnn run directory")
        self._files = RunDir(self.dir)
        self.updates_trained = None  # by the train or resume call that returned it

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


def _check(option: str, value, ok: bool, what: str) -> None:
    if not ok:
        raise OptionError(option, f"{option} must be {what}, not {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_counts(positive: dict, non_negative: dict) -> None:
    """Integer options: each of ``positive`` at least 1, each of ``non_negative`` at least 0
    (None stands for "not given" and passes)."""
    for least, options in ((1, positive), (0, non_negative)):
        for name, value in options.items():
            _check(name, value, value is None or (_is_int(value) and value >= least),
                   "a positive integer" if least else "a non-negative integer")


def _display(progress):
    """(the callable told of progress or None, a function for lines of its own)."""
    from .progress import ProgressDisplay

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
          val_fraction: float = 0.0, val_every: int | None = None, sample_every: int = 10_000, log_every: int = 100,
          checkpoint_every: int = 10_000, encoding: str = "utf-8", format: str = "auto", force: bool = False,
          time_limit=None, planned_updates: int | None = None, progress=True, should_stop=None) -> Run:
    """Train a model on a book and return its run.

    Parameters
    ----------
    book : str or path, optional
        A text file, a directory of .txt files, tweets in JSON, or a corpus name from
        ``fastrnn corpus list``; None (and no ``text``) trains on the built-in demo corpus.
    text : str or list of str, optional
        The book as a string, or documents (tweets, say) each closed by an end-of-text
        character; kept in the run directory as book.txt so that the run can be resumed.
    out : str or path, optional
        The run directory [default: runs/<book>-<date>-<time>]; an existing run is kept
        unless ``force``.
    steps, epochs : int, optional
        Total updates and/or passes over the book (the fewer wins) [default: 5 epochs].
    time_limit : str or float, optional
        Train for this long instead ("150s", "2.5m", "1h", or seconds; compilation and
        validation not counted): the updates that fit, measured on the model before the run
        starts, become the run's number of updates (a cosine schedule spans them, ``resume``
        continues to them, ``steps`` of that number reproduces the run); the run also stops
        should its training time reach the limit first, then validates and checkpoints.
    planned_updates : int, optional
        Train the first ``steps`` updates of a run planned for this many, which ``resume``
        continues: the cosine schedule spans them and the recipe's dropout follows their
        epochs, so that the pieces end where one run of that many updates ends (a sweep's
        halving trains its trials so) [the run's own updates].
    init : str or path, optional
        Fine-tune: start from this trained model (a checkpoint, or a run directory's best.npz)
        on the new text. The vocabulary becomes the union of the model's and the text's (new
        characters get fresh weights), the optimizer starts afresh, and the cell, layers, hidden
        size, embedding and dtype are the model's.
    cell : {"rnn", "gru", "lstm"}
        The recurrent cell (``cells.py``) [rnn]; rnn with one layer is the assignment's model.
        The options not given default to the cell's recipe (``recipes.py``): for rnn the
        assignment's (hidden 100, seq_length 25, 1 stream, float64, AdaGrad at eta 0.1, each
        element clipped to 5); for gru and lstm hidden 384, seq_length 64, 32 streams,
        float32, an input embedding of 256, Adam at 0.004 with the cosine schedule and the
        global norm clipped to 5, and for lstm dropout 0.1 (0.2 for a run of more than 12
        epochs) and Adam's weight decay 0.1.
    layers : int
        Layers of the cell [1], each of ``hidden`` units, layer k fed by layer k-1's h.
    hidden, seq_length, eta, sigma, seed, dtype, streams, restart_every
        The model and the training rule, as ``fastrnn train`` takes them (``sigma``: the rnn
        cell's weights are N(0, sigma); the gated cells' U(-1/sqrt(hidden), 1/sqrt(hidden))).
        ``eta`` not given follows the optimizer: the recipe's with the recipe's optimizer,
        else 0.1 for AdaGrad and 0.002 for RMSprop and Adam.
    optimizer : {"adagrad", "rmsprop", "adam"}
        AdaGrad (the assignment's), or PyTorch's RMSprop (``alpha``, default 0.99) or Adam
        (``beta1``, ``beta2``: 0.9, 0.999); both take a decoupled ``weight_decay`` (AdamW's).
        ``eta`` is the learning rate of every optimizer. An option the optimizer does not take
        is an error.
    schedule : {"constant", "cosine", "step"}
        The learning rate by update: ``cosine`` from eta to ``min_eta`` (eta / 10) over the
        run's updates, ``step`` times ``decay`` (0.5) every ``decay_every`` updates; either
        after ``warmup`` updates of linear warm-up (also with ``constant``).
    clip, clip_norm
        Clip each gradient element to [-clip, clip] (5, the default) or the gradient's global
        norm to ``clip_norm``: one or the other.
    dropout : float
        The probability of zeroing each unit of a layer's h_t on its way to the layer above and
        to the output layer, the rest scaled by 1 / (1 - dropout) [the recipe's: lstm 0.1, or
        0.2 for a run of more than 12 epochs, else 0]; never the recurrent connections. Masks
        are drawn from (seed, update, stream): results do not depend on ``threads`` and resume
        stays exact. Off when sampling and scoring.
    embedding : int
        The width D of an input embedding before the first layer (PyTorch's
        ``nn.Embedding(K, D)``, exported as ``embedding.weight``); 0: one-hot inputs [the
        recipe's: 0 for rnn, 256 for gru and lstm]. It costs a few per cent of speed: the
        kernels run on the one-hot model it folds into once per update.
    threads : int, optional
        Cores for several streams [default: all]; results do not depend on it.
    val_fraction, val_every, sample_every, log_every, checkpoint_every
        The held-out part and the intervals of the run directory's files; ``val_every``
        [10,000 updates; with ``time_limit``, a tenth of the updates that fit, or an epoch's
        where that is fewer, so that best.npz is the best of ten validations, one an epoch at
        least].
    progress : bool or callable
        True: a progress display on stderr; False: none; a callable: called with a
        ``trainer.Progress`` after each block of updates.
    should_stop : callable, optional
        Asked between blocks of updates; True stops the run after a checkpoint by raising
        ``fastrnn.Interrupted``. By default an interrupt does that (Ctrl-C, or a notebook's
        interrupt button: the run keeps its work up to the interrupt, and ``fastrnn.resume``
        continues it exactly); a second interrupt stops at once.

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
    from .rundir import default_run_dir, holds_run

    if book is not None and text is not None:
        raise OptionError("text", "give a book or a text, not both")
    from .cells import CELLS

    start = None
    if init is not None:
        start = load(init)
        for name, value in (("cell", cell), ("layers", layers), ("hidden", hidden), ("dtype", dtype),
                            ("embedding", embedding)):
            have = start.hyper[name]
            if value is not None and value != have:
                raise OptionError(name, f"{name} comes from the init model ({have!r}), not {value!r}")
        cell, layers, hidden, dtype, embedding = (start.hyper[name]
                                                  for name in ("cell", "layers", "hidden", "dtype", "embedding"))
        sigma = start.hyper["sigma"] if sigma is None else sigma
    cell, layers, sigma = ("rnn" if cell is None else cell), (1 if layers is None else layers), (
        0.01 if sigma is None else sigma)
    _check("cell", cell, isinstance(cell, str) and cell in CELLS, "one of " + ", ".join(CELLS))
    from .recipes import with_defaults

    dropout_by_epochs = dropout is None  # the recipe's, for the epochs the run plans (``_train_on``)
    picked = with_defaults(cell, dict(hidden=hidden, seq_length=seq_length, streams=streams, dtype=dtype,
                                      optimizer=optimizer, eta=eta, schedule=schedule, clip=clip, clip_norm=clip_norm,
                                      embedding=embedding, dropout=dropout, weight_decay=weight_decay))
    hidden, seq_length, streams, dtype, optimizer, eta, schedule, clip_norm, embedding, dropout, weight_decay = (
        picked[name] for name in ("hidden", "seq_length", "streams", "dtype", "optimizer", "eta", "schedule",
                                  "clip_norm", "embedding", "dropout", "weight_decay"))
    _check_counts(dict(epochs=epochs, layers=layers, hidden=hidden, seq_length=seq_length, streams=streams,
                       val_every=val_every, log_every=log_every),
                  dict(steps=steps, seed=seed, restart_every=restart_every, sample_every=sample_every,
                       checkpoint_every=checkpoint_every, embedding=embedding))
    for name, value in (("eta", eta), ("sigma", sigma)):
        _check(name, value, isinstance(value, numbers.Real) and 0 < value < math.inf, "a positive number")
    _check("dtype", dtype, dtype in ("float64", "float32"), "float64 or float32")
    _check("dropout", dropout, isinstance(dropout, numbers.Real) and 0 <= dropout < 1, "a number in [0, 1)")
    if time_limit is not None:
        from .budget import parse_duration

        if steps is not None or epochs is not None:
            raise OptionError("time_limit", "a time limit sets the run's number of updates: give it or "
                                            "steps/epochs, not both")
        try:
            time_limit = parse_duration(time_limit)
        except ValueError as err:
            raise OptionError("time_limit", str(err)) from None
        if planned_updates is not None:
            raise OptionError("planned_updates", "a time limit plans the run's updates: give it or "
                                                 "planned_updates, not both")
    _check_counts(dict(planned_updates=planned_updates), {})
    _check("val_fraction", val_fraction, isinstance(val_fraction, numbers.Real) and 0 <= val_fraction < 0.5,
           "a number at least 0 and below 0.5")
    val_fraction = float(val_fraction)
    _check("format", format, format in ("auto", "text", "json", "dir"), "auto, text, json or dir")
    _use_threads(threads)
    tell, say = _display(progress)
    if text is not None:
        if out is None:
            out = default_run_dir("text")
    else:
        book = _named_corpus(book) if book is not None else _demo_corpus(say)
        out = out or default_run_dir(os.fspath(book))
    out = os.fspath(out)
    if os.path.exists(out) and holds_run(out) and not force:
        raise FastrnnError(f"{out} already holds a run; pass --force (force=True) to overwrite it or "
                           f"--resume (fastrnn.resume) to continue it")
    settings = dict(hidden=int(hidden), seq_length=int(seq_length), eta=float(eta), sigma=float(sigma), seed=int(seed),
                    dtype=dtype, streams=None if streams is None else int(streams), restart_every=int(restart_every),
                    cell=cell, layers=int(layers), dropout=float(dropout), embedding=int(embedding),
                    **_optimizer_settings(float(eta), optimizer, dict(beta1=beta1, beta2=beta2, alpha=alpha,
                                                                      weight_decay=weight_decay),
                                          schedule, min_eta, warmup, decay, decay_every, clip, clip_norm))
    intervals = dict(sample_every=int(sample_every), log_every=int(log_every), checkpoint_every=int(checkpoint_every),
                     val_every=None if val_every is None else int(val_every))
    return _train(book, text, out, None, settings, intervals, steps, epochs, val_fraction, encoding, format, force,
                  tell, say, should_stop, init=start, share_machine=threads is None, time_limit=time_limit,
                  dropout_by_epochs=dropout_by_epochs, planned_updates=planned_updates)


def _optimizer_settings(eta, optimizer, options, schedule, min_eta, warmup, decay, decay_every, clip,
                        clip_norm) -> dict:
    """The ``Hyper`` fields of the optimizer, the schedule and the clip, checked: each option
    only where it means something."""
    from .optimizers import OPTIMIZERS, SCHEDULES

    _check("optimizer", optimizer, isinstance(optimizer, str) and optimizer in OPTIMIZERS,
           "one of " + ", ".join(OPTIMIZERS))
    _check("schedule", schedule, isinstance(schedule, str) and schedule in SCHEDULES, "one of " + ", ".join(SCHEDULES))
    out = dict(optimizer=optimizer, schedule=schedule)
    for name, value in options.items():
        if value is None:
            continue
        if name not in OPTIMIZERS[optimizer].options:
            takes = [o for o, opt in OPTIMIZERS.items() if name in opt.options]
            raise OptionError(name, f"{name} is an option of {' and '.join(takes)}, not of {optimizer}")
        low, high = (0.0, 1.0) if name != "weight_decay" else (0.0, math.inf)
        _check(name, value, isinstance(value, numbers.Real) and low <= value < high,
               f"a number in [{low:g}, {high:g})")
        out[name] = float(value)
    for name, value, wanted in (("min_eta", min_eta, "cosine"), ("decay", decay, "step"),
                                ("decay_every", decay_every, "step")):
        if value is not None and schedule != wanted:
            raise OptionError(name, f"{name} belongs to the {wanted} schedule, not to {schedule}")
    _check_counts({}, dict(warmup=warmup))
    out["warmup"] = int(warmup)
    if schedule == "cosine":
        min_eta = eta / 10 if min_eta is None else min_eta
        _check("min_eta", min_eta, isinstance(min_eta, numbers.Real) and 0 <= min_eta <= eta,
               f"a number from 0 to eta ({eta:g})")
        out["min_eta"] = float(min_eta)
    if schedule == "step":
        if decay_every is None:
            raise OptionError("decay_every", "the step schedule needs decay_every, the updates between its steps")
        _check_counts(dict(decay_every=decay_every), {})
        decay = 0.5 if decay is None else decay
        _check("decay", decay, isinstance(decay, numbers.Real) and 0 < decay <= 1, "a number in (0, 1]")
        out.update(decay=float(decay), decay_every=int(decay_every))
    if clip is not None and clip_norm is not None:
        raise OptionError("clip_norm", "clip each element (clip) or the global norm (clip_norm), not both")
    for name, value in (("clip", clip), ("clip_norm", clip_norm)):
        if value is not None:
            _check(name, value, isinstance(value, numbers.Real) and 0 < value < math.inf, "a positive number")
            out[name] = float(value)
    return out


def resume(run_dir, *, steps: int | None = None, epochs: int | None = None, book=None, encoding: str | None = None,
           format: str | None = None, threads: int | None = None, sample_every: int | None = None,
           log_every: int | None = None, checkpoint_every: int | None = None, val_every: int | None = None,
           progress=True, should_stop=None) -> Run:
    """Continue the run in ``run_dir`` exactly from its last checkpoint, to ``steps`` updates or
    ``epochs`` passes in all (by default the total it was started with). The book, encoding,
    format and intervals are the run's own unless given. A finished run is returned as it is."""
    from .model import load_checkpoint
    from .rundir import load_run_config

    run_dir = os.fspath(run_dir)
    _check_counts(dict(epochs=epochs, log_every=log_every, val_every=val_every),
                  dict(steps=steps, sample_every=sample_every, checkpoint_every=checkpoint_every))
    config = load_run_config(run_dir)
    state = load_checkpoint(os.path.join(run_dir, "last.npz"))
    _use_threads(threads)
    tell, say = _display(progress)
    given = dict(sample_every=sample_every, log_every=log_every, checkpoint_every=checkpoint_every,
                 val_every=val_every)
    intervals = {name: config[name] if value is None else int(value) for name, value in given.items()}
    book = _named_corpus(book) if book is not None else config["book"]
    if steps is None and epochs is None:
        steps = config["total_updates"]
    return _train(book, None, run_dir, state, None, intervals, steps, epochs, config["val_fraction"],
                  encoding or config["encoding"], format or config["format"], False, tell, say, should_stop,
                  config=config, share_machine=threads is None)


def _train(book, text, out, state, settings, intervals, steps, epochs, val_fraction, encoding, fmt, force, tell, say,
           should_stop, config=None, init=None, share_machine=False, time_limit=None,
           dropout_by_epochs=False, planned_updates=None) -> Run:
    """What ``train`` and ``resume`` share: read the book, hold out its end, count the updates,
    compile, write run.json and train. Without ``should_stop``, an interrupt (Ctrl-C, a
    notebook's) stops the run after a checkpoint, as at the command line."""
    from .formats import END_OF_TEXT
    from .stopping import StopRequest

    if should_stop is None:
        with StopRequest() as stop:
            return _train(book, text, out, state, settings, intervals, steps, epochs, val_fraction, encoding, fmt,
                          force, tell, say, stop, config, init, share_machine, time_limit, dropout_by_epochs,
                          planned_updates)

    seq_length = state.hyper.seq_length if state is not None else settings["seq_length"]
    if text is not None:
        documents = [text] if isinstance(text, str) else list(text)
        if sum(map(len, documents)) + (0 if isinstance(text, str) else len(documents)) < seq_length + 1:
            raise FastrnnError(f"the text has {sum(map(len, documents))} characters; training needs at least "
                               f"{seq_length + 1} (one chunk and its last target)")
        os.makedirs(out, exist_ok=True)
        book = os.path.join(out, "book.txt")
        from .files import write_text_atomic

        # read from a staged copy, moved into place only when the run starts: a run that fails
        # its checks leaves the book of the run it would have replaced as it was
        write_text_atomic(book + ".new", documents[0] if isinstance(text, str)
                          else "".join(doc + END_OF_TEXT for doc in documents), encoding="utf-8")
        encoding, fmt = "utf-8", "text"
    try:
        return _train_on(book, book + ".new" if text is not None else book, out, state, settings, intervals, steps,
                         epochs, val_fraction, encoding, fmt, force, tell, say, should_stop, config, init,
                         share_machine, time_limit, dropout_by_epochs, planned_updates)
    finally:
        if text is not None and os.path.exists(book + ".new"):
            os.unlink(book + ".new")


def _train_on(book, source, out, state, settings, intervals, steps, epochs, val_fraction, encoding, fmt, force, tell,
              say, should_stop, config, init=None, share_machine=False, time_limit=None,
              dropout_by_epochs=False, planned_updates=None) -> Run:
    """``_train`` once the book is a file: ``source`` is where to read it now, ``book`` where
    the run keeps it. ``init``: the ``Model`` a fine-tuning run starts from. ``share_machine``:
    fewer threads while other processes are busy (a run whose threads were not given).
    ``time_limit``: seconds of training of a new run (``budget.py``). ``dropout_by_epochs``:
    dropout was not given, and is the cell's for the epochs the new run plans
    (``recipes.dropout_for``). ``planned_updates``: the new run's planned length, if more
    than the updates it trains now (``train``)."""
    from dataclasses import replace

    from .cache import load_corpus_cached
    from .model import Hyper, init_state, with_streams
    from .recipes import LONG_RUN_EPOCHS, dropout_for, fitted_streams
    from .rundir import clear_run, corpus_sha256, holds_run, save_run_config
    from .finetune import reencode, start_from, vocab_union
    from .text import vocab_difference
    from .build import KernelSet, compile_kernels
    from .engine import updates_per_epoch
    from .trainer import RunOptions, train_run

    resuming = state is not None
    seq_length = state.hyper.seq_length if resuming else settings["seq_length"]
    streams = state.hyper.streams if resuming else settings["streams"]
    book_sha256 = corpus_sha256(source) if os.path.exists(source) else ""
    vocab, encoded = load_corpus_cached(source, fmt, encoding, seq_length + 1, book_sha256)
    if resuming:
        if np.setdiff1d(vocab.codepoints, state.vocab.codepoints).size:
            raise FastrnnError(f"{book}: its characters differ from the run's ({vocab_difference(state.vocab, vocab)})"
                               f"; cannot resume on it")
        if vocab.size != state.vocab.size:  # a text of fewer characters (a fine-tuned run's, say)
            encoded, vocab = reencode(encoded, vocab, state.vocab), state.vocab
        if book_sha256 != config.get("book_sha256"):
            say(f"warning: {book} is not the file this run started with; resuming on it anyway")
    init_from = config.get("init") if resuming else (os.path.abspath(init.path) if init is not None else None)
    if init is not None:
        init = init._state
        wider = vocab_union(init.vocab, vocab)
        if wider.size > vocab.size:
            encoded = reencode(encoded, vocab, wider)
        vocab = wider
    train_part, val_part = held_out(encoded, val_fraction, seq_length, book)
    per_epoch = updates_per_epoch(train_part.shape[0], seq_length)
    if streams is None:  # not given: the cell's, at most the book's chunks
        streams = fitted_streams(settings["cell"], per_epoch)
        settings = dict(settings, streams=streams)
    if streams > per_epoch:
        raise OptionError("streams", f"{book} has only {per_epoch} chunks of {seq_length} characters to "
                                     f"spread {streams} streams over")
    # a time limit's updates are counted once the model is compiled
    total = total_updates(steps, epochs, per_epoch, streams) if time_limit is None else 10 ** 12

    planned = total if planned_updates is None else planned_updates
    if not resuming and planned < total:
        raise OptionError("planned_updates", f"the run's {total:,} updates are more than the {planned:,} planned")

    def planned_dropout(updates: int) -> float:
        dropout = dropout_for(settings["cell"], updates * streams / per_epoch)
        if dropout != settings["dropout"]:
            say(f"dropout {dropout:g}: the {settings['cell']} recipe's for a run of more than {LONG_RUN_EPOCHS} "
                f"epochs (this one: {updates * streams / per_epoch:.1f})")
        return dropout

    if not resuming and settings.get("warmup", 0) >= total:
        raise OptionError("warmup", f"warmup ({settings['warmup']:,} updates) must end before the run's "
                                    f"{total:,} updates do")
    done = state.update if resuming else 0
    if resuming and total <= done:
        say(f"{out} already has {done:,} updates (total {total:,}): nothing to do; "
            f"pass a larger --steps or --epochs to train further")
        run = Run(out)
        run.updates_trained = 0
        return run
    os.makedirs(out, exist_ok=True)  # an unusable directory fails here, before any work
    held = f", {val_part.shape[0]:,} held out for validation" if val_part is not None else ""
    per_update = f"{streams} streams, " if streams > 1 else ""
    say(f"book {book}: {encoded.shape[0]:,} characters{held}, {vocab.size} distinct; {per_update}"
        f"{-(-per_epoch // streams):,} updates per epoch; "
        + (f"resuming at update {done:,} of {total:,}" if resuming
           else f"training for {time_limit:g} s" if time_limit is not None else f"training {total:,} updates")
        + f" -> {out}")
    if not resuming:
        if settings.get("schedule") == "cosine":
            settings = dict(settings, schedule_updates=planned)
        if dropout_by_epochs and time_limit is None:
            settings = dict(settings, dropout=planned_dropout(planned))
        state = init_state(vocab, Hyper(**settings)) if init is None else start_from(init, vocab, Hyper(**settings))
        state = with_streams(state, train_part.shape[0])
        if init is not None:
            say(f"fine-tuning the {init.vocab.size}-character model of update {init.update:,} on {vocab.size} "
                f"characters ({vocab.size - init.vocab.size} new)")
    elif state.hyper.schedule == "cosine" and total > state.hyper.schedule_updates:
        say(f"the cosine schedule of this run ends at update {state.hyper.schedule_updates:,}, where it started: "
            f"updates after it train at min_eta ({state.hyper.min_eta:g})")
    if not state.layout.classic:
        h = state.hyper
        say(f"model: {f'an embedding of {h.embedding}, ' if h.embedding else ''}"
            f"{h.layers} layer{'s' if h.layers > 1 else ''} of {h.cell} ({h.hidden} units), "
            f"{state.layout.size:,} parameters, {h.dtype}")
    compile_seconds = compile_kernels(KernelSet.of(state.hyper, encoded.dtype, streams=streams, sampler=True,
                                                   scorer=val_part is not None),
                                      on_compile=lambda what: say(f"compiling {what}..."))
    if compile_seconds > 1.5:
        say(f"compiled in {compile_seconds:.1f}s (cached for later runs)")
    if time_limit is not None:
        from .budget import updates_within
        from .engine import Trainer

        try:
            total, per_update = updates_within(
                lambda: Trainer(state.copy(), train_part, share_machine=share_machine), time_limit)
        except ValueError as err:
            raise OptionError("time_limit", str(err)) from None
        if state.hyper.warmup >= total:
            raise OptionError("warmup", f"warmup ({state.hyper.warmup:,} updates) must end before the "
                                        f"{total:,} updates that fit in the time limit do")
        if state.hyper.schedule == "cosine":
            state.hyper = replace(state.hyper, schedule_updates=total)
        if dropout_by_epochs:
            state.hyper = replace(state.hyper, dropout=planned_dropout(total))
        say(f"time limit {time_limit:g} s: {total:,} updates of {per_update * 1e3:.3g} ms measured here")
    if intervals.get("val_every") is None:  # a new run's, not given
        from .budget import validation_interval

        intervals = dict(intervals, val_every=VAL_EVERY if time_limit is None else
                         validation_interval(total, -(-per_epoch // streams)))
    if force and not resuming and holds_run(out):
        clear_run(out)
    if source != book:
        os.replace(source, book)
    # how a new run was planned, kept by its resumed sessions
    plan = ({name: config[name] for name in ("time_limit", "planned_updates") if name in config} if resuming else
            {**({"time_limit": time_limit} if time_limit is not None else {}),
             **({"planned_updates": planned} if planned_updates is not None else {})})
    save_run_config(out, {"book": os.path.abspath(book), "book_sha256": book_sha256, "encoding": encoding,
                          "format": fmt, "total_updates": total, "val_fraction": val_fraction, **intervals, **plan,
                          **({"init": init_from} if init_from else {})})
    opts = RunOptions(total_updates=total, **intervals, on_progress=tell, should_stop=should_stop,
                      share_machine=share_machine, time_limit=time_limit,
                      extra_summary={"compile_seconds": compile_seconds, "book": os.path.abspath(book),
                                     "machine": machine(), **({"init": init_from} if init_from else {})})
    summary = train_run(state, train_part, out, opts, resume=resuming, val_book=val_part)
    run = Run(out)
    run.updates_trained = summary["updates_this_run"]
    return run


def machine() -> dict:
    """What ran the training, for the summary and the report."""
    import platform

    import numba

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": numba.get_num_threads(), "system": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__}


def held_out(encoded, val_fraction: float, seq_length: int, book):
    """(training part, validation part or None): the last ``val_fraction`` of the encoded book
    is held out for validation."""
    val_chars = int(round(val_fraction * encoded.shape[0]))
    train_part = encoded[:encoded.shape[0] - val_chars]
    if val_fraction and (val_chars < 2 or train_part.shape[0] < seq_length + 1):
        raise FastrnnError(f"{book}: too short to hold out {val_fraction:g} of it and still train on "
                           f"chunks of {seq_length + 1} characters")
    return train_part, (encoded[encoded.shape[0] - val_chars:] if val_chars else None)


def total_updates(steps: int | None, epochs: int | None, per_epoch: int, streams: int) -> int:
    """Updates of a run of ``steps`` updates and/or ``epochs`` passes (the fewer wins; 5 epochs
    without either); an update takes ``streams`` of the ``per_epoch`` chunks of a pass."""
    if epochs is None and steps is None:
        epochs = 5
    by_epochs = -(-epochs * per_epoch // streams) if epochs else None
    return min(x for x in (steps, by_epochs) if x is not None)


def _use_threads(threads) -> None:
    """The cores Numba's parallel loops may use (None: all)."""
    import numba

    most = numba.config.NUMBA_NUM_THREADS
    _check("threads", threads, threads is None or (_is_int(threads) and 1 <= threads <= most),
           f"a number of cores from 1 to {most} on this machine")
    numba.set_num_threads(most if threads is None else int(threads))


def _named_corpus(book):
    """BOOK as given, or the local path of the registered corpus it names (downloaded once)."""
    book = os.fspath(book)
    if os.path.exists(book):
        return book
    from .corpora import REGISTRY, get

    return get(book) if book in REGISTRY else book  # not a file either: reading it reports that


def _demo_corpus(say) -> str:
    from .demo import DEMO_MODULES, demo_corpus_path

    book = demo_corpus_path()
    say(f"no BOOK given: training on the built-in demo corpus, the docstrings of "
        f"{len(DEMO_MODULES)} Python standard-library modules ({book})")
    return book
