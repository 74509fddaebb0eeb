"""The same maths in plain NumPy, written the way people write it by hand.

This follows min-char-rnn: one-hot input vectors, one ``np.dot`` per timestep, dictionaries of
per-timestep arrays. It is the oracle the kernels are tested against and the baseline the
benchmarks measure; it favours being obviously right over being fast. It works in the dtype of
the parameters.

Parameters are a dict of arrays in their own (PyTorch's) orientation, named as
``cells.Layout.shapes`` names them:

    the classic cell   W (m, m), U (m, K), V (K, m), b (m,), c (K,)
    a stack            weight_ih_l{k} (G m, K for k = 0, else m), weight_hh_l{k} (G m, m),
                       bias_ih_l{k}, bias_hh_l{k} (G m,), head.weight (K, m), head.bias (K,);
                       with an input embedding, embedding.weight (K, D), and weight_ih_l0 is
                       (G m, D): layer 0 reads E[x_t], the row of the input character, where
                       one-hot models read the one-hot vector

The model (cell, layers, m) is read from the dict alone (``architecture``). The carried state
is one flat vector (S,): h (m,) for the classic cell; for a stack, h of layers 0..L-1, then
c of layers 0..L-1 for the LSTM. Each cell's step maths is one entry of ``STEPS``; the
equations are those of ``cells``' docstring.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .cells import CELLS
from .settings import BY_NAME


def forward(params, inputs, targets, hprev, masks=None, restart=None):
    """Forward pass over one chunk: returns (loss, xs, hs, ps), the per-timestep one-hot inputs,
    carried states (hs[-1] = hprev; for the classic cell h, for a stack the flat state (S,))
    and probabilities. Works in the dtype of the parameters. masks (L, n, m): dropout's
    multipliers of each layer's h_t on its way up (``dropout_masks``), or None.
    restart: the input read from the zero state wherever it comes (documents' end marker, so
    that each document starts from the start state), or None."""
    if "W" not in params:
        return _stack_forward(params, inputs, targets, hprev, masks, restart)[:4]
    W, U, V, b, c = (params[k] for k in ("W", "U", "V", "b", "c"))
    K = V.shape[0]
    xs, hs, ps = {}, {-1: np.copy(hprev)}, {}
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros(K, dtype=W.dtype)
        xs[t][inputs[t]] = 1.0
        hs[t] = np.tanh(np.dot(W, previous(hs[t - 1], inputs[t], restart)) + np.dot(U, xs[t]) + b)
        o = np.dot(V, hs[t] if masks is None else masks[0, t] * hs[t]) + c
        e = np.exp(o - np.max(o))
        ps[t] = e / np.sum(e)
        loss += -np.log(ps[t][targets[t]])
    return loss, xs, hs, ps


def previous(h, x, restart):
    """The state the step reading x starts from: h, or zeros where x is the restart input."""
    return np.zeros_like(h) if x == restart else h


def loss_and_grads(params, inputs, targets, hprev, masks=None, restart=None):
    """Forward and backward over one chunk.

    inputs, targets: int sequences of length n; hprev: the carried state, (m,) for the classic
    cell, the flat (S,) for a stack; masks, restart: as ``forward`` takes them (no gradient
    flows back through a restart).
    Returns (loss, grads, h_last): the summed cross-entropy, a dict of raw (unclipped)
    gradients shaped like ``params``, and the carried state after the last input.
    """
    if "W" not in params:
        return _stack_loss_and_grads(params, inputs, targets, hprev, masks, restart)
    W, V = params["W"], params["V"]
    loss, xs, hs, ps = forward(params, inputs, targets, hprev, masks, restart)
    mask = (lambda t: 1.0) if masks is None else (lambda t: masks[0, t])
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dh_next = np.zeros_like(hprev)
    for t in reversed(range(len(inputs))):
        g = np.copy(ps[t])
        g[targets[t]] -= 1.0
        grads["V"] += np.outer(g, mask(t) * hs[t])
        grads["c"] += g
        dh = mask(t) * np.dot(V.T, g) + dh_next
        da = (1.0 - hs[t] * hs[t]) * dh
        grads["b"] += da
        grads["U"] += np.outer(da, xs[t])
        grads["W"] += np.outer(da, previous(hs[t - 1], inputs[t], restart))
        dh_next = previous(np.dot(W.T, da), inputs[t], restart)
    return loss, grads, hs[len(inputs) - 1]


class OptimizerSettings(NamedTuple):
    """An optimizer by name ("adagrad", "rmsprop", "adam") and its options by name, with
    PyTorch's defaults: the options ``kernels.optim`` and ``model.Hyper`` have, under the
    same names.

    eps: the denominator's guard.   clip: each gradient element clipped to [-clip, clip]
    (``train_step``: unless clip_norm > 0).   clip_norm > 0: the global norm clipped to it
    first (``train_step``).   beta1, beta2: Adam's moments' decay.   alpha: RMSprop's.
    weight_decay: decoupled (AdamW's), theta *= 1 - eta weight_decay, for rmsprop and adam.
    """

    # the defaults are the settings' own (``settings.py``)
    name: str = BY_NAME["optimizer"].default
    eps: float = BY_NAME["eps"].default
    clip: float = BY_NAME["clip"].default
    clip_norm: float = BY_NAME["clip_norm"].default
    beta1: float = BY_NAME["beta1"].default
    beta2: float = BY_NAME["beta2"].default
    alpha: float = BY_NAME["alpha"].default
    weight_decay: float = BY_NAME["weight_decay"].default


def adagrad_step(params, mem, grads, eta=0.1, options=OptimizerSettings()):
    """Clip every gradient to [-clip, clip], then the AdaGrad update, all in place."""
    eps, clip = options.eps, options.clip
    for k in params:
        g = np.clip(grads[k], -clip, clip)
        mem[k] += g * g
        params[k] -= eta * g / np.sqrt(mem[k] + eps)


def rmsprop_step(params, sq, grads, eta, options=OptimizerSettings("rmsprop")):
    """Clip, then RMSprop as ``torch.optim.RMSprop`` (with AdamW's decoupled weight decay), in
    place: sq is the running mean of squared gradients."""
    alpha, eps, clip, weight_decay = options.alpha, options.eps, options.clip, options.weight_decay
    for k in params:
        g = np.clip(grads[k], -clip, clip)
        sq[k] *= alpha
        sq[k] += (1.0 - alpha) * g * g
        params[k] *= 1.0 - eta * weight_decay
        params[k] -= eta * g / (np.sqrt(sq[k]) + eps)


def adam_step(params, m, v, grads, t, eta, options=OptimizerSettings("adam")):
    """Clip, then the t-th step of Adam as ``torch.optim.Adam`` (``AdamW`` with weight decay), in
    place: m, v are the first and second moments."""
    beta1, beta2, eps, clip = options.beta1, options.beta2, options.eps, options.clip
    weight_decay = options.weight_decay
    for k in params:
        g = np.clip(grads[k], -clip, clip)
        params[k] *= 1.0 - eta * weight_decay
        m[k] += (1.0 - beta1) * (g - m[k])
        v[k] *= beta2
        v[k] += (1.0 - beta2) * g * g
        denom = np.sqrt(v[k]) / np.sqrt(1.0 - beta2 ** t) + eps
        params[k] -= eta / (1.0 - beta1 ** t) * m[k] / denom


_GOLDEN, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def dropout_masks(p, seed, update, stream, layers, n, m, dtype):
    """Dropout's multipliers (layers, n, m) of one stream in update number ``update``: 0 or
    1 / (1 - p), from 16-bit uniforms of a hash of (seed, update, stream) and each element's
    index (``kernels/dropout.py`` says how)."""
    with np.errstate(over="ignore"):
        key = _mix64(_mix64(_mix64(np.uint64(seed) + _GOLDEN) + np.uint64(update)) + np.uint64(stream))
        e = np.arange(layers * n * m, dtype=np.uint64)
        words = _mix64(key + (e // np.uint64(4) + np.uint64(1)) * _GOLDEN)
        u = (words >> (np.uint64(16) * (e % np.uint64(4)))) & np.uint64(0xFFFF)
    keep = u >= np.uint64(round(p * 65536.0))
    return np.where(keep, np.dtype(dtype).type(1.0 / (1.0 - p)), np.dtype(dtype).type(0.0)).reshape(layers, n, m)


def clip_to_norm(grads, max_norm):
    """The gradients scaled in place by min(1, max_norm / (their global norm + 1e-6)), the norm
    in float64 (``torch.nn.utils.clip_grad_norm_``)."""
    norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads.values()))
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        for k in grads:
            grads[k][...] = (grads[k].astype(np.float64) * coef).astype(grads[k].dtype)


class Dropout(NamedTuple):
    """Dropout of each unit of a layer's h_t on its way up with probability p, its masks drawn
    from (seed, update, stream) (``dropout_masks``)."""

    p: float
    seed: int = 0


def train_step(params, mem, H, positions, book, n, eta=0.1, *, optimizer=OptimizerSettings(), t=1, dropout=None,
               restart=None):
    """One update of B streams, in place: each stream s takes the chunk of n characters at
    positions[s] (after starting again at 0 with a zero state when fewer than n + 1 characters
    are left) from its carried state H[s]; the mean of the B gradients goes through
    ``optimizer`` at the rate eta (``adagrad_step`` by default; ``mem`` is its sums, RMSprop's
    mean squares, or Adam's (m, v); t: Adam's step number), after the global-norm clip with
    its ``clip_norm`` > 0 (which replaces the element-wise clip). B = 1 is the classic
    algorithm. With a ``Dropout``, stream s's chunk runs with ``dropout_masks(p, seed, t, s,
    ...)``: the update's number is t. ``restart``: as ``forward`` takes it. Returns (mean chunk
    loss, the mean gradient as the optimizer was given it: raw, or scaled by the global-norm
    clip).

    H (B, S), positions (B,) int: read and written.   book: the encoded text.
    """
    B = len(positions)
    total = {k: np.zeros_like(v) for k, v in params.items()}
    loss = 0.0
    for s in range(B):
        if positions[s] + n + 1 > len(book):
            positions[s], H[s] = 0, 0.0
        p = positions[s]
        masks = None
        if dropout is not None and dropout.p > 0:
            _, layers, m = architecture(params)
            masks = dropout_masks(dropout.p, dropout.seed, t, s, layers, n, m, H.dtype)
        chunk_loss, grads, H[s] = loss_and_grads(params, book[p:p + n], book[p + 1:p + n + 1], H[s], masks, restart)
        loss += chunk_loss
        for k in total:
            total[k] += grads[k]
        positions[s] += n
    mean = total if B == 1 else {k: v / B for k, v in total.items()}
    if optimizer.clip_norm > 0:
        clip_to_norm(mean, optimizer.clip_norm)
        optimizer = optimizer._replace(clip=np.inf)
    if optimizer.name == "adam":
        adam_step(params, *mem, mean, t, eta, optimizer)
    elif optimizer.name == "rmsprop":
        rmsprop_step(params, mem, mean, eta, optimizer)
    else:
        adagrad_step(params, mem, mean, eta, optimizer)
    return loss / B, mean


def sample(params, h, x, n, uniforms, temperature=1.0, top_k=0):
    """Generate ``n`` character indices after input index ``x`` from carried state ``h`` ((m,)
    for the classic cell, the flat (S,) for a stack).

    uniforms: n numbers in [0, 1) that pick each character by inverse CDF. Pass ``x = None`` to
    start from ``h`` alone (the first character then comes from the output layer on the top
    layer's h). top_k > 0: pick among the top_k most likely characters only (a stable sort keeps
    the lower index of two equal ones).
    """
    classic = "W" in params
    if classic:
        W, U, V, b, c = (params[k] for k in ("W", "U", "V", "b", "c"))
        h = np.copy(h)
    else:
        V, c = params["head.weight"], params["head.bias"]
        cell, layers, m = architecture(params)
        carried = unpack_state(np.array(h, dtype=V.dtype), cell, layers, m)
        h = carried[-1][0]
    K = V.shape[0]
    out = []
    for t in range(n):
        if x is not None:
            if classic:
                xv = np.zeros(K)
                xv[x] = 1.0
                h = np.tanh(np.dot(W, h) + np.dot(U, xv) + b)
            else:
                carried, _ = stack_step(params, carried, input_vector(params, x))
                h = carried[-1][0]
        o = (np.dot(V, h) + c) / temperature
        e = np.exp(o - np.max(o))
        p = e / np.sum(e)
        if 0 < top_k < K:
            p[np.argsort(-o, kind="stable")[top_k:]] = 0.0
        x = min(int(np.searchsorted(np.cumsum(p), uniforms[t] * np.sum(p), side="right")), K - 1)
        out.append(x)
    return out


# ---------------------------------------------------------------------------------------------
# Stacks: each cell's step, forward and backward; a layer's weights w = (W_ih, W_hh, b_ih, b_hh)
# and its carried vectors a tuple, (h,) or (h, c) for the LSTM.

def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def rnn_step(w, x, carried):
    """h_t = tanh(W_ih x + b_ih + W_hh h + b_hh). Returns ((h_t,), cache for the backward step)."""
    W_ih, W_hh, b_ih, b_hh = w
    (h,) = carried
    h_t = np.tanh(np.dot(W_ih, x) + b_ih + np.dot(W_hh, h) + b_hh)
    return (h_t,), (x, h, h_t)


def rnn_step_backward(dw, w, cache, dcarried):
    """Accumulates one step's gradients into dw = (dW_ih, dW_hh, db_ih, db_hh); dcarried: the
    loss's gradient w.r.t. the step's outputs (h_t,). Returns (dL/dx, (dL/dh,))."""
    W_ih, W_hh = w[0], w[1]
    x, h, h_t = cache
    (dh_t,) = dcarried
    da = (1.0 - h_t * h_t) * dh_t
    _accumulate(dw, da, da, x, h)
    return np.dot(W_ih.T, da), (np.dot(W_hh.T, da),)


def gru_step(w, x, carried):
    """r, z = sigmoid(blocks r, z of W_ih x + b_ih + W_hh h + b_hh);
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h_t = (1 - z) * n + z * h."""
    W_ih, W_hh, b_ih, b_hh = w
    (h,) = carried
    m = h.shape[0]
    gi = np.dot(W_ih, x) + b_ih
    gh = np.dot(W_hh, h) + b_hh
    r = sigmoid(gi[:m] + gh[:m])
    z = sigmoid(gi[m:2 * m] + gh[m:2 * m])
    n = np.tanh(gi[2 * m:] + r * gh[2 * m:])
    h_t = (1.0 - z) * n + z * h
    return (h_t,), (x, h, r, z, n, gh[2 * m:])


def gru_step_backward(dw, w, cache, dcarried):
    """The gru step's gradients, as ``rnn_step_backward``."""
    W_ih, W_hh = w[0], w[1]
    x, h, r, z, n, ghn = cache
    (dh_t,) = dcarried
    dan = dh_t * (1.0 - z) * (1.0 - n * n)
    daz = dh_t * (h - n) * z * (1.0 - z)
    dar = dan * ghn * r * (1.0 - r)
    dgi = np.concatenate([dar, daz, dan])
    dgh = np.concatenate([dar, daz, dan * r])
    _accumulate(dw, dgi, dgh, x, h)
    return np.dot(W_ih.T, dgi), (dh_t * z + np.dot(W_hh.T, dgh),)


