"""Numba kernels: the per-timestep loops of the char-RNN, the optimizer and the sampler.

Only numpy, numba and the vector intrinsics of ``simd`` are imported here; no I/O. Kernels
never raise: the Python callers check shapes, dtypes and finiteness. Arguments are ordered
outputs, inputs, weights, then sizes.

Notation (one chunk of n characters, hidden size m, vocabulary K):
    a_t = W h_{t-1} + U x_t + b,   h_t = tanh(a_t),   o_t = V h_t + c,   p_t = softmax(o_t)
    loss = -sum_t log p_t[y_t]

Every matrix product goes through ``matmul_add``, which sums each element in one fixed order,
so a stream's numbers do not depend on how many streams are computed with it.
"""
import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange, types
from numba.core.errors import TypingError
from numba.extending import overload
from numba.np.numpy_support import as_dtype

from .simd import lanes_of, vfma, vload, vstore

# Fused multiply-add only: no flag that assumes away NaN or infinity, and no reordering of sums.
FASTMATH = {"contract"}
JIT = dict(cache=True, error_model="numpy", fastmath=FASTMATH)
# For functions made by a factory (one per dtype): Numba's cache keeps one index per name and
# source line, which the versions would share (a cached run of one version crashed once).
UNCACHED = dict(JIT, cache=False)

# Slots of the integer and float run-state arrays shared by train_chunks and its caller.
POSITION, EPOCH, CURRENT, UPDATE, BEST, BEST_UPDATE, BEST_POSITION, BEST_EPOCH = range(8)
SMOOTH, BEST_SMOOTH = range(2)
SMOOTHING = 0.999


