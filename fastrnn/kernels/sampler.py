"""Sampling text and scoring it: the forward pass alone, character by character.

Both carry the state exactly as training computes it (``rnn.rnn_forward``; a stack's
``stack.layers_forward``), so that text generated or scored after a run's last chunk
continues from the very state training left. A stack's sampler and scorer are compiled per
cell (``stack_kernels``), as its training loop is.
"""
import numpy as np
from numba import njit

from .config import JIT, compiled_copies
from .linalg import copy_into, matmul_add, transpose_into
from .mathfn import exp_into, max_of, tanh_inplace
from .rnn import param_views, rnn_forward, transposes_into
from .stack import head_views, kernels_for, load_states, stack_transposes_into, store_states


@njit(**JIT)
def _keep_top_k(p, logits, ranked, k):
    """p[i] = 0 except for the k largest logits (0 < k < K); of equal logits at the boundary,
    the lowest indices stay.   p, logits (K,) float64: p written.   ranked (>= k,): workspace,
    left holding the k largest logits in descending order."""
    K = logits.shape[0]
    count = 0
    for i in range(K):  # insertion into the k largest so far
        v = logits[i]
        if count < k or v > ranked[k - 1]:
            at = min(count, k - 1)
            while at > 0 and ranked[at - 1] < v:
                ranked[at] = ranked[at - 1]
                at -= 1
            ranked[at] = v
            count = min(count + 1, k)
    threshold = ranked[k - 1]
    ties = k
    for i in range(K):
        if logits[i] > threshold:
            ties -= 1
    for i in range(K):
        if logits[i] < threshold:
            p[i] = 0.0
        elif logits[i] == threshold:
            if ties > 0:
                ties -= 1
            else:
                p[i] = 0.0


@njit(inline="always")
def pick_char(o, u, inv_temperature, top_k, shifted, p, work, ranked):
    """The character drawn by the uniform number u from logits o (K,): p = softmax(o / T) (only
    the top_k largest, with top_k in 0 < top_k < K), then the first k whose cumulative mass
    exceeds u times the total.   shifted, p, work, ranked (K,) float64: workspaces."""
    K = o.shape[0]
    top = max_of(o)
    for k in range(K):
        shifted[k] = np.float64(o[k] - top) * inv_temperature
    exp_into(p, shifted, work)
    if 0 < top_k < K:
        _keep_top_k(p, shifted, ranked, top_k)
    # the total summed in the order of the running sum below, which therefore reaches it
    # exactly and so always passes u * total < total
    total = 0.0
    for k in range(K):
        total += p[k]
    target = u * total
    acc = 0.0
    for k in range(K):
        acc += p[k]
        if acc > target:
            return k
    return K - 1


@njit(**JIT)
def sample_chars(out, H, WVT, prime, uniforms, W, UT, V, b, c, inv_temperature, top_k):
    """Generate N texts of out.shape[1] characters at once, one per row.

    out (N, n) int64: written with the sampled indices.   H (N, m): start states, advanced in
    place through the prime and the first n - 1 sampled characters (the last is not fed).
    WVT (m, m+K): workspace, written with [W.T | V.T] so that one pass over it gives both W h
    and V h for all N texts (half the loop overhead of two passes).   prime (N, L) int: the
    inputs fed to each text before sampling (may be empty; without it the first character comes from
    softmax(V h + c)).   uniforms (N, n): numbers in [0, 1) that pick each character by inverse
    CDF.   W, UT (K, m: U transposed), V, b, c: read.   inv_temperature: 1 / T.
    top_k: pick only among the top_k most likely characters (ties at the boundary broken by
    index); 0 or K and more: among all.
    Each text goes through exactly the operations it would alone (N = 1), and h_t is computed
    as in ``rnn_forward``, bit for bit.
    """
    N, n = out.shape
    m = W.shape[0]
    K = V.shape[0]
    transpose_into(WVT[:, :m], W)
    transpose_into(WVT[:, m:], V)
    wv = np.empty((N, m + K), dtype=H.dtype)  # per text: W h, then c + V h
    x = np.empty(N, dtype=np.int64)
    shifted = np.empty(K)  # the pick runs in float64 whatever the model's dtype
    p = np.empty(K)
    work = np.empty(K)
    ranked = np.empty(K)  # the largest logits, for top_k
    scratch = np.empty((3, N * max(m, K)), dtype=H.dtype)  # tanh in the model's precision, as in training
    L = prime.shape[1]
    for t in range(L + n):
        # W h and o = c + V h for every text in one pass
        for s in range(N):
            wv[s, :m] = 0.0
            for k in range(K):
                wv[s, m + k] = c[k]
        matmul_add(wv, H, WVT)
        if t < L:
            for s in range(N):
                x[s] = prime[s, t]
        else:
            for s in range(N):
                pick = pick_char(wv[s, m:], uniforms[s, t - L], inv_temperature, top_k, shifted, p, work, ranked)
                out[s, t - L] = pick
                x[s] = pick
            if t == L + n - 1:
                break
        # h = tanh(W h + (b + U[:, x]))
        for s in range(N):
            ux = UT[x[s]]
            h = H[s]
            for i in range(m):
                h[i] = wv[s, i] + (b[i] + ux[i])
        tanh_inplace(H.reshape(N * m), scratch)


