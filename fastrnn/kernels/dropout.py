"""Dropout masks, drawn from (seed, update, stream) alone.

Each stream's mask over one chunk is a function of the run's seed, the update's number and
the stream's index, never of which thread or block computes it: results stay independent of
``--threads`` and of how the streams are blocked, and a resumed run draws the masks a straight
one would. The draw is a counter-based hash (SplitMix64's finaliser): each 64-bit word gives
four 16-bit uniforms u, and a unit is kept, scaled by 1 / (1 - p) (inverted dropout, as
PyTorch's), where u >= round(p 65536). ``reference.dropout_masks`` is the same in NumPy.
"""
import numpy as np
from numba import njit

from .config import JIT

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
S30, S27, S31, S16 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(16)
LANE = np.uint64(0xFFFF)


@njit(inline="always")
def mix64(z):
    """SplitMix64's finaliser: a bijection of uint64 whose every output bit depends on every
    input bit."""
    z = (z ^ (z >> S30)) * MIX1
    z = (z ^ (z >> S27)) * MIX2
    return z ^ (z >> S31)


@njit(inline="always")
def stream_key(seed, update, stream):
    """The key of one stream's masks in one update."""
    return mix64(mix64(mix64(np.uint64(seed) + GOLDEN) + np.uint64(update)) + np.uint64(stream))


@njit(**JIT)
def dropout_masks_into(masks, p, seed, update, first_stream):
    """masks (L, n, G, m): written with the multipliers 0 or 1 / (1 - p) of streams
    first_stream .. first_stream + G - 1 in update number ``update``; stream s's element
    (l, t, i) is uniform number (l n + t) m + i of its key."""
    L, n, G, m = masks.shape
    threshold = np.uint64(round(p * 65536.0))
    scale = masks.dtype.type(1.0 / (1.0 - p))
    zero = masks.dtype.type(0.0)
    for s in range(G):
        key = stream_key(seed, update, first_stream + s)
        for l in range(L):
            for t in range(n):
                row = masks[l, t, s]
                base = (l * n + t) * m
                for i in range(m):
                    e = base + i
                    word = mix64(key + np.uint64(e // 4 + 1) * GOLDEN)
                    u = (word >> (S16 * np.uint64(e % 4))) & LANE
                    row[i] = scale if u >= threshold else zero


@njit(inline="always")
def multiply_into(out, a, b):
    """out = a * b, elementwise, of three arrays of one shape (n, G, m)."""
    n, G, m = out.shape
    for t in range(n):
        for s in range(G):
            for i in range(m):
                out[t, s, i] = a[t, s, i] * b[t, s, i]
