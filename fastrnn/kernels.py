"""Numba kernels: the per-timestep loops of the char-RNN, the optimizer and the sampler.

Only numpy and numba are imported here; no I/O. Kernels never raise: the Python callers check
shapes, dtypes and finiteness. Arguments are ordered outputs, inputs, weights, then sizes.

Notation (one chunk of n characters, hidden size m, vocabulary K):
    a_t = W h_{t-1} + U x_t + b,   h_t = tanh(a_t),   o_t = V h_t + c,   p_t = softmax(o_t)
    loss = -sum_t log p_t[y_t]

Matrix-vector products are written as sums of scaled rows ("axpy" form) so that LLVM can
vectorise them without reordering any floating-point sum.
"""
import math

import numpy as np
from numba import njit, prange

# Fused multiply-add only: no flag that assumes away NaN or infinity, and no reordering of sums.
FASTMATH = {"contract"}
JIT = dict(cache=True, error_model="numpy", fastmath=FASTMATH)

# Slots of the integer and float run-state arrays shared by train_chunks and its caller.
POSITION, EPOCH, CURRENT, UPDATE, BEST, BEST_UPDATE, BEST_POSITION, BEST_EPOCH = range(8)
SMOOTH, BEST_SMOOTH = range(2)
SMOOTHING = 0.999


@njit(**JIT)
def param_views(flat, m, K):
    """Views W (m, m), U (m, K), V (K, m), b (m,), c (K,) into a flat (P,) buffer."""
    o1 = m * m
    o2 = o1 + m * K
    o3 = o2 + K * m
    o4 = o3 + m
    return (flat[:o1].reshape((m, m)), flat[o1:o2].reshape((m, K)),
            flat[o2:o3].reshape((K, m)), flat[o3:o4], flat[o4:o4 + K])


@njit(**JIT)
def transpose_into(out, a):
    """out (c, r) written with a.T for a (r, c)."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[j, i] = a[i, j]


@njit(**JIT)
def transposes_into(WT, VT, params, m, K):
    """WT (m, m), VT (m, K) written with W.T and V.T of flat params (P,): the layouts the
    forward products read row by row. Once per parameter change, however many chunks use them."""
    W, U, V, b, c = param_views(params, m, K)
    transpose_into(WT, W)
    transpose_into(VT, V)


@njit(**JIT)
def add_rows_batch(out, coef, A):
    """out (T, L) += coef (T, J) @ A (J, L), as sums of scaled rows of A.

    Eight rows of A per pass over an output row, summed as a tree: each load and store of the
    output then carries eight multiply-adds in short dependency chains (about 1.3x a four-row
    pass at L = 100). The loop over the T outputs sits inside each block of eight rows, so the
    block is read from cache once for all outputs: 1.6-2x faster than one output at a time when
    A does not fit in L1 (V and V.T at m = 100, K = 80).
    """
    T = out.shape[0]
    L = out.shape[1]
    J = A.shape[0]
    j = 0
    while j + 8 <= J:
        a0, a1, a2, a3 = A[j], A[j + 1], A[j + 2], A[j + 3]
        a4, a5, a6, a7 = A[j + 4], A[j + 5], A[j + 6], A[j + 7]
        for t in range(T):
            c = coef[t]
            o = out[t]
            c0, c1, c2, c3 = c[j], c[j + 1], c[j + 2], c[j + 3]
            c4, c5, c6, c7 = c[j + 4], c[j + 5], c[j + 6], c[j + 7]
            for i in range(L):
                o[i] += (((a0[i] * c0 + a1[i] * c1) + (a2[i] * c2 + a3[i] * c3))
                         + ((a4[i] * c4 + a5[i] * c5) + (a6[i] * c6 + a7[i] * c7)))
        j += 8
    while j < J:
        aj = A[j]
        for t in range(T):
            cj = coef[t, j]
            o = out[t]
            for i in range(L):
                o[i] += aj[i] * cj
        j += 1


@njit(**JIT)
def add_rows(out, A, coef):
    """out (L,) += sum_j coef[j] * A[j, :] for A (J, L), coef (J,): ``add_rows_batch`` for one
    output (out and coef contiguous), with the same order of operations."""
    add_rows_batch(out.reshape((1, out.shape[0])), coef.reshape((1, coef.shape[0])), A)


# exp and tanh as plain arithmetic that LLVM vectorises: the pip build of llvmlite has no vector
# math library, so math.exp / math.tanh are scalar calls of ~5 and ~10 ns, a sixth of a step.
# Both are accurate to a few ulp (tests compare them with math.exp / math.tanh).
LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * LN2_HI is exact (fdlibm)
LN2_LO = 1.90821492927058770002e-10
ROUND_MAGIC = 6755399441055744.0  # 1.5 * 2**52: x + ROUND_MAGIC rounds x to an integer kept in the low bits
ROUND_MAGIC_BITS = int(np.array(ROUND_MAGIC).view(np.int64))
EXP_COEFFS = tuple(1.0 / math.factorial(k) for k in range(13, -1, -1))  # Taylor, |r| <= ln2 / 2
TANH_SMALL = 0.25  # below: odd Taylor series of tanh; above: 1 - 2 / (exp(2|x|) + 1)


def _tanh_taylor(n_terms):
    """Odd Taylor coefficients of tanh from tanh' = 1 - tanh^2, highest power first."""
    from fractions import Fraction

    a = [Fraction(0), Fraction(1)]
    for n in range(1, 2 * n_terms):
        a.append(-sum(a[i] * a[n - i] for i in range(n + 1)) / (n + 1))
    return tuple(float(a[k]) for k in range(2 * n_terms - 1, 0, -2))