@njit(**JIT)
def param_views(flat, m, K):
    """Views W (m, m), UT (K, m), V (K, m), b (m,), c (K,) into a flat (P,) buffer. U is stored
    transposed (``model.Layout``): row x of UT is the column U[:, x] that character x reads
    and updates, contiguous."""
    o1 = m * m
    o2 = o1 + K * m
    o3 = o2 + K * m
    o4 = o3 + m
    return (flat[:o1].reshape((m, m)), flat[o1:o2].reshape((K, m)),
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
    W, UT, V, b, c = param_views(params, m, K)
    transpose_into(WT, W)
    transpose_into(VT, V)


@njit(**JIT)
def matmul_add(out, coef, A):
    """out (T, L) += coef (T, J) @ A (J, L), of one float dtype; out and A with contiguous rows,
    coef any strides.

    Register tiles of explicit vectors (``simd``): 4 rows x 3 vectors of out (float64; 4 x 2 in
    float32) stay in registers while j runs over all of J, so each vector of A loaded feeds 4
    rows and each coefficient 2 or 3 vectors (1.3-2x the GFLOP/s of loops LLVM vectorises by
    itself). Columns past the last whole vector go through masked loads. The rows left over,
    and all rows when T < 4, go through ``_rows``.

    Every element, on every path, is out[t, i] + coef[t, 0] A[0, i] + ... summed in order of j,
    each step the same ``llvm.fmuladd`` (``simd.vfma``): a row of out comes out the same bit
    for bit whatever T is and wherever the row sits, so G streams computed together equal each
    stream alone.
    """
    tiled = out.shape[0] - out.shape[0] % 4
    _tiles(out, coef, A, tiled)
    _rows(out, coef, A, tiled)


def _tiles(out, coef, A, tiled):
    """Rows 0..tiled-1 (a multiple of 4) of ``matmul_add`` in register tiles: 3 vectors wide in
    float64 (3-16% faster than 2 where J >= 80, the same at J = 25) and 2 in float32 (where 3
    was no faster). Inside kernels, each dtype compiles its own width only."""
    first = _tiles_3wide(out, coef, A, tiled) if out.dtype == np.float64 else 0
    _tiles_2wide(out, coef, A, tiled, first)


@overload(_tiles, jit_options=UNCACHED)
def _tiles_compiled(out, coef, A, tiled):
    if out.dtype == types.float64:
        def tiles_3wide_then_2wide(out, coef, A, tiled):
            _tiles_2wide(out, coef, A, tiled, _tiles_3wide(out, coef, A, tiled))
        return tiles_3wide_then_2wide

    def tiles_2wide(out, coef, A, tiled):
        _tiles_2wide(out, coef, A, tiled, 0)
    return tiles_2wide


@njit(inline="always")
def _tiles_3wide(out, coef, A, tiled):
    """The tiled rows in 4 x 3 tiles of whole vectors; returns the first column not done (fewer
    than 3 vectors of columns go to ``_tiles_2wide``: one shape of tile less to compile)."""
    V = lanes_of(out)
    L = out.shape[1]
    i = 0
    while L - i >= 3 * V:
        for t in range(0, tiled, 4):
            _tile_4x3(out, coef, A, t, i)
        i += 3 * V
    return i


@njit(inline="always")
def _tiles_2wide(out, coef, A, tiled, first):
    """Columns first.. of the tiled rows in 4 x 2 tiles, and a 4 x 1 tile for one vector or less."""
    V = lanes_of(out)
    L = out.shape[1]
    for i in range(first, L, 2 * V):
        width = min(2 * V, L - i)
        for t in range(0, tiled, 4):
            if width == 2 * V:
                _tile_4x2(out, coef, A, t, i, None)
            elif width > V:
                _tile_4x2(out, coef, A, t, i, width - V)
            else:
                _tile_4x1(out, coef, A, t, i, width)


@njit(inline="always")
def _matmul_add_transposed(out, X, A):
    """out (T, L) += X.T @ A for X (J, T). From J = 64 rows on, through a contiguous copy of
    X.T: the tiles read 4 coefficients per j from 4 rows of it rather than from the one row of
    X that 4 columns of the view share, and the products of a block of 8 streams (J = 200) run
    1.3-1.5x faster; at one stream (J = 25) the copy costs more than it saves. The sums are
    the same either way."""
    if X.shape[0] >= 64:
        XT = np.empty((X.shape[1], X.shape[0]), dtype=X.dtype)
        transpose_into(XT, X)
        matmul_add(out, XT, A)
    else:
        matmul_add(out, X.T, A)


@njit(inline="always")
def _tile_4x3(out, coef, A, t, i):
    """Rows t..t+3, columns i..i+3V of ``matmul_add``."""
    V = lanes_of(out)
    V2 = 2 * V  # offset of the third vector
    o00, o01, o02 = vload(out, t, i, None), vload(out, t, i + V, None), vload(out, t, i + V2, None)
    o10, o11, o12 = vload(out, t + 1, i, None), vload(out, t + 1, i + V, None), vload(out, t + 1, i + V2, None)
    o20, o21, o22 = vload(out, t + 2, i, None), vload(out, t + 2, i + V, None), vload(out, t + 2, i + V2, None)
    o30, o31, o32 = vload(out, t + 3, i, None), vload(out, t + 3, i + V, None), vload(out, t + 3, i + V2, None)
    for j in range(A.shape[0]):
        a0, a1, a2 = vload(A, j, i, None), vload(A, j, i + V, None), vload(A, j, i + V2, None)
        c = coef[t, j]
        o00, o01, o02 = vfma(a0, c, o00), vfma(a1, c, o01), vfma(a2, c, o02)
        c = coef[t + 1, j]
        o10, o11, o12 = vfma(a0, c, o10), vfma(a1, c, o11), vfma(a2, c, o12)
        c = coef[t + 2, j]
        o20, o21, o22 = vfma(a0, c, o20), vfma(a1, c, o21), vfma(a2, c, o22)
        c = coef[t + 3, j]
        o30, o31, o32 = vfma(a0, c, o30), vfma(a1, c, o31), vfma(a2, c, o32)
    vstore(out, t, i, o00, None)
    vstore(out, t, i + V, o01, None)
    vstore(out, t, i + V2, o02, None)
    vstore(out, t + 1, i, o10, None)
    vstore(out, t + 1, i + V, o11, None)
    vstore(out, t + 1, i + V2, o12, None)
    vstore(out, t + 2, i, o20, None)
    vstore(out, t + 2, i + V, o21, None)
    vstore(out, t + 2, i + V2, o22, None)
    vstore(out, t + 3, i, o30, None)
    vstore(out, t + 3, i + V, o31, None)
    vstore(out, t + 3, i + V2, o32, None)


@njit(inline="always")
def _tile_4x2(out, coef, A, t, i, last):
    """Rows t..t+3, columns i..i+2V of ``matmul_add``; the second vector's first ``last``
    columns only, unless ``last`` is None."""
    V = lanes_of(out)
    o00, o01 = vload(out, t, i, None), vload(out, t, i + V, last)
    o10, o11 = vload(out, t + 1, i, None), vload(out, t + 1, i + V, last)
    o20, o21 = vload(out, t + 2, i, None), vload(out, t + 2, i + V, last)
    o30, o31 = vload(out, t + 3, i, None), vload(out, t + 3, i + V, last)
    for j in range(A.shape[0]):
        a0, a1 = vload(A, j, i, None), vload(A, j, i + V, last)
        c = coef[t, j]
        o00, o01 = vfma(a0, c, o00), vfma(a1, c, o01)
        c = coef[t + 1, j]
        o10, o11 = vfma(a0, c, o10), vfma(a1, c, o11)
        c = coef[t + 2, j]
        o20, o21 = vfma(a0, c, o20), vfma(a1, c, o21)
        c = coef[t + 3, j]
        o30, o31 = vfma(a0, c, o30), vfma(a1, c, o31)
    vstore(out, t, i, o00, None)
    vstore(out, t, i + V, o01, last)
    vstore(out, t + 1, i, o10, None)
    vstore(out, t + 1, i + V, o11, last)
    vstore(out, t + 2, i, o20, None)
    vstore(out, t + 2, i + V, o21, last)
    vstore(out, t + 3, i, o30, None)
    vstore(out, t + 3, i + V, o31, last)


@njit(inline="always")
def _tile_4x1(out, coef, A, t, i, count):
    """Rows t..t+3, columns i..i+count (count <= V) of ``matmul_add``."""
    o0, o1 = vload(out, t, i, count), vload(out, t + 1, i, count)
    o2, o3 = vload(out, t + 2, i, count), vload(out, t + 3, i, count)
    for j in range(A.shape[0]):
        a = vload(A, j, i, count)
        o0, o1 = vfma(a, coef[t, j], o0), vfma(a, coef[t + 1, j], o1)
        o2, o3 = vfma(a, coef[t + 2, j], o2), vfma(a, coef[t + 3, j], o3)
    vstore(out, t, i, o0, count)
    vstore(out, t + 1, i, o1, count)
    vstore(out, t + 2, i, o2, count)
    vstore(out, t + 3, i, o3, count)


@njit(inline="always")
def _rows(out, coef, A, first):
    """Rows first..T-1 of ``matmul_add`` as sums of scaled rows of A, eight rows of A per pass
    over an output row (then one at a time): each pass carries ceil(L / lanes) independent
    vectors, where a register tile of one row would carry a few (1.1-1.7x faster at T = 1).
    The sum of each element is still in order of j, with the tiles' multiply-add, so these
    rows equal the tiled ones bit for bit."""
    T = out.shape[0]
    J = A.shape[0]
    V = lanes_of(out)
    L = out.shape[1]
    whole = L - L % V
    j = 0
    while j + 8 <= J:
        for t in range(first, T):
            c = coef[t]
            c0, c1, c2, c3 = c[j], c[j + 1], c[j + 2], c[j + 3]
            c4, c5, c6, c7 = c[j + 4], c[j + 5], c[j + 6], c[j + 7]
            for i in range(0, whole, V):
                o = _eight_terms(out, A, t, j, i, None, c0, c1, c2, c3, c4, c5, c6, c7)
                vstore(out, t, i, o, None)
            if whole < L:
                o = _eight_terms(out, A, t, j, whole, L - whole, c0, c1, c2, c3, c4, c5, c6, c7)
                vstore(out, t, whole, o, L - whole)
        j += 8
    while j < J:
        for t in range(first, T):
            c = coef[t, j]
            for i in range(0, whole, V):
                vstore(out, t, i, vfma(vload(A, j, i, None), c, vload(out, t, i, None)), None)
            if whole < L:
                vstore(out, t, whole, vfma(vload(A, j, whole, L - whole), c, vload(out, t, whole, L - whole)),
                       L - whole)
        j += 1


@njit(inline="always")
def _eight_terms(out, A, t, j, i, count, c0, c1, c2, c3, c4, c5, c6, c7):
    """out[t, i:i+lanes] + c0 A[j, i:i+lanes] + ... + c7 A[j+7, i:i+lanes], in that order, as a
    vector: explicit vectors, so no run-time overlap checks and a masked tail rather than a
    scalar loop."""
    o = vfma(vload(A, j, i, count), c0, vload(out, t, i, count))
    o = vfma(vload(A, j + 1, i, count), c1, o)
    o = vfma(vload(A, j + 2, i, count), c2, o)
    o = vfma(vload(A, j + 3, i, count), c3, o)
    o = vfma(vload(A, j + 4, i, count), c4, o)
    o = vfma(vload(A, j + 5, i, count), c5, o)
    o = vfma(vload(A, j + 6, i, count), c6, o)
    return vfma(vload(A, j + 7, i, count), c7, o)


# exp and tanh as plain arithmetic that LLVM vectorises: the pip build of llvmlite has no vector
# math library, so math.exp / math.tanh are scalar calls of ~5 and ~10 ns, a sixth of a step.
# Each comes in the precision of its workspace, float64 or float32 (eight lanes to a vector and
# half the polynomial: about 4x faster), accurate to a few ulp of that precision (tests compare
# them with NumPy). ``_exp_kernel`` and ``_tanh_kernel`` build one per dtype from its figures.
class ExpTanhFigures(NamedTuple):
    mantissa_bits: int
    int_dtype: type  # the integer view of the float, for the exponent-bit trick
    lo: float  # x is clamped to [lo, hi], where exp(x) is a normal number
    hi: float
    ln2_hi: float  # ln 2 split so that k * ln2_hi is exact (fdlibm, Cephes)
    ln2_lo: float
    exp_degree: int  # Taylor degree of exp(r) for |r| <= ln2 / 2
    tanh_terms: int  # odd Taylor terms of tanh for |x| < TANH_SMALL (above: 1 - 2 / (exp(2|x|) + 1))


EXP_TANH_FIGURES = {
    np.dtype(np.float64): ExpTanhFigures(52, np.int64, -708.0, 709.0, 6.93147180369123816490e-01,
                                         1.90821492927058770002e-10, 13, 12),
    np.dtype(np.float32): ExpTanhFigures(23, np.int32, -86.0, 88.0, 0.693359375, -2.12194440e-4, 7, 5),
}
TANH_SMALL = 0.25


def _tanh_taylor(n_terms):
    """Odd Taylor coefficients of tanh from tanh' = 1 - tanh^2, highest power first."""
    from fractions import Fraction

    a = [Fraction(0), Fraction(1)]
    for n in range(1, 2 * n_terms):
        a.append(-sum(a[i] * a[n - i] for i in range(n + 1)) / (n + 1))
    return tuple(float(a[k]) for k in range(2 * n_terms - 1, 0, -2))


def _exp_kernel(dtype):
    """exp_into for workspaces of ``dtype``: every constant is of that dtype, so the arithmetic is."""
    mantissa_bits, int_dtype, lo, hi, ln2_hi, ln2_lo, degree, _ = EXP_TANH_FIGURES[dtype]
    mantissa_bits = int_dtype(mantissa_bits)  # integers of the float's width: full vectors
    f = dtype.type
    magic = f(1.5 * 2.0 ** mantissa_bits)  # x + magic rounds x to an integer kept in the low bits
    magic_bits = np.array(magic).view(int_dtype)[()]
    log2e, ln2_hi, ln2_lo, lo, hi, zero = f(1.4426950408889634), f(ln2_hi), f(ln2_lo), f(lo), f(hi), f(0.0)
    coeffs = tuple(f(1.0 / math.factorial(k)) for k in range(degree, -1, -1))

    def exp_into(out, x, work):
        for i in range(x.shape[0]):
            xi = min(max(f(x[i]), lo), hi)
            kd = xi * log2e + magic
            kf = kd - magic
            r = (xi - kf * ln2_hi) - kf * ln2_lo
            p = zero
            for coeff in coeffs:
                p = p * r + coeff
            out[i] = p
            work[i] = kd
        out_bits = out.view(int_dtype)
        k_bits = work.view(int_dtype)
        for i in range(x.shape[0]):
            out_bits[i] += (k_bits[i] - magic_bits) << mantissa_bits

    return njit(**UNCACHED)(exp_into)


def _tanh_kernel(dtype):
    """tanh_inplace for workspaces of ``dtype``."""
    f = dtype.type
    coeffs = tuple(f(c) for c in _tanh_taylor(EXP_TANH_FIGURES[dtype].tanh_terms))
    small_limit, zero, one, two = f(TANH_SMALL), f(0.0), f(1.0), f(2.0)

    def tanh_inplace(a, work):
        L = a.shape[0]
        twice_abs, e, w = work[0, :L], work[1, :L], work[2, :L]
        for i in range(L):
            twice_abs[i] = two * abs(f(a[i]))
        exp_into(e, twice_abs, w)
        for i in range(L):
            x = f(a[i])
            xx = x * x
            small = zero
            for coeff in coeffs:
                small = small * xx + coeff
            small *= x
            large = one - two / (e[i] + one)
            a[i] = small if abs(x) < small_limit else (large if x > zero else -large)

    return njit(**UNCACHED)(tanh_inplace)


_EXP = {dtype: _exp_kernel(dtype) for dtype in EXP_TANH_FIGURES}
_TANH = {dtype: _tanh_kernel(dtype) for dtype in EXP_TANH_FIGURES}


def exp_into(out, x, work):
    """out (L,) <- exp(x) for x (L,) of any float dtype, in the precision of out and work.

    work (L,), out's dtype: workspace. out, x and work must be three different arrays: LLVM
    checks at run time whether the arrays of a loop overlap and runs overlapping ones
    unvectorised (4x slower). exp(x) = 2^k exp(r), x = k ln2 + r; exp(r) by a Taylor
    polynomial, 2^k added straight into the exponent bits. x is clamped to where the result is
    a normal number ([-708, 709] in float64, [-86, 88] in float32; the softmax shifts its
    inputs to <= 0 first). A NaN input gives an unspecified value: callers check the
    parameters for finiteness instead.
    """
    _EXP[_workspace_dtype("exp_into", out.dtype, work.dtype)](out, x, work)


def tanh_inplace(a, work):
    """a (L,) <- tanh(a), any float dtype, in the precision of work (3, >= L): workspace."""
    _TANH[_workspace_dtype("tanh_inplace", work.dtype)](a, work)


def _workspace_dtype(name, dtype, *others):
    """The dtype that picks the version of exp or tanh; one of EXP_TANH_FIGURES, and shared by
    the arrays the bit tricks view as integers."""
    if dtype not in EXP_TANH_FIGURES or any(other != dtype for other in others):
        raise TypeError(f"{name}: workspaces of one dtype, float64 or float32, not {dtype} {others}")
    return dtype


# In kernels, each call compiles to the version for its workspace's dtype (not cached on its
# own: the kernels that call it carry it in their cached code).
def _compiled_version(versions, name, *arrays):
    try:
        dtype = _workspace_dtype(name, *(np.dtype(as_dtype(a.dtype)) for a in arrays))
    except TypeError as e:
        raise TypingError(str(e)) from None
    return versions[dtype].py_func


@overload(exp_into, jit_options=UNCACHED)
def _exp_into_compiled(out, x, work):
    return _compiled_version(_EXP, "exp_into", out, work)


@overload(tanh_inplace, jit_options=UNCACHED)
def _tanh_inplace_compiled(a, work):
    return _compiled_version(_TANH, "tanh_inplace", work)


def scratch_shape(rows, m, K):
    """Shape of the workspace of ``tanh_inplace`` and ``softmax_rows`` for up to ``rows``
    hidden vectors or output rows at a time (wider: fewer, longer exp calls), in the model's
    dtype."""
    return (3, rows * max(m, K))


@njit(inline="always")
def _max_of(x):
    """max of x (L >= 1,), in 8 independent chains: a single chain waits on each compare."""
    n = x.shape[0]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = x[0]
    k = 0
    while k + 8 <= n:
        m0, m1, m2, m3 = max(m0, x[k]), max(m1, x[k + 1]), max(m2, x[k + 2]), max(m3, x[k + 3])
        m4, m5, m6, m7 = max(m4, x[k + 4]), max(m5, x[k + 5]), max(m6, x[k + 6]), max(m7, x[k + 7])
        k += 8
    while k < n:
        m0 = max(m0, x[k])
        k += 1
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))


