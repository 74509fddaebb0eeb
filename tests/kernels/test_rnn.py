"""rnn: parameter views; the forward pass, carried on by the sampler bit for bit (the
backward pass is checked through every training update in test_loop.py and by gradcheck)."""
import numpy as np
import pytest

from fastrnn.kernels import rnn, sampler
from fastrnn.kernels.workspace import allocate_workspace
from fastrnn.model import Layout

from helpers import small_state


def test_param_views_match_layout():
    m, K = 4, 3
    flat = np.arange(Layout(m, K).size, dtype=np.float64)
    views = Layout(m, K).views(flat)
    W, UT, V, b, c = rnn.param_views(flat, m, K)
    for got, expected in ((W, views["W"]), (UT, views["U"].T), (V, views["V"]), (b, views["b"]), (c, views["c"])):
        assert np.array_equal(got, expected) and np.shares_memory(got, flat)
    assert views["U"].T.flags.c_contiguous  # the column of U a character uses is contiguous


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sampler_carries_on_the_hidden_state_training_computes(text, dtype):
    state, book = small_state(text, hidden=12, sigma=0.5, dtype=dtype)
    m, K, n = 12, state.vocab.size, 40
    W, U, V, b, c = (state.views()[k] for k in ("W", "U", "V", "b", "c"))
    h0 = np.random.default_rng(0).uniform(-1, 1, m).astype(dtype)
    work = allocate_workspace(1, n, m, K, state.params.shape[0], dtype, np.int64)
    hs, ps, _, _, wh, scratch = work.block_views()
    hs[0, 0] = h0
    rnn.transposes_into(work.WT, work.VT, state.params, m, K)
    x = book[:n].astype(np.int64)
    rnn.rnn_forward(hs, ps, scratch, wh, x[None, :], book[1:n + 1].astype(np.int64)[None, :], work.WT, work.VT,
                    U.T, b, c, hs, np.empty((0, 1, m), dtype), -1)
    H = h0[None, :].copy()  # fed the n characters as a prime; the one sampled character is not fed
    sampler.sample_chars(np.zeros((1, 1), np.int64), H, np.zeros((m, m + K), dtype), x[None, :], np.full((1, 1), 0.5),
                         W, U.T, V, b, c, 1.0, 0)
    assert np.array_equal(H[0], hs[n, 0])