TANH_COEFFS = _tanh_taylor(12)  # error below 1e-18 relative for |x| < 0.25


@njit(**JIT)
def exp_into(out, x, work):
    """out (L,) float64 <- exp(x) for x (L,) of any float dtype (out may be x if float64).

    work (L,) float64: workspace. exp(x) = 2^k exp(r), x = k ln2 + r; exp(r) by a Taylor
    polynomial, 2^k added straight into the exponent bits. x is clamped to [-708, 709], where
    the result is a normal number (the softmax shifts its inputs to <= 0 first). A NaN input
    gives an unspecified value: callers check the parameters for finiteness instead.
    """
    for i in range(x.shape[0]):
        xi = min(max(np.float64(x[i]), -708.0), 709.0)
        kd = xi * LOG2E + ROUND_MAGIC
        kf = kd - ROUND_MAGIC
        r = (xi - kf * LN2_HI) - kf * LN2_LO
        p = 0.0
        for coeff in EXP_COEFFS:
            p = p * r + coeff
        out[i] = p
        work[i] = kd
    out_bits = out.view(np.int64)
    k_bits = work.view(np.int64)
    for i in range(x.shape[0]):
        out_bits[i] += (k_bits[i] - ROUND_MAGIC_BITS) << 52


@njit(**JIT)
def tanh_inplace(a, e, work):
    """a (L,) <- tanh(a), any float dtype. e, work (L,) float64: workspaces."""
    L = a.shape[0]
    for i in range(L):
        e[i] = 2.0 * abs(np.float64(a[i]))
    exp_into(e, e, work)
    for i in range(L):
        x = np.float64(a[i])
        x2 = x * x
        small = 0.0
        for coeff in TANH_COEFFS:
            small = small * x2 + coeff
        small *= x
        large = 1.0 - 2.0 / (e[i] + 1.0)
        a[i] = small if abs(x) < TANH_SMALL else (large if x > 0 else -large)


@njit(**JIT)
def softmax_rows(ps, scratch):
    """Each row of ps (n, K) <- softmax(row), shifted by the row's max so exp cannot overflow.
    scratch (2, >= n*K) float64: workspace (the exponentials of all rows go through one call)."""
    n, K = ps.shape
    e = scratch[0, :n * K]
    for t in range(n):
        p = ps[t]
        top = p[0]
        for k in range(1, K):
            top = max(top, p[k])
        for k in range(K):
            e[t * K + k] = p[k] - top
    exp_into(e, e, scratch[1, :n * K])
    for t in range(n):
        total = 0.0
        for k in range(K):
            total += e[t * K + k]
        inv = 1.0 / total
        p = ps[t]
        for k in range(K):
            p[k] = e[t * K + k] * inv


