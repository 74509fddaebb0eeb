"""A stack of L layers of one cell and the output layer: the forward and backward pass over one
chunk of G streams walked in step, for every cell (``cells.py`` has the maths).

What all cells share lives here: the products, as ``linalg.matmul_add`` over all G streams
(and, where nothing is recurrent, over all n timesteps at once), and the walk through the
layers and timesteps. Per layer k and timestep t:

    a_t = b_ih + W_ih x_t       layer 0: row x_t of W_ih.T (the one-hot product, a gather);
                                above: the layer below's h_t, every t in one product
    hh_t = W_hh h_{t-1}         then the cell's step makes h_t (and c_t) from a_t, hh_t, b_hh

and backward, top layer first, t from n-1 down, the cell's step gives the gradients of the
two products' outputs (dg_ih_t, dg_hh_t) from dL/dh_t, then dL/dh_{t-1} += W_hh^T dg_hh_t; the
weight gradients are chunk-wide products, and W_ih^T dg_ih_t is dL/dh_t of the layer below.

A cell is its pair of steps (``STEPS``), of the signatures of ``lstm.lstm_forward_step`` and
``lstm_backward_step``. The functions here are compiled once per cell, as copies named
after it (``kernels_for``): each calls its own cell's steps, and a command compiles only the
cell it runs. Each stream's numbers go through the same operations whatever G and n are, so
one stream in a block equals that stream alone and sampling (n = 1) continues exactly the
state training computed.

The flat parameter buffer holds, per layer, W_ih (layer 0: W_ih.T, (K, gm)), W_hh (gm, m),
b_ih, b_hh, then the head V (K, m) and c (K,) (``cells.Layout``). ``dims`` is (L, m, K, gm).
"""
import numpy as np
from numba import njit

from .config import JIT, compiled_copies
from .dropout import dropout_masks_into, multiply_into
from .embedding import embedding_fold_into, embedding_grads_into
from .gru import gru_backward_step, gru_forward_step
from .linalg import chunks_into, copy_into, copy_rows_into, matmul_add, matmul_add_transposed, transpose_into
from .lstm import lstm_backward_step, lstm_forward_step
from .mathfn import output_gradients_into
from .rnn import output_layer_loss, rnn_backward_step, rnn_forward_step, zero_restarted_rows

# The bodies below call ``forward_step``, ``backward_step`` and each other by names that are not
# this module's: ``kernels_for`` binds them, per cell, to its steps and to its own copies.
STEPS = {
    "rnn": (rnn_forward_step, rnn_backward_step),
    "gru": (gru_forward_step, gru_backward_step),
    "lstm": (lstm_forward_step, lstm_backward_step),
}


@njit(inline="always")
def layer_offset(l, m, K, gm):
    """Index of layer l's first parameter in the flat buffer (l = L: the head's)."""
    if l == 0:
        return 0
    return K * gm + gm * m + 2 * gm + (l - 1) * (2 * gm * m + 2 * gm)


@njit(inline="always")
def layer_views(flat, l, m, K, gm):
    """(W_ih, W_hh (gm, m), b_ih (gm,), b_hh (gm,)) of layer l in a flat buffer; W_ih is
    W_ih.T (K, gm) for layer 0 (row x: the column character x reads) and (gm, m) above."""
    start = layer_offset(l, m, K, gm)
    rows, cols = (K, gm) if l == 0 else (gm, m)
    o1 = start + rows * cols
    o2 = o1 + gm * m
    o3 = o2 + gm
    return flat[start:o1].reshape((rows, cols)), flat[o1:o2].reshape((gm, m)), flat[o2:o3], flat[o3:o3 + gm]


@njit(inline="always")
def head_views(flat, L, m, K, gm):
    """(V (K, m), c (K,)) of the output layer in a flat buffer."""
    start = layer_offset(L, m, K, gm)
    return flat[start:start + K * m].reshape((K, m)), flat[start + K * m:start + K * m + K]


@njit(**JIT)
def stack_transposes_into(WT, W, VT, params, dims):
    """WT (L, 2, m, >= gm) written with each layer's W_hh.T and (above layer 0) W_ih.T, W (L, 2,
    gm, >= m) with W_hh and W_ih, VT (m, K) with V.T: the layouts the products read row by row,
    in rows of padded length (``workspace.padded_row``)."""
    L, m, K, gm = dims
    for l in range(L):
        W_ih, W_hh, b_ih, b_hh = layer_views(params, l, m, K, gm)
        transpose_into(WT[l, 0, :, :gm], W_hh)
        copy_rows_into(W[l, 0, :, :m], W_hh)
        if l > 0:
            transpose_into(WT[l, 1, :, :gm], W_ih)
            copy_rows_into(W[l, 1, :, :m], W_ih)
    V, c = head_views(params, L, m, K, gm)
    transpose_into(VT, V)


