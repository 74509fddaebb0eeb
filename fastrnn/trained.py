"""A trained model from Python: ``fastrnn.load`` and the ``Model`` it returns, which samples
text, scores it, and writes itself as a checkpoint, JSON or a web page."""
from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass

import numpy as np

from .documents import document_lines
from .errors import FastrnnError
from .formats import END_OF_TEXT
from .model import load_checkpoint, save_checkpoint
from .rundir import resolve_checkpoint
from .settings import OptionError, check_count, check_positive
from .text import TextError


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


@dataclass(frozen=True)
class Documents:
    """Documents drawn from a documents model (``Model.sample_documents``)."""

    documents: list[str]
    # of every document drawn: copies of a training document ("training"), of a held-out one
    # ("held_out"), and new ones ("new"); None where the run's files cannot tell (``no_counts``)
    counts: dict | None
    drawn: int  # documents drawn (more than asked for with ``new_only``)
    no_counts: str = ""  # why there are no counts


NEW_ONLY_DRAWS = 100  # documents drawn at most, per one asked for, to find new ones


def _say_compiling(what: str) -> None:
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
        """The file the model was read from (None for a model made in Python)."""

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
               until_end: bool = False, first: int = 0) -> str | list[str]:
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
        first : int
            A documents model's texts are documents, each from the start state to its end;
            document i draws its random numbers from (seed, first + i).

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
        from .build import KernelSet, compile_kernels  # Numba: only once a model samples
        from .sample import sample_documents, sample_texts

        state = self._state
        check_count("num", num)
        for name, value in dict(length=length, top_k=top_k, seed=seed).items():
            check_count(name, value, least=0)
        check_positive("temperature", temperature)
        try:
            missing = state.vocab.missing(prime) if prime else ""
        except TextError as err:
            raise OptionError("prime", str(err)) from None
        if missing:
            raise OptionError("prime", "characters not in the model's vocabulary: "
                                       + " ".join(repr(ch) for ch in missing))
        compile_kernels(KernelSet.of(state.hyper, state.vocab.index_dtype(), sampler=True), on_compile=_say_compiling)
        seed = secrets.randbelow(2**31) if seed is None else seed
        if state.hyper.documents:
            texts = sample_documents(state, 1 if num is None else num, length, seed, temperature, prime,
                                     top_k=top_k, first=first)
        else:
            texts = sample_texts(state, length, 1 if num is None else num, seed, temperature, prime, top_k=top_k,
                                 from_zero=from_zero, until_end=until_end)
        return texts[0] if num is None else texts

    @property
    def documents(self) -> bool:
        """Whether the model was trained on documents (a list's lines, tweets): it then samples
        documents, each from the start state to its end."""
        return bool(self._state.hyper.documents)

    def sample_documents(self, num: int = 20, *, max_length: int = 1000, temperature: float = 1.0, prime: str = "",
                         seed: int | None = None, top_k: int = 0, new_only: bool = False) -> Documents:
        """Draw ``num`` documents from a documents model, each from the start state to its end
        marker (at most ``max_length`` characters after ``prime``), and count how many copy a
        document of the run's training or held-out part and how many are new (where the
        model's run directory and book are at hand). ``new_only``: keep drawing until ``num``
        new ones are found (at most ``NEW_ONLY_DRAWS`` per one asked for)."""
        from .plan import run_documents
        from .documents import origin

        if not self.documents:
            raise FastrnnError("this model was trained on a book, not on documents: sample text with Model.sample")
        check_count("num", num)
        run_dir = os.path.dirname(os.path.abspath(self.path)) if self.path else None
        if run_dir and not os.path.exists(os.path.join(run_dir, "run.json")):
            run_dir = None
        known, no_counts = None, ""
        try:
            known = run_documents(run_dir, self._state.hyper.seed) if run_dir else None
            no_counts = "" if known else "the model has no run directory (its run.json) beside it"
        except FastrnnError as err:
            no_counts = str(err)
        if new_only and known is None:
            raise FastrnnError(f"new_only needs the run's documents to tell new ones: {no_counts}")
        seed = secrets.randbelow(2**31) if seed is None else seed
        kept, drawn, counts = [], 0, {"training": 0, "held_out": 0, "new": 0}
        while len(kept) < num:
            if drawn >= NEW_ONLY_DRAWS * num:
                raise FastrnnError(f"only {len(kept)} new documents in {drawn:,} drawn ({NEW_ONLY_DRAWS} per one asked "
                                   f"for); the model mostly copies its list: try a higher temperature")
            batch = self.sample(max_length, temperature=temperature, prime=prime, seed=seed, first=drawn,
                                num=num if not new_only else max(num - len(kept), 8), top_k=top_k)
            drawn += len(batch)
            for text in batch:
                kind = "new" if known is None else origin(text, *known)
                counts[kind] += 1
                if not new_only or kind == "new":
                    kept.append(text)
        return Documents(kept[:num], counts if known is not None else None, drawn, no_counts)

    def evaluate(self, text: str, *, from_zero: bool = False, format: str = "text") -> Score:
        """Bits per character, nats per character and perplexity of the model on ``text``,
        scored from its carried hidden state (from h = 0 with ``from_zero``), or with
        ``format="lines"`` over the documents of a list (each non-empty line, scored from the
        start state, its end marker predicted and counted: makemore's count). Characters
        outside the vocabulary are counted and skipped."""
        from .build import KernelSet, compile_kernels  # Numba: only once a model scores
        from .evaluate import evaluate_text

        state = self._state
        if format not in ("text", "lines"):
            raise OptionError("format", f"format must be one of text, lines, not {format!r}")
        if format == "lines":
            if not state.hyper.documents:
                raise OptionError("format", "this model was trained on a book: it has no end marker to score a "
                                            "list's documents with")
            text = END_OF_TEXT + "".join(line + END_OF_TEXT for line in document_lines(text))
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
    try:
        checkpoint = resolve_checkpoint(None if path is None else os.fspath(path))
    except FileNotFoundError as err:
        raise FastrnnError(str(err)) from None
    return Model(load_checkpoint(checkpoint), checkpoint)