@njit(**JIT)
def rnn_forward(hs, ps, WT, VT, scratch, x, y, U, b, c):
    """Forward pass over one chunk; returns the summed cross-entropy loss (float64).

    hs (n+1, m): row 0 read (h_prev), rows 1..n written with h_1..h_n.
    ps (n, K): written with p_t.   WT (m, m), VT (m, K): read, W.T and V.T (see ``transposes_into``).
    scratch (2, >= max(n*K, m)) float64: workspace.
    x, y (n,) int: input and target indices.   U, b, c: read.
    """
    n = x.shape[0]
    m = WT.shape[0]
    # b + U[:, x_t] for every t, row by row of U so that U is read once, in order
    for i in range(m):
        Ui = U[i]
        for t in range(n):
            hs[t + 1, i] = b[i] + Ui[x[t]]
    for t in range(n):
        # h_t = tanh(b + U[:, x_t] + sum_j W[:, j] h_{t-1}[j])
        h = hs[t + 1]
        add_rows(h, WT, hs[t])
        tanh_inplace(h, scratch[0, :m], scratch[1, :m])
    # o_t = c + V h_t for every t at once, then p_t = softmax(o_t)
    for t in range(n):
        ps[t] = c
    add_rows_batch(ps, hs[1:], VT)
    softmax_rows(ps, scratch)
    loss = 0.0
    for t in range(n):
        loss -= math.log(ps[t, y[t]])
    return loss


@njit(**JIT)
def rnn_backward(dW, dU, dV, db, dc, dh_out, dh_next, ps, hs, x, y, W, V):
    """Backward pass over the chunk that ``rnn_forward`` just ran.

    dW (m, m), dU (m, K), dV (K, m), db (m,), dc (K,): written with the raw gradients.
    dh_out (n, m): workspace, written with V.T g_t and then with da_t.   dh_next (m,): workspace.
    ps (n, K): read p_t, overwritten with g_t = p_t - onehot(y_t).
    hs (n+1, m), x, y (n,), W, V: read.
    """
    n = x.shape[0]
    m = W.shape[0]
    K = V.shape[0]
    dW[:] = 0.0
    dU[:] = 0.0
    dV[:] = 0.0
    db[:] = 0.0
    dc[:] = 0.0
    # g_t = p_t - onehot(y_t);  dc = sum_t g_t
    for t in range(n):
        g = ps[t]
        g[y[t]] -= 1.0
        for k in range(K):
            dc[k] += g[k]
    # dV = sum_t g_t h_t^T
    add_rows_batch(dV, ps.T, hs[1:])
    # dh_out[t] = V^T g_t
    dh_out[:] = 0.0
    add_rows_batch(dh_out, ps, V)
    dh_next[:] = 0.0
    for t in range(n - 1, -1, -1):
        da = dh_out[t]
        h = hs[t + 1]
        # da_t = (V^T g_t + dh_next) * (1 - h_t^2);  dh_next = W^T da_t = sum_i da_t[i] W[i, :]
        for i in range(m):
            da[i] = (da[i] + dh_next[i]) * (1.0 - h[i] * h[i])
        dh_next[:] = 0.0
        add_rows(dh_next, W, da)
    # dW = sum_t da_t h_{t-1}^T;  db = sum_t da_t;  dU[:, x_t] += da_t
    add_rows_batch(dW, dh_out.T, hs[:n])
    for t in range(n):
        da = dh_out[t]
        xt = x[t]
        for i in range(m):
            db[i] += da[i]
            dU[i, xt] += da[i]


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
def chunk_loss_and_grads(grads, hs, ps, WT, VT, dh_out, dh_next, scratch, x, y, params, m, K):
    """Loss and raw gradients of one chunk. grads (P,) written; hs[0] read as h_prev;
    WT (m, m), VT (m, K) read: the ``transposes_into`` of params. hs (n+1, m), ps (n, K),
    dh_out (n, m), dh_next (m,) and scratch (2, max(n*K, m)) float64: workspaces."""
    W, U, V, b, c = param_views(params, m, K)
    dW, dU, dV, db, dc = param_views(grads, m, K)
    loss = rnn_forward(hs, ps, WT, VT, scratch, x, y, U, b, c)
    rnn_backward(dW, dU, dV, db, dc, dh_out, dh_next, ps, hs, x, y, W, V)
    return loss


@njit(**JIT)
def text_loss(hs, ps, WT, VT, scratch, text, params, m, K):
    """Summed cross-entropy of predicting text[1:] from text[:-1], starting from h = 0 and
    carrying h through chunks of n = ps.shape[0] characters; returns float64 nats.

    hs (n+1, m), ps (n, K), WT (m, m), VT (m, K), scratch (2, >= max(n*K, m)): workspaces.
    text (N,) int: read.   params (P,): read.
    """
    W, U, V, b, c = param_views(params, m, K)
    transposes_into(WT, VT, params, m, K)
    n = ps.shape[0]
    hs[0] = 0.0
    total = 0.0
    pos = 0
    while pos < text.shape[0] - 1:
        L = min(n, text.shape[0] - 1 - pos)
        total += rnn_forward(hs[:L + 1], ps[:L], WT, VT, scratch, text[pos:pos + L],
                             text[pos + 1:pos + L + 1], U, b, c)
        hs[0] = hs[L]
        pos += L
    return total