@njit(inline="always")
def load_states(hs, cs, states):
    """Row 0 of every layer of hs, cs (L, n+1, G, m) <- the streams' flat carried states
    (G, S): h of each layer, then (S = 2 L m, the LSTM) c of each layer; c = 0 otherwise."""
    L, G, m = hs.shape[0], hs.shape[2], hs.shape[3]
    carries_c = states.shape[1] == 2 * L * m
    for s in range(G):
        for l in range(L):
            for i in range(m):
                hs[l, 0, s, i] = states[s, l * m + i]
                cs[l, 0, s, i] = states[s, (L + l) * m + i] if carries_c else 0.0


@njit(inline="always")
def store_states(states, hs, cs, t):
    """The streams' flat carried states (G, S) <- row t of every layer of hs (and cs)."""
    L, G, m = hs.shape[0], hs.shape[2], hs.shape[3]
    carries_c = states.shape[1] == 2 * L * m
    for s in range(G):
        for l in range(L):
            for i in range(m):
                states[s, l * m + i] = hs[l, t, s, i]
                if carries_c:
                    states[s, (L + l) * m + i] = cs[l, t, s, i]


@njit(inline="always")
def restarts_at(xs, t, restart):
    """Whether some stream reads ``restart`` at t (xs (G, n)): documents' end marker, read
    from the zero state; never with restart = -1."""
    if restart >= 0:
        for s in range(xs.shape[0]):
            if xs[s, t] == restart:
                return True
    return False


@njit(inline="always")
def restarted_states(prev, h, c, xs, t, restart):
    """(h_prev, c_prev) of step t where some stream restarts there: prev (2, G, m) <- h, c
    (G, m) with the rows of the streams that restart at t set to 0."""
    G = xs.shape[0]
    for s in range(G):
        zero = xs[s, t] == restart
        for i in range(h.shape[1]):
            prev[0, s, i] = 0.0 if zero else h[s, i]
            prev[1, s, i] = 0.0 if zero else c[s, i]
    return prev[0], prev[1]


def _layers_forward(hs, cs, dropped, gates, aux, hh, prev, scratch, xs, WT, params, masks, restart, dims):
    """The layers' forward pass over one chunk of G streams.

    hs, cs (L, n+1, G, m): row 0 of each layer read (the carried h, c), rows 1..n written.
    masks (L, n, G, m): dropout's multipliers, read; (L, 0, G, m): no dropout.
    dropped (L, n+1, G, m): rows 1..n of each layer written with masks h_t, what the layer
    above and the output layer read; with no dropout, hs itself.
    gates (L, n, G, gm), aux (L, n, G, m): written with what the backward steps read.
    hh (G, gm), prev (2, G, m), scratch (3, >= G max(gm, K)): workspaces.   xs (G, n) int: the
    inputs.   WT (L, 2, m, >= gm): read (``stack_transposes_into``).   params (P,): read.
    restart: the input read from the zero state (h = c = 0) wherever it comes (documents' end
    marker: each document starts from the start state), or -1 (none).
    """
    L, m, K, gm = dims
    G, n = xs.shape
    for l in range(L):
        W_ih, W_hh, b_ih, b_hh = layer_views(params, l, m, K, gm)
        a = gates[l]
        if l == 0:
            # a_t = b_ih + W_ih[:, x_t], row x_t of W_ih.T
            for t in range(n):
                for s in range(G):
                    w = W_ih[xs[s, t]]
                    row = a[t, s]
                    for k in range(gm):
                        row[k] = b_ih[k] + w[k]
        else:
            # a_t = b_ih + W_ih h_t of the layer below, for every t at once
            rows = a.reshape((n * G, gm))
            for r in range(n * G):
                copy_into(rows[r], b_ih)
            matmul_add(rows, dropped[l - 1].reshape(((n + 1) * G, m))[G:], WT[l, 1, :, :gm])
        h = hs[l]
        c = cs[l]
        for t in range(n):
            # hh = W_hh h_{t-1}, then the cell's step
            h_prev, c_prev = h[t], c[t]
            if restarts_at(xs, t, restart):
                h_prev, c_prev = restarted_states(prev, h[t], c[t], xs, t, restart)
            hh[:] = 0.0
            matmul_add(hh, h_prev, WT[l, 0, :, :gm])
            forward_step(h[t + 1], c[t + 1], a[t], aux[l, t], hh, b_hh, h_prev, c_prev, scratch)
        if masks.shape[1] > 0:
            multiply_into(dropped[l, 1:], masks[l], h[1:])


