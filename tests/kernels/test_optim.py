"""optim: clip and AdaGrad against the reference."""
import numpy as np

from fastrnn import reference
from fastrnn.kernels import optim
from fastrnn.model import Layout

from helpers import assert_close


def test_adagrad_update_clips_and_scales():
    g = np.array([-10.0, -1.0, 0.0, 2.0, 7.0])
    p = np.arange(5.0)
    mem = np.full(5, 0.5)
    p_out, m_out = np.empty(5), np.empty(5)
    optim.adagrad_update(p_out, m_out, p, mem, g, 0.1, 1e-8, 5.0)
    clipped = np.clip(g, -5, 5)
    assert np.array_equal(m_out, 0.5 + clipped ** 2)
    assert_close(p_out, p - 0.1 * clipped / np.sqrt(0.5 + clipped ** 2 + 1e-8))
    rp, rm = {"x": p.copy()}, {"x": mem.copy()}
    reference.adagrad_step(rp, rm, {"x": g}, 0.1, reference.OptimizerSettings(eps=1e-8, clip=5.0))
    assert_close(p_out, rp["x"])


def test_adagrad_passes_over_the_columns_of_U_of_characters_not_held():
    m, K = 6, 5
    rng = np.random.default_rng(0)
    layout = Layout(m, K)
    g, p, mem = rng.normal(0, 4, layout.size), rng.normal(size=layout.size), rng.random(layout.size)
    held = np.array([False, True, False, False, True])
    layout.views(g)["U"][:, ~held] = 0.0  # as the backward leaves them
    p_full, mem_full = p.copy(), mem.copy()
    optim.adagrad_update_inplace(p_full, mem_full, g, 0.1, 1e-8, 5.0)
    optim.adagrad_update_inplace_held(p, mem, g, held, m * m, m, 0.1, 1e-8, 5.0)
    assert np.array_equal(p, p_full) and np.array_equal(mem, mem_full)
    # they are really passed over: with an impossible sum there, an update would turn them
    # into NaN (the square root of a negative number)
    layout.views(mem)["U"][:, ~held] = -1.0
    before = p.copy()
    optim.adagrad_update_inplace_held(p, mem, g, held, m * m, m, 0.1, 1e-8, 5.0)
    assert np.array_equal(layout.views(p)["U"][:, ~held], layout.views(before)["U"][:, ~held])
    assert np.all(layout.views(p)["U"][:, held] != layout.views(before)["U"][:, held])


def test_inplace_and_out_of_place_adagrad_agree():
    rng = np.random.default_rng(0)
    g, p, mem = rng.normal(0, 4, 50), rng.normal(size=50), rng.random(50)
    p_out, m_out = np.empty(50), np.empty(50)
    optim.adagrad_update(p_out, m_out, p, mem, g, 0.1, 1e-8, 5.0)
    optim.adagrad_update_inplace(p, mem, g, 0.1, 1e-8, 5.0)
    assert np.array_equal(p, p_out) and np.array_equal(mem, m_out)
