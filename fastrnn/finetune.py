"""Fine-tuning: a new run that starts from a trained model's parameters on a new text.

The vocabulary becomes the union of the model's and the text's: the characters the model knew
keep their input-weight columns and output rows, new ones get fresh ones drawn as at a start
(``cells.Layout.initialise`` with the run's seed). The optimizer's state, the carried state
and the counters start afresh.
"""
from __future__ import annotations

import numpy as np

from .model import init_state
from .text import Vocab


def vocab_union(a: Vocab, b: Vocab) -> Vocab:
    return Vocab(np.union1d(a.codepoints, b.codepoints).astype(np.uint32))


def reencode(encoded: np.ndarray, vocab: Vocab, wider: Vocab) -> np.ndarray:
    """Indices into ``vocab`` as indices into ``wider`` (which holds every character of it)."""
    mapping = np.searchsorted(wider.codepoints, vocab.codepoints).astype(wider.index_dtype())
    return mapping[encoded]


def start_from(init, vocab: Vocab, hyper):
    """A new run's ``model.State`` for ``hyper`` on ``vocab`` (a superset of ``init``'s) with the
    parameters of the trained ``init`` (a ``model.State`` of the same cell, layers and hidden
    size). An array that has an axis of the vocabulary's size takes the model's entries at the
    indices of its characters; the other entries are those of a fresh model."""
    fresh = init_state(vocab, hyper)
    where = np.searchsorted(vocab.codepoints, init.vocab.codepoints)
    new_views = fresh.views()
    for name, old in init.views().items():
        new = new_views[name]
        if old.shape == new.shape:
            new[...] = old
            continue
        axis = next(a for a in range(old.ndim) if old.shape[a] != new.shape[a])
        index = [slice(None)] * old.ndim
        index[axis] = where
        new[tuple(index)] = old
    return fresh