def _chunk_forward(hs, cs, dropped, gates, aux, ps, hh, prev, scratch, xs, ys, WT, VT, params, masks, restart, dims):
    """``layers_forward``, then p_t = softmax(V h_t + c) of the top layer's h_t (times its
    masks); returns the summed cross-entropy of all G chunks (float64, stream by stream).
    ps (n, G, K): written.   VT (m, K): V.T, read.   ys (G, n) int: the targets."""
    L, m, K, gm = dims
    G, n = xs.shape
    layers_forward(hs, cs, dropped, gates, aux, hh, prev, scratch, xs, WT, params, masks, restart, dims)
    V, c = head_views(params, L, m, K, gm)
    return output_layer_loss(ps, scratch, dropped[L - 1].reshape(((n + 1) * G, m))[G:], ys, VT, c)


def _chunk_backward(grads, dh0, dh1, dg_ih, dg_hh, dh_next, dc_next, prev, ps, hs, cs, dropped, gates, aux, xs, ys,
                    W, params, masks, restart, dims):
    """Backward pass over the G chunks ``chunk_forward`` just ran; the gradients are the sums
    over all G chunks. No gradient crosses a restart (``layers_forward``): each layer's hs rows
    of the streams that restart at t are left 0.

    grads (P,): written with the raw gradients (layer 0's W_ih as W_ih.T, as stored).
    dh0, dh1 (n G m): workspaces, dL/dh_t of a layer from above and of the layer below it, in
    turns.   dg_ih, dg_hh (n G gm), dh_next, dc_next (G, m), prev (2, G, m): workspaces.
    ps (n, G, K): read p_t, overwritten with g_t = p_t - onehot(y_t).
    hs, cs, dropped, gates, aux, xs, ys, params, masks: read.   W (L, 2, gm, >= m): each layer's W_hh and W_ih,
    read (``stack_transposes_into``).
    """
    L, m, K, gm = dims
    G, n = xs.shape
    grads[:] = 0.0
    V, c = head_views(params, L, m, K, gm)
    dV, dc = head_views(grads, L, m, K, gm)
    output_gradients_into(dc, ps, ys)  # g_t = p_t - onehot(y_t);  dc = sum_t g_t
    rows = ps.reshape((n * G, K))
    # dV = sum_t g_t (masks h_t)^T;  dL/dh_t of the top layer = masks V^T g_t
    matmul_add_transposed(dV, rows, dropped[L - 1].reshape(((n + 1) * G, m))[G:])
    above = dh0.reshape((n * G, m))
    above[:] = 0.0
    matmul_add(above, rows, V)
    if masks.shape[1] > 0:
        multiply_into(above.reshape((n, G, m)), above.reshape((n, G, m)), masks[L - 1])
    dgi = dg_ih.reshape((n, G, gm))
    dgh = dg_hh.reshape((n, G, gm))
    cur = 0
    for l in range(L - 1, -1, -1):
        W_hh = W[l, 0, :, :m]
        W_ih = W[l, 1, :, :m]  # above layer 0
        dW_ih, dW_hh, db_ih, db_hh = layer_views(grads, l, m, K, gm)
        dabove = (dh0 if cur == 0 else dh1).reshape((n, G, m))
        dh_next[:] = 0.0
        dc_next[:] = 0.0
        for t in range(n - 1, -1, -1):
            h_prev, c_prev = hs[l, t], cs[l, t]
            restarts = restarts_at(xs, t, restart)
            if restarts:
                h_prev, c_prev = restarted_states(prev, hs[l, t], cs[l, t], xs, t, restart)
            backward_step(dgi[t], dgh[t], dh_next, dc_next, dabove[t], gates[l, t], aux[l, t], h_prev, c_prev,
                          hs[l, t + 1])
            if t > 0:  # dL/dh_{t-1} += W_hh^T dg_hh_t; backprop stops at the chunk's start
                matmul_add(dh_next, dgh[t], W_hh)
                if restarts:  # and at a restart
                    for s in range(G):
                        if xs[s, t] == restart:
                            dh_next[s, :] = 0.0
                            dc_next[s, :] = 0.0
        if restart >= 0:  # the products below sum h_{t-1} as the steps read it
            zero_restarted_rows(hs[l], xs, restart)
        gi_rows = dg_ih.reshape((n * G, gm))
        gh_rows = dg_hh.reshape((n * G, gm))
        # dW_hh = sum_t dg_hh_t h_{t-1}^T;  db_hh = sum_t dg_hh_t;  db_ih = sum_t dg_ih_t
        matmul_add_transposed(dW_hh, gh_rows, hs[l].reshape(((n + 1) * G, m))[:n * G])
        for r in range(n * G):
            for k in range(gm):
                db_hh[k] += gh_rows[r, k]
                db_ih[k] += gi_rows[r, k]
        if l == 0:
            # dW_ih[:, x_t] += dg_ih_t, row x_t of dW_ih.T
            for t in range(n):
                for s in range(G):
                    dw = dW_ih[xs[s, t]]
                    for k in range(gm):
                        dw[k] += dgi[t, s, k]
        else:
            # dW_ih = sum_t dg_ih_t (masks h_t)^T of the layer below;  its dL/dh_t = masks W_ih^T dg_ih_t
            below_h = dropped[l - 1].reshape(((n + 1) * G, m))[G:]
            matmul_add_transposed(dW_ih, gi_rows, below_h)
            below = (dh1 if cur == 0 else dh0).reshape((n * G, m))
            below[:] = 0.0
            matmul_add(below, gi_rows, W_ih)
            if masks.shape[1] > 0:
                multiply_into(below.reshape((n, G, m)), below.reshape((n, G, m)), masks[l - 1])
            cur = 1 - cur


