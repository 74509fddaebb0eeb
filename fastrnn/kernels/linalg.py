"""Matrix products: ``matmul_add`` and its register tiles, and transposes.

Every product of the kernels goes through ``matmul_add``, which sums each element in one
fixed order on every path, so a stream's numbers do not depend on how many streams are
computed with it.
"""
import numpy as np
from numba import from_dtype, njit, types
from numba.extending import overload

from .config import JIT, UNCACHED
from .simd import HALF, lanes_of, vfma, vload, vstore


@njit(inline="always")
def copy_into(out, a):
    """out (L,) <- a (L,). A loop rather than ``out[:] = a``, whose shape check compiles a
    string-formatting error path (over a second per process)."""
    for i in range(a.shape[0]):
        out[i] = a[i]


@njit(inline="always")
def chunks_into(xy, book, positions):
    """Row s of xy (G, n+1) <- the n + 1 characters of book (N,) from positions[s]: a chunk's
    inputs and, shifted by one, its targets."""
    for s in range(xy.shape[0]):
        pos = positions[s]
        for i in range(xy.shape[1]):
            xy[s, i] = book[pos + i]


@njit(inline="always")
def copy_rows_into(out, a):
    """out (R, L) <- a (R, L), as ``copy_into``."""
    for r in range(a.shape[0]):
        for i in range(a.shape[1]):
            out[r, i] = a[r, i]


@njit(inline="always")
def transpose_into(out, a):
    """out (c, r) written with a.T for a (r, c). Large ones in tiles of 16 x 16: written a
    whole column at a time, the rows of out (r numbers apart) fell into a few cache sets where
    r times the item size is a multiple of 256 bytes, and the copy of an LSTM 256's gate
    gradients (r = 384 rows, float32) took 1.2 ms where tiles take 0.26; small ones (the
    classic cell's 100 x 100) in one pass, which the tiles' bookkeeping would double."""
    R, C = a.shape
    if R * C < 65536:
        for i in range(R):
            for j in range(C):
                out[j, i] = a[i, j]
        return
    for i0 in range(0, R, 16):
        i1 = min(i0 + 16, R)
        for j0 in range(0, C, 16):
            j1 = min(j0 + 16, C)
            for i in range(i0, i1):
                for j in range(j0, j1):
                    out[j, i] = a[i, j]


@njit(**JIT)
def matmul_add(out, coef, A):
    """out (T, L) += coef (T, J) @ A (J, L), of one float dtype; out and A with contiguous rows,
    coef any strides.

    Register tiles of explicit vectors (``simd``): 4 rows x 3 vectors of out (float64; 4 x 2 in
    float32) stay in registers while j runs over all of J, so each vector of A loaded feeds 4
    rows and each coefficient 2 or 3 vectors (LLVM leaves such a tile scalar when it is written
    with plain numbers). Columns past the last whole vector go through masked loads. The rows left over,
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
    float64 and 2 in float32 (where 3 was no faster; benchmarks/README.md). Inside kernels,
    each dtype compiles its own width only."""
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
    """Columns first.. of the tiled rows in 4 x 2 tiles, and a 4 x 1 tile for one vector or less:
    unmasked for a whole vector or half of one (``simd.HALF``), masked otherwise."""
    V = lanes_of(out)
    L = out.shape[1]
    for i in range(first, L, 2 * V):
        width = min(2 * V, L - i)
        for t in range(0, tiled, 4):
            if width == 2 * V:
                _tile_4x2(out, coef, A, t, i, None)
            elif width > V:
                _tile_4x2(out, coef, A, t, i, width - V)
            elif width == V:
                _tile_4x1(out, coef, A, t, i, None)
            elif 2 * width == V:
                _tile_4x1(out, coef, A, t, i, HALF)
            else:
                _tile_4x1(out, coef, A, t, i, width)


@njit(inline="always")
def matmul_add_transposed(out, X, A):
    """out (T, L) += X.T @ A for X (J, T). From J = 64 rows on, through a contiguous copy of
    X.T: the tiles read 4 coefficients per j from 4 rows of it rather than from the one row of
    X that 4 columns of the view share, and the products of a block of 8 streams (J = 200) run
    faster; at one stream (J = 25) the copy costs more than it saves. The sums are
    the same either way."""
    if X.shape[0] >= 64:
        XT = np.empty((X.shape[1], X.shape[0]), dtype=X.dtype)
        transpose_into(XT, X)
        matmul_add(out, XT, A)
    else:
        matmul_add(out, X.T, A)


def compile_transposed_product(dtype) -> None:
    """Compile (or load from the cache) ``matmul_add`` for coefficients read through a
    transposed view, as ``matmul_add_transposed`` runs it for X of fewer than 64 rows: every
    cell's backward pass needs it for its weight gradients, last in its tree. The second process
    of a cold start compiles it first, and the block function compiling in the first process
    then loads it (``build.compile_kernels``)."""
    if hasattr(matmul_add, "compile"):  # not under NUMBA_DISABLE_JIT
        rows = types.Array(from_dtype(np.dtype(dtype)), 2, "C")
        matmul_add.compile((rows, rows.copy(layout="F"), rows))


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
    """Rows t..t+3, columns i..i+count (count <= V; None: V; ``HALF``: V / 2) of ``matmul_add``."""
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
    vectors, where a register tile of one row would carry a few (faster at T = 1). A tail of
    half a vector goes unmasked (``simd.HALF``), others masked.
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
            if 2 * (L - whole) == V:
                o = _eight_terms(out, A, t, j, whole, HALF, c0, c1, c2, c3, c4, c5, c6, c7)
                vstore(out, t, whole, o, HALF)
            elif whole < L:
                o = _eight_terms(out, A, t, j, whole, L - whole, c0, c1, c2, c3, c4, c5, c6, c7)
                vstore(out, t, whole, o, L - whole)
        j += 8
    while j < J:
        for t in range(first, T):
            c = coef[t, j]
            for i in range(0, whole, V):
                vstore(out, t, i, vfma(vload(A, j, i, None), c, vload(out, t, i, None)), None)
            if 2 * (L - whole) == V:
                vstore(out, t, whole, vfma(vload(A, j, whole, HALF), c, vload(out, t, whole, HALF)), HALF)
            elif whole < L:
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
