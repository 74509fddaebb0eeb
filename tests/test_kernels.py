"""The Numba kernels against the NumPy reference, one update at a time from the same state."""
import os
import subprocess
import sys

import numpy as np
import pytest

from fastrnn import kernels, reference
from fastrnn.model import Layout
from fastrnn.sample import sample_indices

from helpers import assert_close, kernel_update, reference_update, small_state


# sigma keeps W h of order 1: larger weights make backprop through time explode, and then
# the gradients themselves are ill-conditioned, whatever computes them.
@pytest.mark.parametrize("hidden, seq_length, seed, sigma", [(5, 7, 1, 0.3), (20, 25, 2, 0.1), (100, 25, 3, 0.01)])
def test_each_update_matches_reference(text, hidden, seq_length, seed, sigma):
    # A book short enough that the walk wraps (epoch end, h reset) within the updates checked.
    book_text = text[: seq_length * 4 + 3]
    # clip 1.0 so that the clip is exercised at every size
    state, book = small_state(book_text, hidden, seq_length, seed, sigma=sigma, clip=1.0)
    state.h[:] = np.random.default_rng(seed).uniform(-0.5, 0.5, hidden)
    clipped = False
    for _ in range(10):
        expected, ref_loss, ref_grads = reference_update(state, book)
        _, got, loss, smooth, grads = kernel_update(state, book)
        assert_close(loss, ref_loss)
        assert_close(smooth, expected.smooth_loss)
        for name in ref_grads:
            assert_close(grads[name], ref_grads[name])
            clipped |= bool(np.any(np.abs(ref_grads[name]) > state.hyper.clip))
        assert_close(got.params, expected.params)
        assert_close(got.adagrad, expected.adagrad)
        assert_close(got.h, expected.h)
        assert (got.position, got.epoch, got.update) == (expected.position, expected.epoch, expected.update)
        state = expected  # the next update starts from the reference's state
    assert state.epoch >= 2, "the walk should have wrapped around the book"
    assert clipped, "the gradient clip should have been exercised"


def test_in_place_update_path_matches_reference(text):
    # With no new best, train_chunks updates the live buffer in place (the other path).
    state, book = small_state(text[:120], hidden=10, seq_length=9, sigma=0.3, clip=1.0)
    for _ in range(5):
        state.best_smooth_loss = -np.inf
        expected, ref_loss, ref_grads = reference_update(state, book)
        trainer, got, loss, _, grads = kernel_update(state, book)
        assert trainer.best_state() is None  # no new best: the in-place branch ran
        assert_close(loss, ref_loss)
        for name in ref_grads:
            assert_close(grads[name], ref_grads[name])
        assert_close(got.params, expected.params)
        assert_close(got.adagrad, expected.adagrad)
        state = expected


def test_many_updates_per_call_equal_single_calls(text):
    # Same implementation, same order of operations: splitting the work must not change a bit.
    state, book = small_state(text[:300], hidden=8, seq_length=10)
    from fastrnn.train import Trainer

    whole = Trainer(state, book)
    l_whole, s_whole = whole.run(40)
    parts = Trainer(state, book)
    pieces = [parts.run(k) for k in (1, 7, 12, 20)]
    assert np.array_equal(l_whole, np.concatenate([p[0] for p in pieces]))
    assert np.array_equal(s_whole, np.concatenate([p[1] for p in pieces]))
    assert np.array_equal(whole.state().params, parts.state().params)
    assert np.array_equal(whole.h, parts.h)


def test_best_model_is_the_one_that_earned_the_lowest_smooth_loss(text):
    state, book = small_state(text[:400], hidden=8, seq_length=10, sigma=0.5)
    from fastrnn.train import Trainer

    trainer = Trainer(state, book)
    snapshots = [trainer.state()]
    smooths = []
    for _ in range(60):
        smooths.append(trainer.run(1)[1][0])
        snapshots.append(trainer.state())
    best_index = int(np.argmin(smooths))
    best = trainer.best_state()
    # update k+1's smooth loss is earned by the model before that update (snapshot k)
    assert best.update == best_index
    assert best.smooth_loss == smooths[best_index]
    assert np.array_equal(best.params, snapshots[best_index].params)
    assert np.array_equal(best.adagrad, snapshots[best_index].adagrad)
    assert np.array_equal(best.h, snapshots[best_index].h)
    assert np.array_equal(trainer.state().params, snapshots[-1].params)