def _block_views(work, j, G, n, dims):
    """Block j's buffers of a ``StackWorkspace``, shaped for G streams and chunks of n."""
    L, m, K, gm = dims
    return (work.hs[j, :L * (n + 1) * G * m].reshape((L, n + 1, G, m)),
            work.cs[j, :L * (n + 1) * G * m].reshape((L, n + 1, G, m)),
            work.gates[j, :L * n * G * gm].reshape((L, n, G, gm)),
            work.aux[j, :L * n * G * m].reshape((L, n, G, m)),
            work.ps[j, :n * G * K].reshape((n, G, K)),
            work.hh[j, :G * gm].reshape((G, gm)))


def _dropout_views(work, j, G, n, hs, dims):
    """(dropped (L, n+1, G, m), masks (L, n, G, m)) of block j of a ``StackWorkspace``; with no
    dropout, (hs, masks of no timesteps)."""
    L, m, K, gm = dims
    if work.dropout[0] > 0.0:
        return (work.dropped[j, :L * (n + 1) * G * m].reshape((L, n + 1, G, m)),
                work.masks[j, :L * n * G * m].reshape((L, n, G, m)))
    return hs, work.masks[j, :0].reshape((L, 0, G, m))


# The hooks of the training loop (``loop.py``), for a stack.

def _transposes_for(work, params, dims):
    stack_transposes_into(work.WT, work.W, work.VT, params, dims)


def _block_loss_and_grads(j, run, work, book, params, dims):
    """Block j of ``work`` (a ``StackWorkspace``) through the stack: its streams' chunks from
    ``book`` at run.positions, starting from their carried states in run.H (and from 0 at each
    work.restart), with the masks of the update's number (counted from 1) where there is
    dropout; writes work.block_grads[j] and work.block_losses[j]."""
    L, m, K, gm = dims
    first = work.block_starts[j]
    G = work.block_starts[j + 1] - first
    n = work.chars.shape[2] - 1
    xy = work.chars[j, :G]
    chunks_into(xy, book, run.positions[first:first + G])
    hs, cs, gates, aux, ps, hh = block_views(work, j, G, n, dims)
    dropped, masks = dropout_views(work, j, G, n, hs, dims)
    if masks.shape[1] > 0:
        dropout_masks_into(masks, work.dropout[0], work.seed[0], run.update[0] + 1, first)
    load_states(hs, cs, run.H[first:first + G])
    xs, ys = xy[:, :n], xy[:, 1:]
    prev = work.prev[j, :2 * G * m].reshape((2, G, m))
    restart = work.restart[0]
    work.block_losses[j] = chunk_forward(hs, cs, dropped, gates, aux, ps, hh, prev, work.scratch[j], xs, ys,
                                         work.WT, work.VT, params, masks, restart, dims)
    chunk_backward(work.block_grads[j], work.dh[j, 0, :n * G * m], work.dh[j, 1, :n * G * m],
                   work.dg_ih[j, :n * G * gm], work.dg_hh[j, :n * G * gm],
                   work.dh_next[j, :G * m].reshape((G, m)), work.dc_next[j, :G * m].reshape((G, m)), prev, ps, hs,
                   cs, dropped, gates, aux, xs, ys, work.W, params, masks, restart, dims)


