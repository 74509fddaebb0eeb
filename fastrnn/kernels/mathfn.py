"""Elementwise maths in the workspace's precision: exp, tanh, the sigmoid and the row softmax.

The pip build of llvmlite has no vector math library, so ``math.exp`` and ``math.tanh`` in a
kernel are scalar library calls; these are polynomials that LLVM vectorises, one version per
float dtype, accurate to a few ulp of it (the tests compare them with NumPy).
"""
import math
from typing import NamedTuple

import numpy as np
from numba import njit
from numba.core.errors import TypingError
from numba.extending import overload
from numba.np.numpy_support import as_dtype

from .config import JIT, UNCACHED


# Each version works in the precision of its workspace, float64 or float32 (twice the lanes to
# a vector and half the polynomial). ``_exp_kernel`` and ``_tanh_kernel`` build one per dtype
# from its figures.
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
    unvectorised (several times slower). exp(x) = 2^k exp(r), x = k ln2 + r; exp(r) by a Taylor
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


@njit(inline="always")
def sigmoid_inplace(a, work):
    """a (L,) <- 1 / (1 + exp(-a)), in the precision of work (3, >= L): workspace. No
    cancellation anywhere on the line, so it is accurate to a few ulp for every a."""
    L = a.shape[0]
    neg, e, w = work[0, :L], work[1, :L], work[2, :L]
    for i in range(L):
        neg[i] = -a[i]
    exp_into(e, neg, w)
    for i in range(L):
        a[i] = 1.0 / (1.0 + e[i])


@njit(inline="always")
def max_of(x):
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
def sum_of(x):
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
            top = max_of(p)
            for k in range(K):
                shifted[r * K + k] = p[k] - top
        exp_into(e, shifted, scratch[2, :rows * K])
        for r in range(rows):
            inv = 1.0 / sum_of(e[r * K:(r + 1) * K])
            p = ps[first + r]
            for k in range(K):
                p[k] = e[r * K + k] * inv


@njit(inline="always")
def output_gradients_into(dc, ps, ys):
    """The softmax cross-entropy's gradient: each p_t of ps (n, G, K) overwritten with
    g_t = p_t - onehot(y_t), the gradient of the summed loss w.r.t. the logits o_t, and
    dc (K,) += sum_t g_t.   ys (G, n) int: the targets."""
    n, G, K = ps.shape
    for t in range(n):
        for s in range(G):
            g = ps[t, s]
            g[ys[s, t]] -= 1.0
            for k in range(K):
                dc[k] += g[k]