@njit(inline="always")
def _sum_of(x):
    """Sum of x (L,) in float64, in 8 independent chains added in a fixed order."""
    n = x.shape[0]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    k = 0
    while k + 8 <= n:
        s0, s1, s2, s3 = s0 + x[k], s1 + x[k + 1], s2 + x[k + 2], s3 + x[k + 3]
        s4, s5, s6, s7 = s4 + x[k + 4], s5 + x[k + 5], s6 + x[k + 6], s7 + x[k + 7]
        k += 8
    while k < n:
        s0 += x[k]
        k += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@njit(**JIT)
def softmax_rows(ps, scratch):
    """Each row of ps (n, K) <- softmax(row), shifted by the row's max so exp cannot overflow.
    scratch (3, >= K): workspace, whose dtype sets exp's precision; as many rows as fit in it
    go through one exp call."""
    n, K = ps.shape
    per_call = scratch.shape[1] // K
    for first in range(0, n, per_call):
        rows = min(per_call, n - first)
        shifted, e = scratch[0, :rows * K], scratch[1, :rows * K]
        for r in range(rows):
            p = ps[first + r]
            top = _max_of(p)
            for k in range(K):
                shifted[r * K + k] = p[k] - top
        exp_into(e, shifted, scratch[2, :rows * K])
        for r in range(rows):
            inv = 1.0 / _sum_of(e[r * K:(r + 1) * K])
            p = ps[first + r]
            for k in range(K):
                p[k] = e[r * K + k] * inv