def lstm_step(w, x, carried):
    """i, f, o = sigmoid(.), g = tanh(.) of the blocks of W_ih x + b_ih + W_hh h + b_hh;
    c_t = f * c + i * g; h_t = o * tanh(c_t)."""
    W_ih, W_hh, b_ih, b_hh = w
    h, c = carried
    m = h.shape[0]
    a = np.dot(W_ih, x) + b_ih + np.dot(W_hh, h) + b_hh
    i, f, g, o = sigmoid(a[:m]), sigmoid(a[m:2 * m]), np.tanh(a[2 * m:3 * m]), sigmoid(a[3 * m:])
    c_t = f * c + i * g
    h_t = o * np.tanh(c_t)
    return (h_t, c_t), (x, h, c, i, f, g, o, np.tanh(c_t))


def lstm_step_backward(dw, w, cache, dcarried):
    """The lstm step's gradients, as ``rnn_step_backward``; dcarried = (dL/dh_t, dL/dc_t)."""
    W_ih, W_hh = w[0], w[1]
    x, h, c, i, f, g, o, tc = cache
    dh_t, dc_t = dcarried
    dc = dc_t + dh_t * o * (1.0 - tc * tc)
    da = np.concatenate([dc * g * i * (1.0 - i), dc * c * f * (1.0 - f), dc * i * (1.0 - g * g),
                         dh_t * tc * o * (1.0 - o)])
    _accumulate(dw, da, da, x, h)
    return np.dot(W_ih.T, da), (np.dot(W_hh.T, da), dc * f)


