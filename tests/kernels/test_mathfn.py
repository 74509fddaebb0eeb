"""mathfn: exp, tanh and softmax against NumPy."""
import numpy as np
import pytest

from fastrnn.kernels import mathfn


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
    mathfn.exp_into(out, x, work)
    np.testing.assert_allclose(out, np.exp(exact), rtol=exp_rtol, atol=0)
    t = x[np.abs(x) < 40].copy()
    mathfn.tanh_inplace(t, np.empty((3, t.shape[0]), dtype))
    np.testing.assert_allclose(t, np.tanh(exact[np.abs(x) < 40]), rtol=tanh_rtol, atol=0)
    assert np.array_equal(np.signbit(t), np.signbit(x[np.abs(x) < 40]))
    big = np.array([-1e5, -40.0, 40.0, 1e5], dtype)
    mathfn.tanh_inplace(big, np.empty((3, 4), dtype))
    assert big.tolist() == [-1.0, -1.0, 1.0, 1.0]


def test_softmax_in_several_exp_calls(text):
    rng = np.random.default_rng(0)
    ps = rng.normal(0, 3, (7, 5))
    expected = np.exp(ps - ps.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    mathfn.softmax_rows(ps, np.zeros((3, 15)))  # three rows per exp call: 3 + 3 + 1
    np.testing.assert_allclose(ps, expected, rtol=2e-15, atol=0)  # exp to 4e-16, then a sum and a division
