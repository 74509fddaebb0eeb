"""The optimizers over the flat parameter buffer, each after the element-wise gradient clip
g = clip(grad, -clip, clip) (clip = inf: none), as PyTorch defines them:

    adagrad   mem += g^2;   theta -= eta g / sqrt(mem + eps)      (the assignment's)
    rmsprop   s = alpha s + (1 - alpha) g^2;   theta -= eta g / (sqrt(s) + eps)
    adam      m = m + (1 - beta1) (g - m);   v = beta2 v + (1 - beta2) g^2;
              theta -= (eta / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

rmsprop and adam first decay theta by (1 - eta weight_decay) (AdamW's decoupled weight
decay; 1 without it). Each has an out-of-place version (the training loop writes a new best
model into the other buffer) and an in-place one, as separate loops: overlapping arrays defeat
vectorisation. ``scale_to_norm`` is the global-norm clip, applied to the gradient before them.
"""
import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .config import JIT


class OptimizerOptions(NamedTuple):
    """The optimizers' options as the training loop passes them, each a scalar of the
    parameters' dtype (``engine.optimizer_options`` builds them from a run's ``Hyper``)."""

    eps: float  # added to the denominator of every step
    clip: float  # the element-wise clip of the gradient; inf: none (so with clip_norm)
    clip_norm: float  # > 0: the global-norm clip (``scale_to_norm``), applied first
    beta1: float  # Adam's first-moment decay
    beta2: float  # Adam's second-moment decay
    alpha: float  # RMSprop's decay of its running mean
    weight_decay: float  # decoupled: theta decays by 1 - eta weight_decay (RMSprop, Adam)


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


@njit(inline="always")
def _rmsprop_entry(theta, s, grad, eta, alpha, eps, clip, decay):
    g = min(max(grad, -clip), clip)
    s = alpha * s + (1.0 - alpha) * g * g
    return theta * decay - eta * g / (math.sqrt(s) + eps), s


@njit(**JIT)
def rmsprop_update(params_out, s_out, params, s, grads, eta, alpha, eps, clip, decay):
    """RMSprop, out of place: params_out, s_out (P,) written; params, s (the running mean of
    squared gradients), grads (P,) read.   decay: 1 - eta weight_decay."""
    for i in range(params.shape[0]):
        params_out[i], s_out[i] = _rmsprop_entry(params[i], s[i], grads[i], eta, alpha, eps, clip, decay)


@njit(**JIT)
def rmsprop_update_inplace(params, s, grads, eta, alpha, eps, clip, decay):
    """``rmsprop_update`` writing into params and s themselves."""
    for i in range(params.shape[0]):
        params[i], s[i] = _rmsprop_entry(params[i], s[i], grads[i], eta, alpha, eps, clip, decay)


@njit(inline="always")
def _adam_entry(theta, m, v, grad, step, beta1, beta2, eps, clip, decay, bc2_sqrt):
    g = min(max(grad, -clip), clip)
    m = m + (1.0 - beta1) * (g - m)
    v = beta2 * v + (1.0 - beta2) * g * g
    return theta * decay - step * m / (math.sqrt(v) / bc2_sqrt + eps), m, v


@njit(**JIT)
def adam_update(params_out, m_out, v_out, params, m, v, grads, step, beta1, beta2, eps, clip, decay, bc2_sqrt):
    """Adam, out of place: params_out, m_out, v_out (P,) written; params, m, v (the moments),
    grads (P,) read.   step: eta / (1 - beta1^t);   bc2_sqrt: sqrt(1 - beta2^t), t the steps
    taken with this one;   decay: 1 - eta weight_decay."""
    for i in range(params.shape[0]):
        params_out[i], m_out[i], v_out[i] = _adam_entry(params[i], m[i], v[i], grads[i], step, beta1, beta2, eps,
                                                         clip, decay, bc2_sqrt)


@njit(**JIT)
def adam_update_inplace(params, m, v, grads, step, beta1, beta2, eps, clip, decay, bc2_sqrt):
    """``adam_update`` writing into params, m and v themselves."""
    for i in range(params.shape[0]):
        params[i], m[i], v[i] = _adam_entry(params[i], m[i], v[i], grads[i], step, beta1, beta2, eps, clip, decay,
                                            bc2_sqrt)


@njit(**JIT)
def scale_to_norm(grads, max_norm):
    """grads (P,) scaled in place by min(1, max_norm / (||grads|| + 1e-6)), the norm summed in
    float64 (PyTorch's ``clip_grad_norm_``)."""
    total = 0.0
    for i in range(grads.shape[0]):
        total += np.float64(grads[i]) * np.float64(grads[i])
    coef = max_norm / (math.sqrt(total) + 1e-6)
    if coef < 1.0:
        for i in range(grads.shape[0]):
            grads[i] *= coef


# The optimizers as the training loop calls them (``loop.step_and_keep_best``), one signature
# for all: params_out, state_out written (out of place) or params, state updated (in_place);
# state (k, P): the optimizer's k arrays (``optimizers.OPTIMIZERS``); held (K,) and the rows
# from first_row of row_len: the input-weight rows of characters the update's chunks held;
# opts: an ``OptimizerOptions``; t: the steps taken, this one included.

@njit(inline="always")
def adagrad_step(params_out, state_out, params, state, grads, held, first_row, row_len, eta, opts, t, in_place):
    """AdaGrad; in place it passes over the rows of characters not held, whose gradient is
    exactly zero and so changes nothing (``adagrad_update_inplace_held``)."""
    eps, clip = opts.eps, opts.clip
    if in_place:
        adagrad_update_inplace_held(params, state[0], grads, held, first_row, row_len, eta, eps, clip)
    else:
        adagrad_update(params_out, state_out[0], params, state[0], grads, eta, eps, clip)


@njit(inline="always")
def rmsprop_step(params_out, state_out, params, state, grads, held, first_row, row_len, eta, opts, t, in_place):
    """RMSprop over every parameter (a zero gradient still decays its running mean)."""
    eps, clip, alpha, decay = opts.eps, opts.clip, opts.alpha, 1.0 - eta * opts.weight_decay
    if in_place:
        rmsprop_update_inplace(params, state[0], grads, eta, alpha, eps, clip, decay)
    else:
        rmsprop_update(params_out, state_out[0], params, state[0], grads, eta, alpha, eps, clip, decay)


@njit(inline="always")
def adam_step(params_out, state_out, params, state, grads, held, first_row, row_len, eta, opts, t, in_place):
    """Adam over every parameter, bias-corrected for its t-th step."""
    eps, clip, beta1, beta2 = opts.eps, opts.clip, opts.beta1, opts.beta2
    decay = 1.0 - eta * opts.weight_decay
    step = eta / (1.0 - beta1 ** t)
    bc2_sqrt = math.sqrt(1.0 - beta2 ** t)
    if in_place:
        adam_update_inplace(params, state[0], state[1], grads, step, beta1, beta2, eps, clip, decay, bc2_sqrt)
    else:
        adam_update(params_out, state_out[0], state_out[1], params, state[0], state[1], grads, step, beta1, beta2,
                    eps, clip, decay, bc2_sqrt)


OPTIMIZER_STEPS = {"adagrad": adagrad_step, "rmsprop": rmsprop_step, "adam": adam_step}
