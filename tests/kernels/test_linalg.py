"""linalg: matmul_add against extended precision, row independence, and bounds, at the host's vector
width and at 256 bits."""
import os
import subprocess
import sys

import numpy as np
import pytest

from fastrnn.kernels import linalg


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_add_is_accurate_and_each_row_independent_of_the_others(dtype):
    rng = np.random.default_rng(0)
    eps = np.finfo(dtype).eps
    for T, J, L in [(1, 1, 1), (1, 100, 100), (2, 9, 3), (3, 17, 7), (2, 7, 5), (4, 8, 8), (5, 25, 13), (7, 3, 16),
                    (6, 12, 24), (4, 20, 27),
                    (8, 100, 100), (9, 33, 17), (25, 100, 80), (12, 5, 67)]:
        coef = rng.normal(size=(J, T)).astype(dtype).T  # strided, as the backward passes it
        A = rng.normal(size=(J, L)).astype(dtype)
        # out is a view with columns after it: the masked tail must leave them alone
        padded = np.full((T, L + 5), 7.0, dtype)
        padded[:, :L] = rng.normal(size=(T, L))
        out = padded[:, :L]
        start = out.copy()
        linalg.matmul_add(out, coef, A)
        exact = start.astype(np.longdouble) + coef.astype(np.longdouble) @ A.astype(np.longdouble)
        bound = 2 * (J + 1) * eps * (np.abs(start) + np.abs(coef) @ np.abs(A))
        assert np.all(np.abs(out - exact) <= bound), (T, J, L)
        assert np.all(padded[:, L:] == 7.0), (T, J, L)
        # each row alone (T = 1, another code path) gives the same bits as in the batch
        for t in range(T):
            row = start[t:t + 1].copy()
            linalg.matmul_add(row, coef[t:t + 1], A)
            assert np.array_equal(row[0], out[t]), (T, J, L, t)


# Run in a child process: a read or write past the end of the last row hits a page the process
# may not touch, and the crash must fail this test rather than end the test run.
GUARDED_MATMUL = """
import ctypes, mmap
import numpy as np
from fastrnn.kernels import linalg

libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
buffers = []

def ending_at_a_guard_page(shape, dtype):
    size = int(np.prod(shape))
    nbytes = size * np.dtype(dtype).itemsize
    pages = -(-nbytes // mmap.PAGESIZE)
    buf = mmap.mmap(-1, (pages + 1) * mmap.PAGESIZE)
    start = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    assert libc.mprotect(start + pages * mmap.PAGESIZE, mmap.PAGESIZE, 0) == 0  # PROT_NONE
    buffers.append(buf)
    return np.frombuffer(buf, dtype, size, pages * mmap.PAGESIZE - nbytes).reshape(shape)

for dtype in (np.float64, np.float32):
    for T in (1, 2, 3, 4, 5, 8, 9):
        for L in list(range(1, 30)) + [67, 80, 100]:
            for J in (1, 9, 12):
                out = ending_at_a_guard_page((T, L), dtype)
                out[:] = 1.0
                A = ending_at_a_guard_page((J, L), dtype)
                A[:] = 2.0
                linalg.matmul_add(out, np.ones((T, J), dtype), A)
                assert np.all(out == 1.0 + 2.0 * J), (dtype, T, J, L)
print("no access past the last row")
"""


@pytest.mark.parametrize("shape", [(100, 100), (7, 3), (384, 1024), (257, 300), (1000, 65), (65, 1009)])
def test_transpose_into_copies_every_element_in_one_pass_or_in_tiles(shape):
    # small arrays in one pass, large ones (from 65,536 elements) in tiles of 16 with ragged edges
    a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out = np.full(shape[::-1], np.nan, np.float32)
    linalg.transpose_into(out, a)
    assert np.array_equal(out, a.T)


@pytest.mark.skipif(sys.platform != "linux", reason="guard pages through libc's mprotect")
def test_matmul_add_never_reads_or_writes_past_the_last_row():
    # out and A end exactly where a page the process cannot touch begins: the last row's masked
    # loads and stores must stop at the row's end
    result = subprocess.run([sys.executable, "-c", GUARDED_MATMUL], capture_output=True, text=True)
    assert result.returncode == 0, (result.returncode, result.stdout + result.stderr)
    assert "no access past the last row" in result.stdout


def test_matmul_add_runs_as_python_too():
    # with the JIT disabled the vector intrinsics are NumPy functions: the test above passes there too
    test = f"{__file__}::test_matmul_add_is_accurate_and_each_row_independent_of_the_others"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
                            capture_output=True, text=True, env=dict(os.environ, NUMBA_DISABLE_JIT="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_matmul_add_at_256_bits_on_a_machine_with_avx512():
    # a machine with AVX-512 runs 512-bit vectors; the 256-bit kernels (AVX2, where a float32 row
    # of 100 ends in half a vector) compile for Zen 3 in a child process, with AVX-512 off
    from llvmlite import binding

    features = binding.get_host_cpu_features()
    if not features.get("avx512f"):
        pytest.skip("this machine runs the 256-bit kernels itself")
    env = dict(os.environ, NUMBA_CPU_NAME="znver3", NUMBA_CPU_FEATURES=",".join(
        ("+" if on and "avx512" not in name and not name.startswith("avx10") else "-") + name
        for name, on in sorted(features.items())))
    width = subprocess.run([sys.executable, "-c", "from fastrnn.kernels import simd; print(simd.VECTOR_BITS)"],
                           capture_output=True, text=True, env=env)
    assert width.stdout.strip() == "256", width.stdout + width.stderr
    tests = [f"{__file__}::{name}" for name in ("test_matmul_add_is_accurate_and_each_row_independent_of_the_others",
                                                 "test_matmul_add_never_reads_or_writes_past_the_last_row")]
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
