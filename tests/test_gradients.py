import json

import numpy as np
import pytest

from fastrnn.cells import Layout
from fastrnn.gradients import CheckSettings, check_gradients, gradient_check, kernel_grads, relative_error

from helpers import one_line_error, run, stacks


@pytest.mark.parametrize("hidden", [5, 20])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_agree_for_every_parameter(hidden, seed):
    results = check_gradients(settings=CheckSettings(hidden=hidden, seed=seed, chunks=1))
    for impl in ("kernels", "reference"):
        assert [e.param for e in results[impl]] == ["b", "c", "U", "W", "V"]
        for e in results[impl]:
            assert e.max_rel < 1e-7, (impl, e)


def test_float32_kernels_pass_a_float32_tolerance():
    results = check_gradients(settings=CheckSettings(dtype="float32"))
    assert max(e.max_rel for e in results["kernels"]) < 1e-3
    assert max(e.max_rel for e in results["reference"]) < 1e-7


def _transposed_dW(state, x, y, h0):
    grads = {k: v.copy() for k, v in kernel_grads(state, x, y, h0).items()}
    grads["W"] = grads["W"].T.copy()
    return grads


def _no_recurrent_term(state, x, y, h0):
    # Backprop truncated to one step: drops W^T da from dh (and, for the LSTM, f dc from dc),
    # as a classic bug would.
    from fastrnn import reference

    params = {k: v.astype(np.float64) for k, v in state.views().items()}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    h = h0
    for t in range(len(x)):
        _, g, h_next = reference.loss_and_grads(params, x[t:t + 1], y[t:t + 1], h)
        for k in grads:
            grads[k] += g[k]
        h = h_next
    return grads


@pytest.mark.parametrize("wrong", [_transposed_dW, _no_recurrent_term])
def test_a_wrong_gradient_is_caught(wrong):
    results = check_gradients(kernel_grads_fn=wrong)
    worst = {e.param: e.max_rel for e in results["kernels"]}
    assert worst["W"] > 1e-3
    assert max(e.max_rel for e in results["reference"]) < 1e-7


@pytest.mark.parametrize("cell,layers", stacks(1, 2))
def test_gradients_of_a_stack_agree_for_every_array(cell, layers):
    # the second chunk starts from a random state: h and, for the LSTM, c
    results = check_gradients(settings=CheckSettings(cell=cell, layers=layers, chunks=1))
    names = list(Layout(5, 2, cell, layers).shapes())
    for impl in ("kernels", "reference"):
        assert [e.param for e in results[impl]] == names
        for e in results[impl]:
            assert e.max_rel < 1e-6, (impl, e)


def _swapped_input_and_forget(state, x, y, h0):
    # the LSTM's i and f blocks of layer 0's input weights exchanged, as a wrong gate order would
    grads = {k: v.copy() for k, v in kernel_grads(state, x, y, h0).items()}
    m = state.hyper.hidden
    dW = grads["weight_ih_l0"]
    dW[:m], dW[m:2 * m] = dW[m:2 * m].copy(), dW[:m].copy()
    return grads


@pytest.mark.parametrize("wrong", [_swapped_input_and_forget, _no_recurrent_term])
def test_a_wrong_stack_gradient_is_caught(wrong):
    results = check_gradients(settings=CheckSettings(cell="lstm", layers=2), kernel_grads_fn=wrong)
    failed = {e.param for e in results["kernels"] if e.max_rel > 1e-3}
    if wrong is _swapped_input_and_forget:
        assert failed == {"weight_ih_l0"}
    else:  # the output layer's gradient needs no step before its own
        assert {"weight_hh_l0", "weight_hh_l1"} <= failed and not failed & {"head.weight", "head.bias"}
    assert max(e.max_rel for e in results["reference"]) < 1e-6


def test_the_table_names_the_stack_and_its_arrays():
    check = gradient_check(settings=CheckSettings(cell="gru", layers=2, seq_length=10))
    lines = check.table().splitlines()
    assert lines[0].startswith("gradient check: 2-layer gru, m=5, 1 chunk(s) of 10")
    assert [line.split()[0] for line in lines[2:]] == list(Layout(5, 2, "gru", 2).shapes())
    assert check.passed
    as_dict = check.as_dict()
    assert (as_dict["cell"], as_dict["layers"]) == ("gru", 2)
    assert [row["param"] for row in as_dict["results"]["reference"]][-2:] == ["head.weight", "head.bias"]
    classic = gradient_check(settings=CheckSettings(seq_length=10))
    assert classic.table().startswith("gradient check: m=5, 1 chunk(s) of 10")
    assert (classic.as_dict()["cell"], classic.as_dict()["layers"]) == ("rnn", 1)


def test_relative_error_formula():
    assert relative_error(np.array([1.0]), np.array([1.0]))[0] == 0.0
    assert relative_error(np.array([3.0]), np.array([1.0]))[0] == pytest.approx(0.5)
    assert relative_error(np.array([0.0]), np.array([1e-9]))[0] == pytest.approx(1e-3)


def test_command_table_json_and_exit_codes(tmp_path):
    result = run(["gradcheck"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[2:7]] == ["b", "c", "U", "W", "V"]
    assert lines[-1] == "passed"
    as_json = run(["gradcheck", "--json", "--hidden", "4"])
    data = json.loads(as_json.stdout)
    assert data["passed"] and len(data["results"]["kernels"]) == 5
    too_strict = run(["gradcheck", "--tol", "1e-15"])
    one_line_error(too_strict, 1, "gradient check failed")
    book = tmp_path / "b.txt"
    book.write_text("short")
    one_line_error(run(["gradcheck", str(book)]), 1, "seq_length + 1")
    one_line_error(run(["gradcheck", str(tmp_path / "none.txt")]), 1, "no such file")