@njit(**JIT)
def step_and_keep_best(params, mem, grads, counters, floats, smooth, eta, eps, clip):
    """Record ``smooth`` as the run's smooth loss and apply the AdaGrad step; returns whether it
    is a new best, in which case the step writes into the other buffer of params and mem (2, P)
    so that the model that earned it stays intact (kept without copying anything), and
    counters[BEST] names it. The caller records what else the best model needs."""
    cur = counters[CURRENT]
    dst = cur
    best = smooth < floats[BEST_SMOOTH]
    if best:
        floats[BEST_SMOOTH] = smooth
        counters[BEST] = cur
        counters[BEST_UPDATE] = counters[UPDATE]
        dst = 1 - cur
    if dst == cur:
        adagrad_update_inplace(params[cur], mem[cur], grads, eta, eps, clip)
    else:
        adagrad_update(params[dst], mem[dst], params[cur], mem[cur], grads, eta, eps, clip)
    counters[CURRENT] = dst
    counters[UPDATE] += 1
    floats[SMOOTH] = smooth
    return best


@njit(**JIT)
def train_chunks(losses, smooths, params, mem, grads, h, best_h, hs, ps, WT, VT, dh_out, dh_next, scratch,
                 counters, floats, book, eta, eps, clip, m, K):
    """Run ``losses.shape[0]`` training updates over consecutive chunks of ``book``.

    losses, smooths (N,) float64: written with each update's chunk loss and smooth loss.
    params, mem (2, P): two buffers each; counters[CURRENT] names the live one. When an update
        sets a new best smooth loss, it writes into the other buffer so that the model that
        earned it stays intact (the best model is kept without copying anything).
    grads (P,), hs (n+1, m), ps (n, K), WT (m, m), VT (m, K), dh_out (n, m), dh_next (m,),
        scratch (2, max(n*K, m)) float64: workspaces.
    h (m,): hidden state carried between chunks (read and written).  best_h (m,): written with
        the hidden state the best model started its chunk with.
    counters (8,) int64, floats (2,) float64: run state, see the slot names above (read, written).
    book (N_chars,) int: the encoded text.  n = hs.shape[0] - 1 is the chunk length.
    """
    n = hs.shape[0] - 1
    for step in range(losses.shape[0]):
        pos = counters[POSITION]
        # fewer than n + 1 characters left: the epoch ends, start again with h = 0
        if pos + n + 1 > book.shape[0]:
            pos = 0
            h[:] = 0.0
            counters[EPOCH] += 1
        x = book[pos:pos + n]
        y = book[pos + 1:pos + n + 1]
        cur = counters[CURRENT]
        hs[0] = h
        transposes_into(WT, VT, params[cur], m, K)
        loss = chunk_loss_and_grads(grads, hs, ps, WT, VT, dh_out, dh_next, scratch, x, y, params[cur], m, K)
        # smooth loss starts at the first chunk's loss
        smooth = loss if math.isnan(floats[SMOOTH]) else SMOOTHING * floats[SMOOTH] + (1.0 - SMOOTHING) * loss
        if step_and_keep_best(params, mem, grads, counters, floats, smooth, eta, eps, clip):
            counters[BEST_POSITION] = pos
            counters[BEST_EPOCH] = counters[EPOCH]
            best_h[:] = h
        h[:] = hs[n]
        counters[POSITION] = pos + n
        losses[step] = loss
        smooths[step] = smooth