@njit(**JIT)
def rnn_forward_streams(hs, ps, WT, VT, scratch, wh, xs, ys, UT, b, c):
    """Forward pass of G streams over one chunk each, walked in step; returns the summed
    cross-entropy of all G chunks (float64, stream by stream, each summed over t).

    hs (n+1, G, m): row 0 read (each stream's h_prev), rows 1..n written with h_1..h_n.
    ps (n, G, K): written with p_t.   WT (m, m), VT (m, K): read, W.T and V.T (see ``transposes_into``).
    scratch ``scratch_shape(G, m, K)`` or wider, wh (G, m): workspaces.
    xs, ys (G, n) int: each stream's input and target indices.   UT (K, m), b, c: read.

    Every product runs as ``matmul_add`` over all G streams at once, so each vector of W.T and
    V.T loaded serves several streams, and each stream's numbers go through exactly the
    operations a lone stream's would: G = 1 is the single-stream pass, bit for bit.
    """
    G, n = xs.shape
    m = WT.shape[0]
    K = VT.shape[1]
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
        h = hs[t + 1]
        for s in range(G):
            for i in range(m):
                h[s, i] = wh[s, i] + h[s, i]
        tanh_inplace(h.reshape(G * m), scratch)
    # o_t = c + V h_t for every stream and t at once, then p_t = softmax(o_t)
    rows = ps.reshape((n * G, K))
    for r in range(n * G):
        rows[r] = c
    matmul_add(rows, hs.reshape(((n + 1) * G, m))[G:], VT)
    softmax_rows(rows, scratch)
    loss = 0.0
    for s in range(G):
        for t in range(n):
            loss -= math.log(ps[t, s, ys[s, t]])
    return loss


