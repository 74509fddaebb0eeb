"""Generating text from a model: the Python side of ``kernels.sample_chars``."""
from __future__ import annotations

import numpy as np

from .model import Layout
from .text import Vocab


def sample_indices(params, vocab: Vocab, m: int, n: int, rng: np.random.Generator,
                   temperature: float = 1.0, h=None, prime=()) -> np.ndarray:
    """``n`` sampled character indices (int64) from flat ``params``.

    h: start state (zeros when None; not modified). prime: indices fed before sampling.
    All randomness comes from ``rng``, so a seed gives the same text with or without the JIT.
    """
    from . import kernels

    if not temperature > 0:
        raise ValueError("temperature must be positive")
    layout = Layout(m, vocab.size)
    views = layout.views(params)
    dtype = params.dtype
    h = np.zeros(m, dtype) if h is None else np.array(h, dtype=dtype)
    out = np.zeros(n, dtype=np.int64)
    uniforms = rng.random(n)
    prime = np.asarray(prime, dtype=np.int64)
    kernels.sample_chars(out, h, np.empty((m, m + vocab.size), dtype),
                         prime, uniforms, float(1.0 / temperature),
                         views["W"], views["U"], views["V"], views["b"], views["c"])
    return out


def sample_text(state, n: int, seed: int = 0, temperature: float = 1.0, prime: str = "",
                rng: np.random.Generator | None = None) -> str:
    """Text from a ``model.State``, starting from h = 0, after ``prime`` (which is included).
    Random numbers come from ``rng`` when given, else from a generator seeded with ``seed``."""
    prime_idx = state.vocab.encode(prime) if prime else ()
    rng = rng if rng is not None else np.random.default_rng(seed)
    out = sample_indices(state.params, state.vocab, state.hyper.hidden, n, rng, temperature,
                         prime=prime_idx)
    return prime + state.vocab.decode(out)