def _keep_end_states(run, work, j, first, G, n, dims):
    """run.H of block j's streams <- the states their chunks ended in."""
    hs, cs, gates, aux, ps, hh = block_views(work, j, G, n, dims)
    store_states(run.H[first:first + G], hs, cs, n)


def _held_rows(work, dims):
    """(first index, length) of the rows of W_ih.T (of the embedding E with one), which the
    optimizer skips for characters no chunk held."""
    L, m, K, gm = dims
    D = work.embedding[0]
    return 0, (D if D > 0 else gm)


def _model_params(work, params, dims):
    """The parameters the blocks read: params (P,), or with an input embedding its one-hot
    fold, written into work.folded."""
    L, m, K, gm = dims
    D = work.embedding[0]
    if D == 0:
        return params
    embedding_fold_into(work.folded, params, K, D, gm)
    return work.folded


def _param_grads(work, grads, params, dims):
    """The gradient of params (P,) from ``grads``, that of the parameters the blocks read
    (``model_params``): grads itself, or with an input embedding the chain rule's, written
    into work.param_grads."""
    L, m, K, gm = dims
    D = work.embedding[0]
    if D == 0:
        return grads
    embedding_grads_into(work.param_grads, grads, params, K, D, gm)
    return work.param_grads


def _text_loss(work, text, state0, params, dims):
    """Summed cross-entropy of predicting text[1:] from text[:-1], from the carried state
    state0 (S,), in chunks of the workspace's chunk length n, restarting from 0 at each
    work.restart; returns float64 nats.
    work: a ``StackWorkspace`` of one stream.   text (N,) int, params (P,): read."""
    L, m, K, gm = dims
    n = work.chars.shape[2] - 1
    stack_transposes_into(work.WT, work.W, work.VT, params, dims)
    states = np.empty((1, state0.shape[0]), dtype=state0.dtype)
    copy_into(states[0], state0)
    total = 0.0
    pos = 0
    while pos < text.shape[0] - 1:
        chunk = min(n, text.shape[0] - 1 - pos)
        hs, cs, gates, aux, ps, hh = block_views(work, 0, 1, chunk, dims)
        masks = np.empty((L, 0, 1, m), hs.dtype)  # no dropout
        load_states(hs, cs, states)
        xs = text[pos:pos + chunk].reshape((1, chunk))
        ys = text[pos + 1:pos + chunk + 1].reshape((1, chunk))
        prev = work.prev[0, :2 * m].reshape((2, 1, m))
        total += chunk_forward(hs, cs, hs, gates, aux, ps, hh, prev, work.scratch[0], xs, ys, work.WT, work.VT,
                               params, masks, work.restart[0], dims)
        store_states(states, hs, cs, chunk)
        pos += chunk
    return total


_BUILT = {}


def kernels_for(cell: str) -> dict:
    """This module's functions compiled for ``cell`` (lazily: nothing compiles before a call),
    by their names without the leading underscore: layers_forward, chunk_forward,
    chunk_backward, block_views, dropout_views, transposes_for, block_loss_and_grads, keep_end_states,
    held_rows, model_params, param_grads, text_loss."""
    if cell not in _BUILT:
        forward, backward = STEPS[cell]
        _BUILT[cell] = compiled_copies(
            (_block_views, _dropout_views, _layers_forward, _chunk_forward, _chunk_backward, _transposes_for,
             _block_loss_and_grads, _keep_end_states, _held_rows, _model_params, _param_grads, _text_loss),
            cell, globals(), {"forward_step": forward, "backward_step": backward},
            inline=("_dropout_views", "_transposes_for", "_keep_end_states", "_held_rows", "_model_params",
                    "_param_grads"))
    return _BUILT[cell]