@njit(**JIT)
def rnn_forward(hs, ps, WT, VT, scratch, wh, x, y, UT, b, c):
    """``rnn_forward_streams`` of one stream: hs (n+1, m), ps (n, K), wh (m,), x, y (n,); scratch
    ``scratch_shape(1, m, K)`` or wider. Returns the chunk's summed cross-entropy."""
    n, m = ps.shape[0], hs.shape[1]
    return rnn_forward_streams(hs.reshape((n + 1, 1, m)), ps.reshape((n, 1, ps.shape[1])), WT, VT, scratch,
                               wh.reshape((1, m)), x[np.newaxis, :], y[np.newaxis, :], UT, b, c)


@njit(**JIT)
def rnn_backward_streams(dW, dUT, dV, db, dc, dh_out, dh_next, ps, hs, xs, ys, W, V):
    """Backward pass over the G chunks that ``rnn_forward_streams`` just ran; the gradients are
    the sums over all G chunks.

    dW (m, m), dUT (K, m), dV (K, m), db (m,), dc (K,): written with the raw gradients (dUT
    is dU transposed, as ``param_views`` lays U out).
    dh_out (n, G, m): workspace, written with V.T g_t and then with da_t.   dh_next (G, m): workspace.
    ps (n, G, K): read p_t, overwritten with g_t = p_t - onehot(y_t).
    hs (n+1, G, m), xs, ys (G, n), W, V: read.
    """
    G, n = xs.shape
    m = W.shape[0]
    K = V.shape[0]
    dW[:] = 0.0
    dUT[:] = 0.0
    dV[:] = 0.0
    db[:] = 0.0
    dc[:] = 0.0
    # g_t = p_t - onehot(y_t);  dc = sum_t g_t
    for t in range(n):
        for s in range(G):
            g = ps[t, s]
            g[ys[s, t]] -= 1.0
            for k in range(K):
                dc[k] += g[k]
    rows = ps.reshape((n * G, K))
    h_rows = hs.reshape(((n + 1) * G, m))
    da_rows = dh_out.reshape((n * G, m))
    # dV = sum_t g_t h_t^T
    _matmul_add_transposed(dV, rows, h_rows[G:])
    # dh_out[t] = V^T g_t
    da_rows[:] = 0.0
    matmul_add(da_rows, rows, V)
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
    # dW = sum_t da_t h_{t-1}^T;  db = sum_t da_t;  dU[:, x_t] += da_t (row x_t of dUT)
    _matmul_add_transposed(dW, da_rows, h_rows[:n * G])
    for t in range(n):
        for s in range(G):
            da = dh_out[t, s]
            du = dUT[xs[s, t]]
            for i in range(m):
                db[i] += da[i]
                du[i] += da[i]


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
def adagrad_update_inplace_held(params, mem, grads, held, m, K, eta, eps, clip):
    """``adagrad_update_inplace``, passing over each row x of UT (``param_views``) where
    held[x] is False: the rows of characters no chunk of the update held as an input, whose
    gradient the backward pass leaves exactly zero, and a zero gradient leaves a parameter and
    its sum as they are. At K = 80 a chunk of 25 characters holds some 15-20 of them, so about
    a quarter of all parameters is passed over.   held (K,) bool: read."""
    o1 = m * m
    start = 0  # W and the rows of UT since the last row passed over: one span, one loop
    for x in range(K):
        if not held[x]:
            a = o1 + x * m
            adagrad_update_inplace(params[start:a], mem[start:a], grads[start:a], eta, eps, clip)
            start = a + m
    adagrad_update_inplace(params[start:], mem[start:], grads[start:], eta, eps, clip)