@njit(**JIT)
def text_loss(work, text, h0, params, m, K):
    """Summed cross-entropy of predicting text[1:] from text[:-1], starting from h0 and
    carrying h through chunks of the workspace's chunk length n (and restarting it from 0 at
    each work.restart, documents' end marker); returns float64 nats.

    work: a ``Workspace`` of one stream (block 0's buffers are used).   text (N,) int: read.
    h0 (m,): the state text[0] is fed to, read.   params (P,): read.
    """
    W, UT, V, b, c = param_views(params, m, K)
    transposes_into(work.WT, work.VT, params, m, K)
    n = work.chars.shape[2] - 1
    hs = work.hs[0, :(n + 1) * m].reshape((n + 1, 1, m))
    ps = work.ps[0, :n * K].reshape((n, 1, K))
    wh = work.wh[0, :m].reshape((1, m))
    copy_into(hs[0, 0], h0)
    no_masks = np.empty((0, 1, m), hs.dtype)  # no dropout
    total = 0.0
    pos = 0
    while pos < text.shape[0] - 1:
        L = min(n, text.shape[0] - 1 - pos)
        xs = text[pos:pos + L]
        ys = text[pos + 1:pos + L + 1]
        total += rnn_forward(hs[:L + 1], ps[:L], work.scratch[0], wh, xs[np.newaxis, :], ys[np.newaxis, :],
                             work.WT, work.VT, UT, b, c, hs[:L + 1], no_masks, work.restart[0])
        copy_into(hs[0, 0], hs[L, 0])
        pos += L
    return total


def _sample_stack(out, H, WT, W, VT, prime, uniforms, params, dims, inv_temperature, top_k):
    """``sample_chars`` for a stack: N texts of out.shape[1] characters, one per row.

    out (N, n) int64: written.   H (N, S): the texts' flat carried states, advanced in place
    through the prime and the first n - 1 sampled characters.   WT, W, VT: workspaces
    (``workspace.stack_weight_copies``).   prime (N, L) int, uniforms (N, n),
    inv_temperature, top_k: as ``sample_chars``.   params (P,): read.   dims: (L, m, K, gm).
    Each step is ``stack.layers_forward`` over a chunk of one character of N streams: h_t as
    training computes it, bit for bit.
    """
    Ly, m, K, gm = dims
    N, n = out.shape
    dtype = H.dtype
    stack_transposes_into(WT, W, VT, params, dims)
    V, c = head_views(params, Ly, m, K, gm)
    hs = np.empty((Ly, 2, N, m), dtype=dtype)
    cs = np.empty((Ly, 2, N, m), dtype=dtype)
    gates = np.empty((Ly, 1, N, gm), dtype=dtype)
    aux = np.empty((Ly, 1, N, m), dtype=dtype)
    hh = np.empty((N, gm), dtype=dtype)
    prev = np.empty((2, N, m), dtype=dtype)
    no_masks = np.empty((Ly, 0, N, m), dtype=dtype)  # no dropout
    scratch = np.empty((3, N * max(gm, K)), dtype=dtype)
    o = np.empty((N, K), dtype=dtype)
    x = np.empty((N, 1), dtype=np.int64)
    shifted = np.empty(K)  # the pick runs in float64 whatever the model's dtype
    p = np.empty(K)
    work = np.empty(K)
    ranked = np.empty(K)
    load_states(hs, cs, H)
    L = prime.shape[1]
    for t in range(L + n):
        if t < L:
            for s in range(N):
                x[s, 0] = prime[s, t]
        else:
            # o = c + V h of the top layer, for every text
            for s in range(N):
                copy_into(o[s], c)
            matmul_add(o, hs[Ly - 1, 0], VT)
            for s in range(N):
                pick = pick_char(o[s], uniforms[s, t - L], inv_temperature, top_k, shifted, p, work, ranked)
                out[s, t - L] = pick
                x[s, 0] = pick
            if t == L + n - 1:
                break
        layers_forward(hs, cs, hs, gates, aux, hh, prev, scratch, x, WT, params, no_masks, -1, dims)
        for l in range(Ly):
            for s in range(N):
                copy_into(hs[l, 0, s], hs[l, 1, s])
                copy_into(cs[l, 0, s], cs[l, 1, s])
    store_states(H, hs, cs, 0)


_STACK_BUILT = {}


def stack_kernels(cell: str) -> dict:
    """{"sample_stack": ..., "text_loss": ...}: a stack's sampler and scorer compiled for
    ``cell`` (lazily)."""
    if cell not in _STACK_BUILT:
        kernels = kernels_for(cell)
        # its body calls its cell's layers_forward, bound here (not a name of this module)
        built = compiled_copies((_sample_stack,), cell, globals(), {"layers_forward": kernels["layers_forward"]})
        built["text_loss"] = kernels["text_loss"]
        _STACK_BUILT[cell] = built
    return _STACK_BUILT[cell]
