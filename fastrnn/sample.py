"""Generating text from a model: where it starts, and the texts from the engine's sampler.

Where text starts matters. Training carries h from chunk to chunk and sets it to zero only
where the book starts again, so to a trained model h = 0 means "the book's first line"; from
h = 0 some models fall into an attractor that predicts rare symbols (noise) and stay there.
Text therefore starts, by default, from the state the model was in when it was saved: the
carried hidden state, fed the character that followed it in the book (``start_state``).
"""
from __future__ import annotations

import numpy as np

from .cells import Layout
from .engine import engine_for
from .formats import END_OF_TEXT
from .text import TextError, Vocab


def start_state(state, from_zero: bool = False, first: int | None = None) -> tuple[np.ndarray, list[int]]:
    """(h, inputs): the hidden state text starts from and the character indices to feed it
    before anything else.

    By default the checkpoint's carried ``h`` and its ``next_char``, or, with ``first``, that
    character instead (an end-of-text character to start a new tweet). A checkpoint that did
    not record its next character (format 1) starts from its carried h with nothing fed: the
    first character is then drawn from that state's own prediction, softmax(V h + c).
    ``from_zero``: h = 0 and nothing fed (the start of the book, to the model).
    """
    if from_zero:
        return np.zeros_like(state.h), ([] if first is None else [first])
    if first is not None:
        return state.h.copy(), [first]
    return state.h.copy(), ([] if state.next_char is None else [state.next_char])


def sample_indices(params, vocab: Vocab, model, n: int, rng: np.random.Generator, temperature: float = 1.0, h=None,
                   prime=(), num: int | None = None, top_k: int = 0) -> np.ndarray:
    """``n`` sampled character indices (int64) from flat ``params`` of ``model``: the model's
    ``cells.Layout``, or the hidden size m of the classic cell (one rnn layer on one-hot
    inputs); with ``num``, a (num, n) array of ``num`` texts sampled at once from the same
    start.

    h: the flat carried state to start from (zeros when None; not modified). prime: indices
    fed before sampling.
    top_k: pick only among the top_k most likely characters (0: among all).
    All randomness comes from ``rng``, so a seed gives the same text every time; text i of
    ``num`` uses the numbers it would draw if the texts were sampled one by one.
    """
    if not temperature > 0:
        raise ValueError("temperature must be positive")
    if top_k < 0:
        raise ValueError("top_k must not be negative")
    layout = model if isinstance(model, Layout) else Layout(model, vocab.size)
    if layout.K != vocab.size:
        raise ValueError(f"a model of {layout.K} characters and a vocabulary of {vocab.size}")
    return engine_for(layout).sample(params, n, rng, temperature, h, prime, num, top_k)


TEXTS_AT_ONCE = 64  # texts per sampler call: bounds the memory of random numbers and indices


def sample_texts(state, n: int, num: int, seed: int = 0, temperature: float = 1.0, prime: str = "",
                 rng: np.random.Generator | None = None, *, top_k: int = 0, from_zero: bool = False,
                 until_end: bool = False) -> list[str]:
    """``num`` texts from a ``model.State``, each ``prime`` (included) followed by ``n`` sampled
    characters, sampled ``TEXTS_AT_ONCE`` at a time.

    Each text starts from ``start_state(state, from_zero)`` with ``prime`` fed after it. With
    ``until_end`` (models trained on tweets) that state is fed an end-of-text character
    instead of its next character, and each text stops before the next end-of-text character
    (``n`` is then a maximum). Random numbers come from ``rng`` when given, else from a
    generator seeded with ``seed``; the texts are the same as ``num`` calls of ``sample_text``
    with that ``rng``.
    """
    if until_end and END_OF_TEXT not in state.vocab.chars:
        raise TextError("this model has no end-of-text character: --until-end needs a model trained on "
                        "tweets (--format json) or on documents (fastrnn.train(text=[...]))")
    first = state.vocab.encode(END_OF_TEXT)[0] if until_end else None
    h, fed = start_state(state, from_zero, first)
    fed = np.concatenate([np.asarray(fed, np.int64), state.vocab.encode(prime) if prime else []]).astype(np.int64)
    rng = rng if rng is not None else np.random.default_rng(seed)
    texts = []
    for at in range(0, num, TEXTS_AT_ONCE):
        out = sample_indices(state.params, state.vocab, state.layout, n, rng, temperature, h=h, prime=fed,
                             num=min(TEXTS_AT_ONCE, num - at), top_k=top_k)
        texts.extend(prime + state.vocab.decode(row) for row in out)
    if until_end:
        texts = [text[:text.find(END_OF_TEXT, len(prime))] if END_OF_TEXT in text[len(prime):] else text
                 for text in texts]
    return texts


def sample_text(state, n: int, seed: int = 0, temperature: float = 1.0, prime: str = "",
                rng: np.random.Generator | None = None, **start) -> str:
    """One text of ``sample_texts``."""
    return sample_texts(state, n, 1, seed, temperature, prime, rng, **start)[0]


DOCUMENT_PIECE = 32  # characters drawn per sampler call: a document ends after a few pieces at most


def sample_documents(state, num: int, max_length: int, seed: int, temperature: float = 1.0, prime: str = "", *,
                     top_k: int = 0, first: int = 0) -> list[str]:
    """``num`` documents of a documents model (``documents.py``), each drawn from the start
    state: the end marker fed from zeros, then ``prime``, then characters up to the next end
    marker (not included), at most ``max_length`` of them; each document is ``prime`` and
    what was drawn. Document i draws its numbers from (seed, first + i): the same whatever
    ``num``.
    Documents are drawn ``DOCUMENT_PIECE`` characters at a time, and those that ended drop
    out."""
    if not state.hyper.documents:
        raise TextError("this model was trained on a book, not on documents (a list with --format lines, tweets)")
    engine = engine_for(state.layout)
    fed = np.concatenate([state.vocab.encode(END_OF_TEXT), state.vocab.encode(prime) if prime else []])
    marker = int(fed[0])
    texts = []
    for at in range(0, num, TEXTS_AT_ONCE):
        count = min(TEXTS_AT_ONCE, num - at)
        H = np.zeros((count, state.layout.state_size), state.params.dtype)
        primes = np.tile(fed.astype(np.int64), (count, 1))
        drawn = [[] for _ in range(count)]
        rngs = [np.random.default_rng([seed, first + at + i]) for i in range(count)]
        alive = np.arange(count)
        while alive.size and len(drawn[alive[0]]) < max_length:
            n = min(DOCUMENT_PIECE, max_length - len(drawn[alive[0]]))
            uniforms = np.stack([rngs[i].random(n) for i in alive.tolist()])
            piece = engine.sample_states(state.params, H, primes, uniforms, temperature, top_k)
            going = np.ones(alive.size, bool)
            for row, i in enumerate(alive.tolist()):
                ends = np.flatnonzero(piece[row] == marker)
                drawn[i].extend(piece[row, :ends[0] if ends.size else piece.shape[1]].tolist())
                going[row] = ends.size == 0
            alive, H, primes = alive[going], H[going], piece[going, -1:]
        texts += [prime + state.vocab.decode(chars) for chars in drawn]
    return texts