@njit(**JIT)
def chunk_loss_and_grads_streams(grads, hs, ps, WT, VT, dh_out, dh_next, scratch, xs, ys, params, m, K):
    """Summed loss and raw gradients of G chunks walked in step (``rnn_forward_streams``).
    grads (P,) written; hs[0] (G, m) read as the streams' h_prev; WT (m, m), VT (m, K) read: the
    ``transposes_into`` of params. hs (n+1, G, m), ps (n, G, K), dh_out (n, G, m), dh_next (G, m)
    and scratch ``scratch_shape(G, m, K)``: workspaces.   xs, ys (G, n) int: read."""
    W, UT, V, b, c = param_views(params, m, K)
    dW, dUT, dV, db, dc = param_views(grads, m, K)
    # dh_next is free until the backward: the forward's W h workspace
    loss = rnn_forward_streams(hs, ps, WT, VT, scratch, dh_next, xs, ys, UT, b, c)
    rnn_backward_streams(dW, dUT, dV, db, dc, dh_out, dh_next, ps, hs, xs, ys, W, V)
    return loss


@njit(**JIT)
def chunk_loss_and_grads(grads, hs, ps, WT, VT, dh_out, dh_next, scratch, x, y, params, m, K):
    """``chunk_loss_and_grads_streams`` of one stream: hs (n+1, m), ps (n, K), dh_out (n, m),
    dh_next (m,), scratch ``scratch_shape(1, m, K)`` or wider, x, y (n,)."""
    n = x.shape[0]
    return chunk_loss_and_grads_streams(grads, hs.reshape((n + 1, 1, m)), ps.reshape((n, 1, K)), WT, VT,
                                        dh_out.reshape((n, 1, m)), dh_next.reshape((1, m)), scratch,
                                        x[np.newaxis, :], y[np.newaxis, :], params, m, K)


@njit(**JIT)
def text_loss(hs, ps, WT, VT, scratch, wh, text, h0, params, m, K):
    """Summed cross-entropy of predicting text[1:] from text[:-1], starting from h0 and
    carrying h through chunks of n = ps.shape[0] characters; returns float64 nats.

    hs (n+1, m), ps (n, K), WT (m, m), VT (m, K), scratch ``scratch_shape(1, m, K)`` or wider,
    wh (m,): workspaces.
    text (N,) int: read.   h0 (m,): the state text[0] is fed to, read.   params (P,): read.
    """
    W, UT, V, b, c = param_views(params, m, K)
    transposes_into(WT, VT, params, m, K)
    n = ps.shape[0]
    hs[0] = h0
    total = 0.0
    pos = 0
    while pos < text.shape[0] - 1:
        L = min(n, text.shape[0] - 1 - pos)
        total += rnn_forward(hs[:L + 1], ps[:L], WT, VT, scratch, wh, text[pos:pos + L],
                             text[pos + 1:pos + L + 1], UT, b, c)
        hs[0] = hs[L]
        pos += L
    return total


@njit(inline="always")
def smoothed(floats, loss):
    """The smooth loss after a chunk loss of ``loss``: 0.999 s + 0.001 loss, starting at the
    first chunk's loss (floats[SMOOTH] is NaN before it)."""
    return loss if math.isnan(floats[SMOOTH]) else SMOOTHING * floats[SMOOTH] + (1.0 - SMOOTHING) * loss