def test_adagrad_update_clips_and_scales():
    g = np.array([-10.0, -1.0, 0.0, 2.0, 7.0])
    p = np.arange(5.0)
    mem = np.full(5, 0.5)
    p_out, m_out = np.empty(5), np.empty(5)
    kernels.adagrad_update(p_out, m_out, p, mem, g, 0.1, 1e-8, 5.0)
    clipped = np.clip(g, -5, 5)
    assert np.array_equal(m_out, 0.5 + clipped ** 2)
    assert_close(p_out, p - 0.1 * clipped / np.sqrt(0.5 + clipped ** 2 + 1e-8))
    rp, rm = {"x": p.copy()}, {"x": mem.copy()}
    reference.adagrad_step(rp, rm, {"x": g}, 0.1, 1e-8, 5.0)
    assert_close(p_out, rp["x"])


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sampler_matches_reference(text, temperature):
    state, book = small_state(text, hidden=12, sigma=0.5)
    h = np.random.default_rng(0).uniform(-1, 1, 12)
    uniforms = np.random.default_rng(5).random(300)
    expected = reference.sample(state.views(), h, int(book[0]), 300, uniforms, temperature)

    class Fixed:
        def random(self, n):
            return uniforms[:n]

    got = sample_indices(state.params, state.vocab, 12, 300, Fixed(), temperature, h=h, prime=book[:1])
    assert got.tolist() == expected
    assert len(set(expected)) > 5


def test_texts_sampled_at_once_are_the_texts_sampled_one_by_one(text):
    state, book = small_state(text, hidden=12, sigma=0.5)
    h = np.random.default_rng(0).uniform(-1, 1, 12)
    args = (state.params, state.vocab, 12, 200)
    rng = np.random.default_rng(3)
    one_by_one = [sample_indices(*args, rng, 0.8, h=h, prime=book[:3]) for _ in range(5)]
    at_once = sample_indices(*args, np.random.default_rng(3), 0.8, h=h, prime=book[:3], num=5)
    assert at_once.shape == (5, 200)
    assert [row.tolist() for row in at_once] == [row.tolist() for row in one_by_one]
    assert len({tuple(row) for row in at_once}) == 5


def test_texts_sampled_in_groups_are_the_same_texts(text, monkeypatch):
    from fastrnn import sample

    state, _ = small_state(text, hidden=12, sigma=0.5)
    whole = sample.sample_texts(state, 60, 5, seed=2, prime="th")
    monkeypatch.setattr(sample, "TEXTS_AT_ONCE", 2)  # groups of 2, 2 and 1
    assert sample.sample_texts(state, 60, 5, seed=2, prime="th") == whole
    assert len(set(whole)) == 5 and all(t.startswith("th") and len(t) == 62 for t in whole)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sampler_carries_on_the_hidden_state_training_computes(text, dtype):
    state, book = small_state(text, hidden=12, sigma=0.5, dtype=dtype)
    m, K, n = 12, state.vocab.size, 40
    W, U, V, b, c = (state.views()[k] for k in ("W", "U", "V", "b", "c"))
    h0 = np.random.default_rng(0).uniform(-1, 1, m).astype(dtype)
    hs = np.zeros((n + 1, m), dtype)
    hs[0] = h0
    WT, VT = np.zeros((m, m), dtype), np.zeros((m, K), dtype)
    kernels.transposes_into(WT, VT, state.params, m, K)
    x = book[:n].astype(np.int64)
    kernels.rnn_forward(hs, np.zeros((n, K), dtype), WT, VT, np.zeros(kernels.scratch_shape(n, m, K), dtype),
                        np.zeros(m, dtype), x, book[1:n + 1].astype(np.int64), U.T, b, c)
    H = h0[None, :].copy()  # fed the n characters as a prime; the one sampled character is not fed
    kernels.sample_chars(np.zeros((1, 1), np.int64), H, np.zeros((m, m + K), dtype), x, np.full((1, 1), 0.5),
                         1.0, 0, W, U.T, V, b, c)
    assert np.array_equal(H[0], hs[n])