@njit(**dict(JIT, parallel=True))
def train_streams(losses, smooths, params, mem, grads, stream_grads, stream_losses, H, best_H, positions,
                  best_positions, hs, ps, WT, VT, dh_out, dh_next, scratch, counters, floats, book,
                  eta, eps, clip, m, K):
    """``train_chunks`` for B streams walked in step: per update, each stream takes the next
    chunk at its own position with its own hidden state, and the B gradients are averaged
    (so eta keeps its meaning) before one clip and AdaGrad update.

    The streams run in parallel (numba.prange), each into its own workspaces and gradient
    buffer; the average sums them in stream order. Nothing depends on how streams are shared
    among threads, so results are the same bit for bit with any thread count.

    losses, smooths (N,) float64: written with each update's mean chunk loss and smooth loss.
    params, mem (2, P), grads (P,), counters, floats, book, eta, eps, clip, m, K: as in
        ``train_chunks`` (counters[POSITION] and counters[EPOCH] are not used).
    stream_grads (B, P), stream_losses (B,): per-stream workspaces.
    H (B, m): hidden states (read, written).  positions (B,) int64: next chunk starts (read, written).
    best_H (B, m), best_positions (B,): written with the start states of the best model's chunks.
    WT (m, m), VT (m, K): workspaces shared by the streams (W.T and V.T, filled once per update).
    hs (B, n+1, m), ps (B, n, K), dh_out (B, n, m), dh_next (B, m),
        scratch (B, 2, max(n*K, m)) float64: per-stream workspaces.
    """
    B = H.shape[0]
    n = hs.shape[1] - 1
    P = params.shape[1]
    for step in range(losses.shape[0]):
        # a stream with fewer than n + 1 characters left starts again at 0 with h = 0
        for s in range(B):
            if positions[s] + n + 1 > book.shape[0]:
                positions[s] = 0
                H[s] = 0.0
        cur = counters[CURRENT]
        live = params[cur]
        transposes_into(WT, VT, live, m, K)  # shared, read-only, by all streams
        for s in prange(B):
            pos = positions[s]
            hs[s, 0] = H[s]
            stream_losses[s] = chunk_loss_and_grads(stream_grads[s], hs[s], ps[s], WT, VT, dh_out[s],
                                                    dh_next[s], scratch[s], book[pos:pos + n],
                                                    book[pos + 1:pos + n + 1], live, m, K)
        loss = 0.0
        for s in range(B):
            loss += stream_losses[s]
        loss /= B
        smooth = loss if math.isnan(floats[SMOOTH]) else SMOOTHING * floats[SMOOTH] + (1.0 - SMOOTHING) * loss
        # g = (g_0 + ... + g_{B-1}) / B, summed in stream order
        for i in prange(P):
            acc = 0.0
            for s in range(B):
                acc += stream_grads[s, i]
            grads[i] = acc / B
        if step_and_keep_best(params, mem, grads, counters, floats, smooth, eta, eps, clip):
            best_H[:] = H
            best_positions[:] = positions
        for s in range(B):
            H[s] = hs[s, n]
            positions[s] += n
        losses[step] = loss
        smooths[step] = smooth


@njit(**JIT)
def sample_chars(out, h, WT, VT, prime, uniforms, inv_temperature, W, U, V, b, c):
    """Generate out.shape[0] characters.

    out (N,) int64: written with the sampled indices.   h (m,): start state, advanced in place.
    WT (m, m), VT (m, K): workspaces.   prime (L,) int: inputs fed before sampling (may be empty;
    without it the first character comes from softmax(V h + c)).   uniforms (N,): numbers in
    [0, 1) that pick each character by inverse CDF.   inv_temperature: 1 / T.
    """
    m = W.shape[0]
    K = V.shape[0]
    transpose_into(WT, W)
    transpose_into(VT, V)
    UT = np.empty((K, m), dtype=U.dtype)  # rows of UT are the columns U[:, x] read per character
    transpose_into(UT, U)
    a = np.empty(m, dtype=h.dtype)
    p = np.empty(K, dtype=np.float64)
    scratch = np.empty((2, max(m, K)))
    L = prime.shape[0]
    for t in range(L + out.shape[0]):
        if t > 0:
            xt = prime[t - 1] if t <= L else out[t - 1 - L]
            # h = tanh(b + U[:, x] + W h)
            u = UT[xt]
            for i in range(m):
                a[i] = b[i] + u[i]
            add_rows(a, WT, h)
            tanh_inplace(a, scratch[0, :m], scratch[1, :m])
            h[:] = a
        if t < L:
            continue
        # p = softmax((V h + c) / T), then the first k whose cumulative mass exceeds u * total
        for k in range(K):
            p[k] = c[k]
        add_rows(p, VT, h)
        top = p[0]
        for k in range(1, K):
            top = max(top, p[k])
        for k in range(K):
            p[k] = (p[k] - top) * inv_temperature
        exp_into(p, p, scratch[0, :K])
        total = 0.0
        for k in range(K):
            total += p[k]
        u = uniforms[t - L] * total
        acc = 0.0
        pick = K - 1
        for k in range(K):
            acc += p[k]
            if acc > u:
                pick = k
                break
        out[t - L] = pick