@njit(**JIT)
def step_and_keep_best(params, mem, grads, held, counters, floats, smooth, m, K, eta, eps, clip):
    """Record ``smooth`` as the run's smooth loss and apply the AdaGrad step; returns whether it
    is a new best, in which case the step writes into the other buffer of params and mem (2, P)
    so that the model that earned it stays intact (kept without copying anything), and
    counters[BEST] names it. The caller records what else the best model needs.
    held (K,) bool: the characters the update's chunks held as inputs (see
    ``adagrad_update_inplace_held``; the step into the other buffer updates every row)."""
    cur = counters[CURRENT]
    dst = cur
    best = smooth < floats[BEST_SMOOTH]
    if best:
        floats[BEST_SMOOTH] = smooth
        counters[BEST] = cur
        counters[BEST_UPDATE] = counters[UPDATE]
        dst = 1 - cur
    if dst == cur:
        adagrad_update_inplace_held(params[cur], mem[cur], grads, held, m, K, eta, eps, clip)
    else:
        adagrad_update(params[dst], mem[dst], params[cur], mem[cur], grads, eta, eps, clip)
    counters[CURRENT] = dst
    counters[UPDATE] += 1
    floats[SMOOTH] = smooth
    return best


@njit(inline="always")
def _mark_held(held, x):
    """held[k] = True for each input k in x."""
    for t in range(x.shape[0]):
        held[x[t]] = True


@njit(**JIT)
def train_chunks(losses, smooths, params, mem, grads, h, best_h, hs, ps, WT, VT, dh_out, dh_next, scratch,
                 counters, floats, book, eta, eps, clip, m, K):
    """Run ``losses.shape[0]`` training updates over consecutive chunks of ``book``.

    losses, smooths (N,) float64: written with each update's chunk loss and smooth loss.
    params, mem (2, P): two buffers each; counters[CURRENT] names the live one. When an update
        sets a new best smooth loss, it writes into the other buffer so that the model that
        earned it stays intact (the best model is kept without copying anything).
    grads (P,), hs (n+1, m), ps (n, K), WT (m, m), VT (m, K), dh_out (n, m), dh_next (m,),
        scratch ``scratch_shape(1, m, K)`` or wider: workspaces.
    h (m,): hidden state carried between chunks (read and written).  best_h (m,): written with
        the hidden state the best model started its chunk with.
    counters (8,) int64, floats (2,) float64: run state, see the slot names above (read, written).
    book (N_chars,) int: the encoded text.  n = hs.shape[0] - 1 is the chunk length.
    """
    n = hs.shape[0] - 1
    held = np.zeros(K, dtype=np.bool_)
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
        smooth = smoothed(floats, loss)
        held[:] = False
        _mark_held(held, x)
        if step_and_keep_best(params, mem, grads, held, counters, floats, smooth, m, K, eta, eps, clip):
            counters[BEST_POSITION] = pos
            counters[BEST_EPOCH] = counters[EPOCH]
            best_h[:] = h
        h[:] = hs[n]
        counters[POSITION] = pos + n
        losses[step] = loss
        smooths[step] = smooth


STREAM_BLOCK = 8  # streams per block: W.T and V.T are read once per timestep for up to this many


