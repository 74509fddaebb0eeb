"""The same maths in plain NumPy, written the way people write it by hand.

This follows min-char-rnn: one-hot input vectors, one ``np.dot`` per timestep, dictionaries of
per-timestep arrays. It is the oracle the kernels are tested against and the baseline the
benchmarks measure; it favours being obviously right over being fast.

Parameters are a dict with W (m, m), U (m, K), V (K, m), b (m,), c (K,).
"""
from __future__ import annotations

import numpy as np


def forward(params, inputs, targets, hprev):
    """Forward pass over one chunk: returns (loss, xs, hs, ps), the per-timestep one-hot inputs,
    hidden states (hs[-1] = hprev) and probabilities. Works in the dtype of the parameters."""
    W, U, V, b, c = (params[k] for k in ("W", "U", "V", "b", "c"))
    K = V.shape[0]
    xs, hs, ps = {}, {-1: np.copy(hprev)}, {}
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros(K, dtype=W.dtype)
        xs[t][inputs[t]] = 1.0
        hs[t] = np.tanh(np.dot(W, hs[t - 1]) + np.dot(U, xs[t]) + b)
        o = np.dot(V, hs[t]) + c
        e = np.exp(o - np.max(o))
        ps[t] = e / np.sum(e)
        loss += -np.log(ps[t][targets[t]])
    return loss, xs, hs, ps


def loss_and_grads(params, inputs, targets, hprev):
    """Forward and backward over one chunk.

    inputs, targets: int sequences of length n; hprev: (m,).
    Returns (loss, grads, h_last): the summed cross-entropy, a dict of raw (unclipped)
    gradients shaped like ``params``, and the hidden state after the last input.
    """
    W, V = params["W"], params["V"]
    loss, xs, hs, ps = forward(params, inputs, targets, hprev)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dh_next = np.zeros_like(hprev)
    for t in reversed(range(len(inputs))):
        g = np.copy(ps[t])
        g[targets[t]] -= 1.0
        grads["V"] += np.outer(g, hs[t])
        grads["c"] += g
        dh = np.dot(V.T, g) + dh_next
        da = (1.0 - hs[t] * hs[t]) * dh
        grads["b"] += da
        grads["U"] += np.outer(da, xs[t])
        grads["W"] += np.outer(da, hs[t - 1])
        dh_next = np.dot(W.T, da)
    return loss, grads, hs[len(inputs) - 1]


def adagrad_step(params, mem, grads, eta=0.1, eps=1e-8, clip=5.0):
    """Clip every gradient to [-clip, clip], then the AdaGrad update, all in place."""
    for k in params:
        g = np.clip(grads[k], -clip, clip)
        mem[k] += g * g
        params[k] -= eta * g / np.sqrt(mem[k] + eps)


def train_step(params, mem, H, positions, book, n, eta=0.1, eps=1e-8, clip=5.0):
    """One update of B streams, in place: each stream s takes the chunk at positions[s] (after
    starting again at 0 with h = 0 when fewer than n + 1 characters are left) from its hidden
    state H[s]; the mean of the B gradients goes through ``adagrad_step``. B = 1 is the classic
    algorithm. Returns (mean chunk loss, mean raw gradients).

    H (B, m), positions (B,) int: read and written.   book: the encoded text.
    """
    B = len(positions)
    total = {k: np.zeros_like(v) for k, v in params.items()}
    loss = 0.0
    for s in range(B):
        if positions[s] + n + 1 > len(book):
            positions[s], H[s] = 0, 0.0
        p = positions[s]
        chunk_loss, grads, H[s] = loss_and_grads(params, book[p:p + n], book[p + 1:p + n + 1], H[s])
        loss += chunk_loss
        for k in total:
            total[k] += grads[k]
        positions[s] += n
    mean = total if B == 1 else {k: v / B for k, v in total.items()}
    adagrad_step(params, mem, mean, eta, eps, clip)
    return loss / B, mean


def sample(params, h, x, n, uniforms, temperature=1.0, top_k=0):
    """Generate ``n`` character indices after input index ``x`` from hidden state ``h``.

    uniforms: n numbers in [0, 1) that pick each character by inverse CDF. Pass ``x = None`` to
    start from ``h`` alone (the first character then comes from softmax(V h + c)). top_k > 0:
    pick among the top_k most likely characters only (a stable sort keeps the lower index of
    two equal ones).
    """
    W, U, V, b, c = (params[k] for k in ("W", "U", "V", "b", "c"))
    K = V.shape[0]
    h = np.copy(h)
    out = []
    for t in range(n):
        if x is not None:
            xv = np.zeros(K)
            xv[x] = 1.0
            h = np.tanh(np.dot(W, h) + np.dot(U, xv) + b)
        o = (np.dot(V, h) + c) / temperature
        e = np.exp(o - np.max(o))
        p = e / np.sum(e)
        if 0 < top_k < K:
            p[np.argsort(-o, kind="stable")[top_k:]] = 0.0
        x = min(int(np.searchsorted(np.cumsum(p), uniforms[t] * np.sum(p), side="right")), K - 1)
        out.append(x)
    return out