def _accumulate(dw, dgi, dgh, x, h):
    """dW_ih += dgi x^T, dW_hh += dgh h^T, db_ih += dgi, db_hh += dgh: the gradients of the
    products W_ih x + b_ih (dL/d of it: dgi) and W_hh h + b_hh (dgh)."""
    dW_ih, dW_hh, db_ih, db_hh = dw
    dW_ih += np.outer(dgi, x)
    dW_hh += np.outer(dgh, h)
    db_ih += dgi
    db_hh += dgh


class Step(NamedTuple):
    """A cell's step: ``forward(w, x, carried) -> (carried_t, cache)`` and
    ``backward(dw, w, cache, dcarried_t) -> (dx, dcarried)``."""

    forward: Callable
    backward: Callable


STEPS = {
    "rnn": Step(rnn_step, rnn_step_backward),
    "gru": Step(gru_step, gru_step_backward),
    "lstm": Step(lstm_step, lstm_step_backward),
}


def architecture(params):
    """(cell, layers, m) of the model whose arrays are ``params``: ("rnn", 1, m) for the
    classic cell (the one with "W"); for a stack, the cell whose gate multiple is
    weight_hh_l0's rows over its columns, and as many layers as weight_hh_l* arrays."""
    if "W" in params:
        return "rnn", 1, params["W"].shape[0]
    gm, m = params["weight_hh_l0"].shape
    cell = {c.gates: name for name, c in CELLS.items()}[gm // m]
    return cell, sum(1 for k in params if k.startswith("weight_hh_l")), m


def layer_weights(params, k):
    """Layer k's (W_ih, W_hh, b_ih, b_hh) of ``params`` (or of a dict of gradients)."""
    return tuple(params[f"{name}_l{k}"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def unpack_state(state, cell, layers, m):
    """The flat carried state (S,) as a list of each layer's carried vectors ((h,) or (h, c)),
    views of ``state``."""
    n = len(CELLS[cell].carried)
    return [tuple(state[(j * layers + k) * m:(j * layers + k + 1) * m] for j in range(n)) for k in range(layers)]


def pack_state(carried):
    """The flat carried state (S,) of a list of each layer's carried vectors."""
    return np.concatenate([layer[j] for j in range(len(carried[0])) for layer in carried])


def input_vector(params, x):
    """What layer 0 of a stack reads for the character of index x: its one-hot vector (K,), or
    its row of the embedding (D,)."""
    if "embedding.weight" in params:
        return np.copy(params["embedding.weight"][x])
    V = params["head.weight"]
    xv = np.zeros(V.shape[0], dtype=V.dtype)
    xv[x] = 1.0
    return xv


def stack_step(params, carried, x, masks_t=None):
    """One input vector x (K,) through every layer, from ``carried`` (a list of each layer's
    carried vectors); layer k > 0 reads layer k-1's new h (times masks_t[k-1] with dropout's
    masks_t (L, m)). Returns (the new carried list, the list of the layers' caches)."""
    cell, layers, _ = architecture(params)
    new, caches = [], []
    for k in range(layers):
        carried_k, cache = STEPS[cell].forward(layer_weights(params, k), x, carried[k])
        new.append(carried_k)
        caches.append(cache)
        x = carried_k[0] if masks_t is None else masks_t[k] * carried_k[0]
    return new, caches


def _stack_forward(params, inputs, targets, hprev, masks=None, restart=None):
    """``forward`` for a stack; also returns caches[t], the layers' caches at step t."""
    cell, layers, m = architecture(params)
    V, c = params["head.weight"], params["head.bias"]
    xs, hs, ps, caches = {}, {-1: np.array(hprev, dtype=V.dtype)}, {}, {}
    carried = unpack_state(hs[-1], cell, layers, m)
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = input_vector(params, inputs[t])
        if inputs[t] == restart:
            carried = unpack_state(np.zeros_like(hs[-1]), cell, layers, m)
        carried, caches[t] = stack_step(params, carried, xs[t], None if masks is None else masks[:, t])
        hs[t] = pack_state(carried)
        o = np.dot(V, carried[-1][0] if masks is None else masks[-1, t] * carried[-1][0]) + c
        e = np.exp(o - np.max(o))
        ps[t] = e / np.sum(e)
        loss += -np.log(ps[t][targets[t]])
    return loss, xs, hs, ps, caches


def _stack_loss_and_grads(params, inputs, targets, hprev, masks=None, restart=None):
    """``loss_and_grads`` for a stack."""
    cell, layers, m = architecture(params)
    V = params["head.weight"]
    loss, xs, hs, ps, caches = _stack_forward(params, inputs, targets, hprev, masks, restart)
    mask = (lambda k, t: 1.0) if masks is None else (lambda k, t: masks[k, t])
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    # dnext[k]: dL/d(layer k's carried vectors) through the step after
    dnext = [tuple(np.zeros(m, dtype=V.dtype) for _ in CELLS[cell].carried) for _ in range(layers)]
    for t in reversed(range(len(inputs))):
        g = np.copy(ps[t])
        g[targets[t]] -= 1.0
        grads["head.weight"] += np.outer(g, mask(layers - 1, t) * unpack_state(hs[t], cell, layers, m)[-1][0])
        grads["head.bias"] += g
        dh = np.dot(V.T, g)  # dL/d(masks h_t) of the top layer through the output; then of the layer below
        for k in reversed(range(layers)):
            dcarried = (dnext[k][0] + mask(k, t) * dh,) + dnext[k][1:]
            dh, dnext[k] = STEPS[cell].backward(layer_weights(grads, k), layer_weights(params, k), caches[t][k],
                                                dcarried)
        if "embedding.weight" in grads:  # dh: dL/d of layer 0's input E[x_t]
            grads["embedding.weight"][inputs[t]] += dh
        if inputs[t] == restart:  # the step read the zero state: nothing flows further back
            dnext = [tuple(np.zeros_like(d) for d in dk) for dk in dnext]
    return loss, grads, hs[len(inputs) - 1]
