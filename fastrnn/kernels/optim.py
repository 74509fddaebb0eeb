"""The optimizer: element-wise gradient clip and AdaGrad over the flat parameter buffer.

    g = clip(grad, -clip, clip);   mem += g^2;   theta -= eta g / sqrt(mem + eps)
"""
import math

from numba import njit

from .config import JIT


@njit(inline="always")
def _adagrad_entry(theta, mem, grad, eta, eps, clip):
    """g = clip(grad) to [-clip, clip];  mem += g^2;  theta -= eta g / sqrt(mem + eps)."""
    g = min(max(grad, -clip), clip)
    s = mem + g * g
    return theta - eta * g / math.sqrt(s + eps), s


@njit(**JIT)
def adagrad_update(params_out, mem_out, params, mem, grads, eta, eps, clip):
    """Clip each gradient, then AdaGrad, in one pass over the flat buffers, out of place.

    params_out, mem_out (P,): written; they must not overlap params, mem (use
    ``adagrad_update_inplace`` for that: overlapping arrays defeat vectorisation).
    params, mem, grads (P,): read.   eta, eps, clip: scalars of the parameters' dtype.
    """
    for i in range(params.shape[0]):
        params_out[i], mem_out[i] = _adagrad_entry(params[i], mem[i], grads[i], eta, eps, clip)


@njit(**JIT)
def adagrad_update_inplace(params, mem, grads, eta, eps, clip):
    """``adagrad_update`` writing into params (P,) and mem (P,) themselves."""
    for i in range(params.shape[0]):
        params[i], mem[i] = _adagrad_entry(params[i], mem[i], grads[i], eta, eps, clip)


@njit(**JIT)
def adagrad_update_inplace_held(params, mem, grads, held, first_row, row_len, eta, eps, clip):
    """``adagrad_update_inplace``, passing over row x of the rows of ``row_len`` numbers that
    start at ``first_row`` (the rows of U.T in the RNN's layout) where held[x] is False: the rows
    of characters no chunk of the update held as an input, whose gradient the backward pass
    leaves exactly zero, and a zero gradient leaves a parameter and its sum as they are. At
    K = 80 a chunk of 25 characters holds some 15-20 of them.   held (K,) bool: read."""
    start = 0  # everything since the last row passed over: one span, one loop
    for x in range(held.shape[0]):
        if not held[x]:
            a = first_row + x * row_len
            adagrad_update_inplace(params[start:a], mem[start:a], grads[start:a], eta, eps, clip)
            start = a + row_len
    adagrad_update_inplace(params[start:], mem[start:], grads[start:], eta, eps, clip)
