"""The RNN cell: parameter views, and the forward and backward pass over one chunk of G
streams walked in step (G = 1 is the classic single stream).

Notation (one chunk of n characters, hidden size m, vocabulary K):
    a_t = W h_{t-1} + U x_t + b,   h_t = tanh(a_t),   o_t = V h_t + c,   p_t = softmax(o_t)
    loss = -sum_t log p_t[y_t]

Every product runs as ``linalg.matmul_add`` over all G streams at once, so each vector of
W.T and V.T loaded serves several streams, and each stream's numbers go through exactly the
operations a lone stream's would: one stream in a block of G equals that stream alone, bit
for bit.
"""
import math

from numba import njit

from .config import JIT
from .dropout import multiply_into
from .linalg import copy_into, matmul_add, matmul_add_transposed, transpose_into
from .mathfn import output_gradients_into, softmax_rows, tanh_inplace


@njit(inline="always")
def param_views(flat, m, K):
    """Views W (m, m), UT (K, m), V (K, m), b (m,), c (K,) into a flat (P,) buffer. U is stored
    transposed (``cells.Layout``): row x of UT is the column U[:, x] that character x reads
    and updates, contiguous."""
    o1 = m * m
    o2 = o1 + K * m
    o3 = o2 + K * m
    o4 = o3 + m
    return (flat[:o1].reshape((m, m)), flat[o1:o2].reshape((K, m)),
            flat[o2:o3].reshape((K, m)), flat[o3:o4], flat[o4:o4 + K])


@njit(inline="always")
def transposes_into(WT, VT, params, m, K):
    """WT (m, m), VT (m, K) written with W.T and V.T of flat params (P,): the layouts the
    forward products read row by row. Once per parameter change, however many chunks use them."""
    W, UT, V, b, c = param_views(params, m, K)
    transpose_into(WT, W)
    transpose_into(VT, V)


@njit(**JIT)
def rnn_forward(hs, ps, scratch, wh, xs, ys, WT, VT, UT, b, c, dropped, masks, restart):
    """Forward pass of G streams over one chunk each, walked in step; returns the summed
    cross-entropy of all G chunks (float64, stream by stream, each summed over t).
    restart: the input character read from h = 0 wherever it comes (documents' end marker:
    each document starts from the start state), or -1 (none).

    hs (n+1, G, m): row 0 read (each stream's h_prev), rows 1..n written with h_1..h_n.
    ps (n, G, K): written with p_t.
    masks (n, G, m): dropout's multipliers, read; (0, G, m): no dropout.   dropped (n+1, G, m):
    rows 1..n written with masks h_t, what the output layer reads; with no dropout, hs itself.
    scratch (3, >= G * max(m, K)), wh (G, m): workspaces of the model's dtype.
    xs, ys (G, n) int: each stream's input and target indices.
    WT (m, m), VT (m, K): read, W.T and V.T (``transposes_into``).   UT (K, m), b, c: read.
    """
    G, n = xs.shape
    m = WT.shape[0]
    # b + U[:, x_t] for every stream and t: row x_t of UT, contiguous
    for t in range(n):
        for s in range(G):
            u = UT[xs[s, t]]
            h = hs[t + 1, s]
            for i in range(m):
                h[i] = b[i] + u[i]
    for t in range(n):
        # h_t = tanh(sum_j W[:, j] h_{t-1}[j] + (b + U[:, x_t])) for every stream, summed in the
        # order ``sample_chars`` uses, so that sampling carries on exactly the h training computes
        wh[:] = 0.0
        matmul_add(wh, hs[t], WT)
        if restart >= 0:  # W 0 = 0 exactly: the product of a zero state
            for s in range(G):
                if xs[s, t] == restart:
                    wh[s, :] = 0.0
        h = hs[t + 1]
        for s in range(G):
            for i in range(m):
                h[s, i] = wh[s, i] + h[s, i]
        tanh_inplace(h.reshape(G * m), scratch)
    if masks.shape[0] > 0:
        multiply_into(dropped[1:], masks, hs[1:])
    # o_t = c + V h_t for every stream and t at once, then p_t = softmax(o_t)
    return output_layer_loss(ps, scratch, dropped.reshape(((n + 1) * G, m))[G:], ys, VT, c)


@njit(inline="always")
def output_layer_loss(ps, scratch, h_rows, ys, VT, c):
    """p_t = softmax(c + V h_t) for every stream and t at once, into ps (n, G, K); returns the
    summed cross-entropy of the targets ys (G, n) (float64, stream by stream, each summed over
    t).   h_rows (n G, m): the h_t that the output layer reads, in the order of ps's rows.
    VT (m, K), c (K,): read.   scratch (3, >= K): workspace. Every cell's output layer."""
    n, G, K = ps.shape
    rows = ps.reshape((n * G, K))
    for r in range(n * G):
        copy_into(rows[r], c)
    matmul_add(rows, h_rows, VT)
    softmax_rows(rows, scratch)
    loss = 0.0
    for s in range(G):
        for t in range(n):
            loss -= math.log(ps[t, s, ys[s, t]])
    return loss