def test_softmax_in_several_exp_calls(text):
    rng = np.random.default_rng(0)
    ps = rng.normal(0, 3, (7, 5))
    expected = np.exp(ps - ps.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    kernels.softmax_rows(ps, np.zeros((3, 15)))  # three rows per exp call: 3 + 3 + 1
    np.testing.assert_allclose(ps, expected, rtol=2e-15, atol=0)  # exp to 4e-16, then a sum and a division


def test_sampler_without_prime_starts_from_softmax_of_c(text):
    state, _ = small_state(text, hidden=6)
    c = state.views()["c"]
    c[:] = -50.0
    c[3] = 50.0
    state.views()["V"][:] = 0.0
    out = sample_indices(state.params, state.vocab, 6, 5, np.random.default_rng(0))
    assert out.tolist() == [3] * 5


def test_param_views_match_layout():
    m, K = 4, 3
    flat = np.arange(Layout(m, K).size, dtype=np.float64)
    views = Layout(m, K).views(flat)
    W, UT, V, b, c = kernels.param_views(flat, m, K)
    for got, expected in ((W, views["W"]), (UT, views["U"].T), (V, views["V"]), (b, views["b"]), (c, views["c"])):
        assert np.array_equal(got, expected) and np.shares_memory(got, flat)
    assert views["U"].T.flags.c_contiguous  # the column of U a character uses is contiguous


def test_adagrad_passes_over_the_columns_of_U_of_characters_not_held():
    m, K = 6, 5
    rng = np.random.default_rng(0)
    layout = Layout(m, K)
    g, p, mem = rng.normal(0, 4, layout.size), rng.normal(size=layout.size), rng.random(layout.size)
    held = np.array([False, True, False, False, True])
    layout.views(g)["U"][:, ~held] = 0.0  # as the backward leaves them
    p_full, mem_full = p.copy(), mem.copy()
    kernels.adagrad_update_inplace(p_full, mem_full, g, 0.1, 1e-8, 5.0)
    kernels.adagrad_update_inplace_held(p, mem, g, held, m, K, 0.1, 1e-8, 5.0)
    assert np.array_equal(p, p_full) and np.array_equal(mem, mem_full)
    # they are really passed over: with an impossible sum there, an update would turn them
    # into NaN (the square root of a negative number)
    layout.views(mem)["U"][:, ~held] = -1.0
    before = p.copy()
    kernels.adagrad_update_inplace_held(p, mem, g, held, m, K, 0.1, 1e-8, 5.0)
    assert np.array_equal(layout.views(p)["U"][:, ~held], layout.views(before)["U"][:, ~held])
    assert np.all(layout.views(p)["U"][:, held] != layout.views(before)["U"][:, held])


def test_inplace_and_out_of_place_adagrad_agree():
    rng = np.random.default_rng(0)
    g, p, mem = rng.normal(0, 4, 50), rng.normal(size=50), rng.random(50)
    p_out, m_out = np.empty(50), np.empty(50)
    kernels.adagrad_update(p_out, m_out, p, mem, g, 0.1, 1e-8, 5.0)
    kernels.adagrad_update_inplace(p, mem, g, 0.1, 1e-8, 5.0)
    assert np.array_equal(p, p_out) and np.array_equal(mem, m_out)


# range of x where exp stays a normal number; tolerances: exp within about 1.8 ulp (float64) and
# 1 ulp (float32); tanh's 1 - 2 / (e + 1) just above 0.25 triples the error of the division
@pytest.mark.parametrize("dtype, low, high, exp_rtol, tanh_rtol", [(np.float64, -708, 709, 4e-16, 2e-15),
                                                                   (np.float32, -86, 88, 1.2e-7, 4e-7)])
def test_vectorised_exp_and_tanh_are_accurate(dtype, low, high, exp_rtol, tanh_rtol):
    rng = np.random.default_rng(0)
    tiny = np.finfo(dtype).tiny
    x = np.concatenate([np.linspace(low, high, 20001), rng.normal(0, 1, 5000), rng.normal(0, 1e-3, 1000),
                        [0.0, -0.0, tiny, -tiny, 0.25, -0.25, np.nextafter(dtype(0.25), dtype(0))]]).astype(dtype)
    exact = x.astype(np.float64)  # float32 results are checked against float64 NumPy
    out, work = np.empty_like(x), np.empty_like(x)
    kernels.exp_into(out, x, work)
    np.testing.assert_allclose(out, np.exp(exact), rtol=exp_rtol, atol=0)
    t = x[np.abs(x) < 40].copy()
    kernels.tanh_inplace(t, np.empty((3, t.shape[0]), dtype))
    np.testing.assert_allclose(t, np.tanh(exact[np.abs(x) < 40]), rtol=tanh_rtol, atol=0)
    assert np.array_equal(np.signbit(t), np.signbit(x[np.abs(x) < 40]))
    big = np.array([-1e5, -40.0, 40.0, 1e5], dtype)
    kernels.tanh_inplace(big, np.empty((3, 4), dtype))
    assert big.tolist() == [-1.0, -1.0, 1.0, 1.0]


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
        kernels.matmul_add(out, coef, A)
        exact = start.astype(np.longdouble) + coef.astype(np.longdouble) @ A.astype(np.longdouble)
        bound = 2 * (J + 1) * eps * (np.abs(start) + np.abs(coef) @ np.abs(A))
        assert np.all(np.abs(out - exact) <= bound), (T, J, L)
        assert np.all(padded[:, L:] == 7.0), (T, J, L)
        # each row alone (T = 1, another code path) gives the same bits as in the batch
        for t in range(T):
            row = start[t:t + 1].copy()
            kernels.matmul_add(row, coef[t:t + 1], A)
            assert np.array_equal(row[0], out[t]), (T, J, L, t)


# Run in a child process: a read or write past the end of the last row hits a page the process
# may not touch, and the crash must fail this test rather than end the test run.
GUARDED_MATMUL = """
import ctypes, mmap
import numpy as np
from fastrnn import kernels

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
                kernels.matmul_add(out, np.ones((T, J), dtype), A)
                assert np.all(out == 1.0 + 2.0 * J), (dtype, T, J, L)
print("no access past the last row")
"""


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
