"""Generating text from a model: the Python side of ``kernels.sampler.sample_chars``.

Where text starts matters. Training carries h from chunk to chunk and sets it to zero only
where the book starts again, so to a trained model h = 0 means "the book's first line"; from
h = 0 some models fall into an attractor that predicts rare symbols (noise) and stay there.
Text therefore starts, by default, from the state the model was in when it was saved: the
carried hidden state, fed the character that followed it in the book (``start_state``).
"""
from __future__ import annotations

import numpy as np

from .cells import Layout
from .text import Vocab


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


def sample_indices(params, vocab: Vocab, m: int, n: int, rng: np.random.Generator,
                   temperature: float = 1.0, h=None, prime=(), num: int | None = None,
                   top_k: int = 0, cell: str = "rnn", layers: int = 1, embedding: int = 0) -> np.ndarray:
    """``n`` sampled character indices (int64) from flat ``params`` of a model of ``layers``
    layers of ``cell`` (after an input embedding of width ``embedding``, 0: none); with
    ``num``, a (num, n) array of ``num`` texts sampled at once from the same start.

    h: the flat carried state to start from (zeros when None; not modified). prime: indices
    fed before sampling.
    top_k: pick only among the top_k most likely characters (0: among all).
    All randomness comes from ``rng``, so a seed gives the same text every time; text i of
    ``num`` uses the numbers it would draw if the texts were sampled one by one.
    """
    from .kernels import sampler

    if not temperature > 0:
        raise ValueError("temperature must be positive")
    if top_k < 0:
        raise ValueError("top_k must not be negative")
    layout = Layout(m, vocab.size, cell, layers, embedding)
    dtype = params.dtype
    count = 1 if num is None else num
    H = np.zeros((count, layout.state_size), dtype)
    if h is not None:
        H[:] = h
    out = np.zeros((count, n), dtype=np.int64)
    uniforms = rng.random(count * n).reshape(count, n)
    prime = np.asarray(prime, dtype=np.int64)
    if layout.classic:
        views = layout.views(params)
        sampler.sample_chars(out, H, np.empty((m, m + vocab.size), dtype), prime, uniforms,
                             views["W"], views["U"].T, views["V"], views["b"], views["c"],
                             float(1.0 / temperature), int(top_k))
    else:
        from .kernels.workspace import stack_weight_copies

        weights = stack_weight_copies(layers, m, layout.gm, vocab.size, dtype)
        dims = (layers, m, vocab.size, layout.gm)
        sampler.stack_kernels(cell)["sample_stack"](out, H, *weights, prime, uniforms, layout.fold(params), dims,
                                                    float(1.0 / temperature), int(top_k))
    return out[0] if num is None else out


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
    from .formats import END_OF_TEXT
    from .text import TextError

    if until_end and END_OF_TEXT not in state.vocab.chars:
        raise TextError("this model has no end-of-text character: --until-end needs a model trained on "
                        "tweets (--format json) or on documents (fastrnn.train(text=[...]))")
    first = state.vocab.encode(END_OF_TEXT)[0] if until_end else None
    h, fed = start_state(state, from_zero, first)
    fed = np.concatenate([np.asarray(fed, np.int64), state.vocab.encode(prime) if prime else []]).astype(np.int64)
    rng = rng if rng is not None else np.random.default_rng(seed)
    texts = []
    for at in range(0, num, TEXTS_AT_ONCE):
        out = sample_indices(state.params, state.vocab, state.hyper.hidden, n, rng, temperature, h=h,
                             prime=fed, num=min(TEXTS_AT_ONCE, num - at), top_k=top_k, cell=state.hyper.cell,
                             layers=state.hyper.layers, embedding=state.hyper.embedding)
        texts.extend(prime + state.vocab.decode(row) for row in out)
    if until_end:
        texts = [text[:text.find(END_OF_TEXT, len(prime))] if END_OF_TEXT in text[len(prime):] else text
                 for text in texts]
    return texts


def sample_text(state, n: int, seed: int = 0, temperature: float = 1.0, prime: str = "",
                rng: np.random.Generator | None = None, **start) -> str:
    """One text of ``sample_texts``."""
    return sample_texts(state, n, 1, seed, temperature, prime, rng, **start)[0]