def stream_blocks(B):
    """Stream count of each block, for B streams: ceil(B / STREAM_BLOCK) blocks of near-equal
    size, earlier blocks one larger. A function of B alone, so results never depend on the
    number of threads that run the blocks."""
    count = -(-B // STREAM_BLOCK)
    return [B // count + (1 if i < B % count else 0) for i in range(count)]


@njit(**dict(JIT, parallel=True))
def train_streams(losses, smooths, params, mem, grads, block_grads, block_losses, H, best_H, positions,
                  best_positions, block_starts, chars, hs, ps, WT, VT, dh_out, dh_next, scratch, counters,
                  floats, book, eta, eps, clip, m, K):
    """``train_chunks`` for B streams walked in step: per update, each stream takes the next
    chunk at its own position with its own hidden state, and the B gradients are averaged
    (so eta keeps its meaning) before one clip and AdaGrad update.

    The streams run in blocks (``stream_blocks``) through ``chunk_loss_and_grads_streams``, so
    the products are matrix-matrix; the blocks run in parallel (numba.prange), each into its
    own workspaces and gradient buffer, and the average sums the blocks in order. Nothing
    depends on how blocks are shared among threads, so results are the same bit for bit with
    any thread count; one stream is one block of one, the classic kernel's arithmetic.

    losses, smooths (N,) float64: written with each update's mean chunk loss and smooth loss.
    params, mem (2, P), grads (P,), counters, floats, book, eta, eps, clip, m, K: as in
        ``train_chunks`` (counters[POSITION] and counters[EPOCH] are not used).
    block_grads (nb, P), block_losses (nb,): per-block workspaces.
    H (B, m): hidden states (read, written).  positions (B,) int64: next chunk starts (read, written).
    best_H (B, m), best_positions (B,): written with the start states of the best model's chunks.
    block_starts (nb+1,) int64: block j holds streams block_starts[j] .. block_starts[j+1] - 1.
    chars (nb, G, n+1) of book's dtype: workspace for each block's chunks (G the largest block).
    WT (m, m), VT (m, K): workspaces shared by the blocks (W.T and V.T, filled once per update).
    hs (nb, (n+1)*G*m), ps (nb, n*G*K), dh_out (nb, n*G*m), dh_next (nb, G*m),
        scratch (nb,) + ``scratch_shape(G, m, K)``: per-block workspaces; the others flat.
    """
    B = H.shape[0]
    nb = block_starts.shape[0] - 1
    n = chars.shape[2] - 1
    P = params.shape[1]
    held = np.zeros(K, dtype=np.bool_)
    for step in range(losses.shape[0]):
        # a stream with fewer than n + 1 characters left starts again at 0 with h = 0
        for s in range(B):
            if positions[s] + n + 1 > book.shape[0]:
                positions[s] = 0
                H[s] = 0.0
        cur = counters[CURRENT]
        live = params[cur]
        transposes_into(WT, VT, live, m, K)  # shared, read-only, by all blocks
        for j in prange(nb):
            first = block_starts[j]
            G = block_starts[j + 1] - first
            xy = chars[j, :G]
            for s in range(G):
                pos = positions[first + s]
                xy[s] = book[pos:pos + n + 1]
            h = hs[j, :(n + 1) * G * m].reshape((n + 1, G, m))
            h[0] = H[first:first + G]
            block_losses[j] = chunk_loss_and_grads_streams(
                block_grads[j], h, ps[j, :n * G * K].reshape((n, G, K)), WT, VT,
                dh_out[j, :n * G * m].reshape((n, G, m)), dh_next[j, :G * m].reshape((G, m)), scratch[j],
                xy[:, :n], xy[:, 1:], live, m, K)
        loss = 0.0
        for j in range(nb):
            loss += block_losses[j]
        loss /= B
        smooth = smoothed(floats, loss)
        held[:] = False
        for j in range(nb):
            for s in range(block_starts[j + 1] - block_starts[j]):
                _mark_held(held, chars[j, s, :n])
        # g = (G_0 + ... + G_{nb-1}) / B, the block sums summed in block order
        for i in prange(P):
            acc = 0.0
            for j in range(nb):
                acc += block_grads[j, i]
            grads[i] = acc / B
        if step_and_keep_best(params, mem, grads, held, counters, floats, smooth, m, K, eta, eps, clip):
            best_H[:] = H
            best_positions[:] = positions
        for j in range(nb):
            first = block_starts[j]
            G = block_starts[j + 1] - first
            H[first:first + G] = hs[j, n * G * m:(n + 1) * G * m].reshape((G, m))
        for s in range(B):
            positions[s] += n
        losses[step] = loss
        smooths[step] = smooth


@njit(inline="always")
def _keep_top_k(p, logits, ranked, k):
    """p[i] = 0 except for the k largest logits (0 < k < K); of equal logits at the boundary,
    the lowest indices stay.   p, logits, ranked (K,) float64: p written, ranked a workspace."""
    K = logits.shape[0]
    ranked[:] = logits
    ranked.sort()
    threshold = ranked[K - k]
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


@njit(**JIT)
def sample_chars(out, H, WVT, prime, uniforms, inv_temperature, top_k, W, UT, V, b, c):
    """Generate N texts of out.shape[1] characters at once, one per row.

    out (N, n) int64: written with the sampled indices.   H (N, m): start states, advanced in
    place through the prime and the first n - 1 sampled characters (the last is not fed).
    WVT (m, m+K): workspace, written with [W.T | V.T] so that one pass over it gives both W h
    and V h for all N texts (half the loop overhead of two passes).   prime (L,) int: inputs fed
    to every text before sampling (may be empty; without it the first character comes from
    softmax(V h + c)).   uniforms (N, n): numbers in [0, 1) that pick each character by inverse
    CDF.   inv_temperature: 1 / T.   top_k: pick only among the top_k most likely characters
    (ties at the boundary broken by index); 0 or K and more: among all.
    W, UT (K, m: U transposed), V, b, c: read.
    Each text goes through exactly the operations it would alone (N = 1), and h_t is computed
    as in ``rnn_forward_streams``, bit for bit.
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
    ranked = np.empty(K)  # sorted copy of the logits, for top_k
    scratch = np.empty((3, N * max(m, K)), dtype=H.dtype)  # tanh in the model's precision, as in training
    L = prime.shape[0]
    for t in range(L + n):
        # W h and o = c + V h for every text in one pass
        for s in range(N):
            wv[s, :m] = 0.0
            for k in range(K):
                wv[s, m + k] = c[k]
        matmul_add(wv, H, WVT)
        if t < L:
            x[:] = prime[t]
        else:
            for s in range(N):
                # p = softmax(o / T), then the first k whose cumulative mass exceeds u * total
                o = wv[s, m:]
                top = _max_of(o)
                for k in range(K):
                    shifted[k] = np.float64(o[k] - top) * inv_temperature
                exp_into(p, shifted, work)
                if 0 < top_k < K:
                    _keep_top_k(p, shifted, ranked, top_k)
                # the total summed in the order of the running sum below, which therefore reaches
                # it exactly and so always passes u * total < total
                total = 0.0
                for k in range(K):
                    total += p[k]
                u = uniforms[s, t - L] * total
                acc = 0.0
                pick = K - 1
                for k in range(K):
                    acc += p[k]
                    if acc > u:
                        pick = k
                        break
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