@njit(**JIT)
def rnn_backward(dW, dUT, dV, db, dc, dh_out, dh_next, ps, hs, dropped, masks, xs, ys, W, V, restart):
    """Backward pass over the G chunks that ``rnn_forward`` just ran; the gradients are
    the sums over all G chunks. No gradient crosses a restart (``rnn_forward``): the rows of
    hs[t] whose streams restart at t are left 0.

    dW (m, m), dUT (K, m), dV (K, m), db (m,), dc (K,): written with the raw gradients (dUT
    is dU transposed, as ``param_views`` lays U out).
    dh_out (n, G, m): workspace, written with V.T g_t and then with da_t.   dh_next (G, m): workspace.
    ps (n, G, K): read p_t, overwritten with g_t = p_t - onehot(y_t).
    hs (n+1, G, m), dropped, masks (``rnn_forward``), xs, ys (G, n), W, V: read.
    """
    G, n = xs.shape
    m = W.shape[0]
    K = V.shape[0]
    dW[:] = 0.0
    dUT[:] = 0.0
    dV[:] = 0.0
    db[:] = 0.0
    dc[:] = 0.0
    output_gradients_into(dc, ps, ys)  # g_t = p_t - onehot(y_t);  dc = sum_t g_t
    rows = ps.reshape((n * G, K))
    h_rows = hs.reshape(((n + 1) * G, m))
    da_rows = dh_out.reshape((n * G, m))
    # dV = sum_t g_t (masks h_t)^T
    matmul_add_transposed(dV, rows, dropped.reshape(((n + 1) * G, m))[G:])
    # dh_out[t] = masks V^T g_t
    da_rows[:] = 0.0
    matmul_add(da_rows, rows, V)
    if masks.shape[0] > 0:
        multiply_into(dh_out, dh_out, masks)
    dh_next[:] = 0.0
    for t in range(n - 1, -1, -1):
        da = dh_out[t]
        h = hs[t + 1]
        # da_t = (V^T g_t + dh_next) * (1 - h_t^2);  dh_next = W^T da_t = sum_i da_t[i] W[i, :]
        for s in range(G):
            for i in range(m):
                da[s, i] = (da[s, i] + dh_next[s, i]) * (1.0 - h[s, i] * h[s, i])
        if t > 0:  # backprop stops at the chunk's start: W^T da_0 is never used
            dh_next[:] = 0.0
            matmul_add(dh_next, da, W)
            if restart >= 0:
                for s in range(G):
                    if xs[s, t] == restart:
                        dh_next[s, :] = 0.0
    if restart >= 0:
        zero_restarted_rows(hs, xs, restart)
    # dW = sum_t da_t h_{t-1}^T;  db = sum_t da_t;  dU[:, x_t] += da_t (row x_t of dUT)
    matmul_add_transposed(dW, da_rows, h_rows[:n * G])
    for t in range(n):
        for s in range(G):
            da = dh_out[t, s]
            du = dUT[xs[s, t]]
            for i in range(m):
                db[i] += da[i]
                du[i] += da[i]


@njit(inline="always")
def zero_restarted_rows(hs, xs, restart):
    """hs (n+1, G, m): row t of stream s <- 0 where it restarts at t (xs[s, t] == restart), so
    that the products summing h_{t-1} over the chunk see the zero state the step read."""
    G, n = xs.shape
    for t in range(n):
        for s in range(G):
            if xs[s, t] == restart:
                hs[t, s, :] = 0.0


@njit(inline="always")
def chunk_loss_and_grads(grads, hs, dropped, ps, dh_out, dh_next, wh, scratch, xs, ys, WT, VT, params, masks, m, K,
                         restart):
    """Summed loss and raw gradients of G chunks walked in step (``rnn_forward``, then
    ``rnn_backward``).

    grads (P,): written.   hs (n+1, G, m): row 0 read as the streams' h_prev, the rest written.
    dropped, masks: dropout's (``rnn_forward``).
    ps (n, G, K), dh_out (n, G, m), dh_next (G, m), wh (G, m), scratch (3, >= G * max(m, K)):
    workspaces.   xs, ys (G, n) int: read.   WT (m, m), VT (m, K): read, the
    ``transposes_into`` of params (P,), which is read.   restart: ``rnn_forward``'s.
    """
    W, UT, V, b, c = param_views(params, m, K)
    dW, dUT, dV, db, dc = param_views(grads, m, K)
    loss = rnn_forward(hs, ps, scratch, wh, xs, ys, WT, VT, UT, b, c, dropped, masks, restart)
    rnn_backward(dW, dUT, dV, db, dc, dh_out, dh_next, ps, hs, dropped, masks, xs, ys, W, V, restart)
    return loss


# The rnn cell in a stack (``stack.py``; PyTorch's ``torch.nn.RNN``): the step of one layer,
# with the signatures of every cell's step (``lstm.py``).

@njit(**JIT)
def rnn_forward_step(h, c, a, aux, hh, b_hh, h_prev, c_prev, scratch):
    """h (G, m): written with h_t = tanh(a + W_hh h_{t-1} + b_hh).   a (G, m): read as
    W_ih x_t + b_ih, written with h_t.   hh (G, m): W_hh h_{t-1}, read.   b_hh (m,): read.
    c, aux, h_prev, c_prev: unused.   scratch (3, >= G m): workspace."""
    G, m = h.shape
    for s in range(G):
        for i in range(m):
            a[s, i] += hh[s, i] + b_hh[i]
    tanh_inplace(a.reshape(G * m), scratch)
    for s in range(G):
        for i in range(m):
            h[s, i] = a[s, i]


@njit(**JIT)
def rnn_backward_step(dg_ih, dg_hh, dh_next, dc_next, dh_above, a, aux, h_prev, c_prev, h):
    """dg_ih, dg_hh (G, m): written with da = (dh_above + dh_next) (1 - h_t^2).   dh_next (G, m):
    read, then written with 0 (the caller adds W_hh^T da).   a (G, m): h_t, read.   The rest:
    unused."""
    G, m = dh_next.shape
    for s in range(G):
        for i in range(m):
            da = (dh_above[s, i] + dh_next[s, i]) * (1.0 - a[s, i] * a[s, i])
            dg_ih[s, i] = da
            dg_hh[s, i] = da
            dh_next[s, i] = 0.0
