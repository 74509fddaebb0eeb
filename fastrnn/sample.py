"""Generating text from a model: the Python side of ``kernels.sample_chars``."""
from __future__ import annotations

import numpy as np

from .model import Layout
from .text import Vocab


def sample_indices(params, vocab: Vocab, m: int, n: int, rng: np.random.Generator,
                   temperature: float = 1.0, h=None, prime=(), num: int | None = None) -> np.ndarray:
    """``n`` sampled character indices (int64) from flat ``params``; with ``num``, a (num, n)
    array of ``num`` texts sampled at once from the same start.

    h: start state (zeros when None; not modified). prime: indices fed before sampling.
    All randomness comes from ``rng``, so a seed gives the same text every time; text i of
    ``num`` uses the numbers it would draw if the texts were sampled one by one.
    """
    from . import kernels

    if not temperature > 0:
        raise ValueError("temperature must be positive")
    layout = Layout(m, vocab.size)
    views = layout.views(params)
    dtype = params.dtype
    count = 1 if num is None else num
    H = np.zeros((count, m), dtype)
    if h is not None:
        H[:] = h
    out = np.zeros((count, n), dtype=np.int64)
    uniforms = rng.random(count * n).reshape(count, n)
    prime = np.asarray(prime, dtype=np.int64)
    kernels.sample_chars(out, H, np.empty((m, m + vocab.size), dtype),
                         prime, uniforms, float(1.0 / temperature),
                         views["W"], views["U"].T, views["V"], views["b"], views["c"])
    return out[0] if num is None else out


TEXTS_AT_ONCE = 64  # texts per sampler call: bounds the memory of random numbers and indices


def sample_texts(state, n: int, num: int, seed: int = 0, temperature: float = 1.0, prime: str = "",
                 rng: np.random.Generator | None = None) -> list[str]:
    """``num`` texts from a ``model.State``, each starting from h = 0, after ``prime`` (which is
    included), sampled ``TEXTS_AT_ONCE`` at a time. Random numbers come from ``rng`` when given,
    else from a generator seeded with ``seed``; the texts are the same as ``num`` calls of
    ``sample_text`` with that ``rng``."""
    prime_idx = state.vocab.encode(prime) if prime else ()
    rng = rng if rng is not None else np.random.default_rng(seed)
    texts = []
    for first in range(0, num, TEXTS_AT_ONCE):
        out = sample_indices(state.params, state.vocab, state.hyper.hidden, n, rng, temperature,
                             prime=prime_idx, num=min(TEXTS_AT_ONCE, num - first))
        texts.extend(prime + state.vocab.decode(row) for row in out)
    return texts


def sample_text(state, n: int, seed: int = 0, temperature: float = 1.0, prime: str = "",
                rng: np.random.Generator | None = None) -> str:
    """One text of ``sample_texts``."""
    return sample_texts(state, n, 1, seed, temperature, prime, rng)[0]
