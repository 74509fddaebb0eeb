"""The NumPy reference for every cell and any number of layers, against computations that do
not share its code: finite differences, the equations written out by hand, PyTorch."""
import numpy as np
import pytest

from fastrnn import reference
from fastrnn.cells import CELLS, Layout
from fastrnn.gradients import STENCIL, numerical_grads, relative_error
from fastrnn.text import build_vocab

from helpers import stacks

TEXT = "a small cat sat on a tall mat; a tall cat ran."  # a few characters, many repeats


def random_model(cell, layers, m, K, seed=0, scale=0.5, dtype=np.float64):
    """(layout, params): a model's arrays as named views of one flat buffer (the input weights of
    layer 0 transposed, as training stores them), drawn N(0, scale)."""
    layout = Layout(m, K, cell, layers)
    flat = np.random.default_rng(seed).normal(0.0, scale, layout.size).astype(dtype)
    return layout, layout.views(flat)


def encoded(text=TEXT):
    vocab = build_vocab(text)
    return vocab.size, vocab.encode(text)


def random_state(layout, seed=1, dtype=np.float64):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, layout.state_size).astype(dtype)


def test_the_model_is_read_from_its_arrays():
    for cell in CELLS:
        for layers in (1, 2, 3):
            _, params = random_model(cell, layers, 4, 7)
            assert reference.architecture(params) == (cell, layers, 4)
    layout = Layout(6, 7)
    assert layout.classic and reference.architecture(layout.views(np.zeros(layout.size))) == ("rnn", 1, 6)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_gradients_match_finite_differences(cell, layers):
    K, book = encoded()
    m = {1: 3, 2: 4}[layers] + (cell == "lstm")
    layout, params = random_model(cell, layers, m, K)
    h0 = random_state(layout)
    x, y = book[:12], book[1:13]
    loss, grads, last = reference.loss_and_grads(params, x, y, h0)
    numerical = numerical_grads(params, x, y, h0, 1e-4)
    assert list(grads) == list(layout.shapes())
    for name in layout.shapes():
        assert grads[name].shape == params[name].shape
        assert np.max(relative_error(grads[name], numerical[name])) < 1e-7, name
    loss_again, _, hs, _ = reference.forward(params, x, y, h0)
    assert loss == loss_again and np.array_equal(last, hs[len(x) - 1]) and last.shape == (layout.state_size,)


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_are_the_derivative_of_its_own_loss(cell):
    # the reference's own forward pass, in extended precision, differenced at a few entries
    K, book = encoded()
    layout, params = random_model(cell, 2, 3, K, seed=2)
    h0 = random_state(layout, seed=3)
    x, y = book[5:15], book[6:16]
    grads = reference.loss_and_grads(params, x, y, h0)[1]
    wide = {name: v.astype(np.longdouble) for name, v in params.items()}
    rng = np.random.default_rng(0)
    step = 1e-4
    for name, array in wide.items():
        for _ in range(4):
            index = tuple(rng.integers(0, n) for n in array.shape)
            numerical = 0.0
            for k, weight in STENCIL:
                nudged = dict(wide)
                nudged[name] = array.copy()
                nudged[name][index] += k * step
                numerical += weight * reference.forward(nudged, x, y, h0.astype(np.longdouble))[0]
            numerical = float(numerical / (12 * step))
            assert relative_error(grads[name][index], numerical) < 1e-7, (name, index)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def softmax(o):
    e = np.exp(o - o.max())
    return e / e.sum()


def test_one_lstm_step_by_hand():
    K, book = encoded()
    m = 4
    layout, p = random_model("lstm", 1, m, K, seed=4)
    state = random_state(layout, seed=5)
    h, c = state[:m], state[m:]
    x, y = int(book[3]), int(book[4])
    W, U, bi, bh = p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"]
    block = {gate: slice(j * m, (j + 1) * m) for j, gate in enumerate("ifgo")}
    gate = {g: W[block[g], x] + bi[block[g]] + U[block[g]] @ h + bh[block[g]] for g in "ifgo"}
    i, f, g, o = sigmoid(gate["i"]), sigmoid(gate["f"]), np.tanh(gate["g"]), sigmoid(gate["o"])
    c_t = f * c + i * g
    h_t = o * np.tanh(c_t)
    p_t = softmax(p["head.weight"] @ h_t + p["head.bias"])
    loss, _, hs, ps = reference.forward(p, [x], [y], state)
    np.testing.assert_allclose(hs[0], np.concatenate([h_t, c_t]), rtol=1e-14)
    np.testing.assert_allclose(ps[0], p_t, rtol=1e-14)
    assert loss == pytest.approx(-np.log(p_t[y]), rel=1e-14)


def test_one_gru_step_by_hand():
    # r multiplies W_hn h + b_hn, PyTorch's placement, not W_hn (r * h)
    K, book = encoded()
    m = 4
    layout, p = random_model("gru", 1, m, K, seed=6)
    h = random_state(layout, seed=7)
    x = int(book[8])
    W, U, bi, bh = p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"]
    r_, z_, n_ = slice(0, m), slice(m, 2 * m), slice(2 * m, 3 * m)
    r = sigmoid(W[r_, x] + bi[r_] + U[r_] @ h + bh[r_])
    z = sigmoid(W[z_, x] + bi[z_] + U[z_] @ h + bh[z_])
    n = np.tanh(W[n_, x] + bi[n_] + r * (U[n_] @ h + bh[n_]))
    _, _, hs, _ = reference.forward(p, [x], [x], h)
    np.testing.assert_allclose(hs[0], (1 - z) * n + z * h, rtol=1e-14)


def test_two_layers_by_hand():
    # layer 1 reads layer 0's new h; the output reads layer 1's; the state is [h0, h1]
    K, book = encoded()
    m = 3
    layout, p = random_model("rnn", 2, m, K, seed=8)
    state = random_state(layout, seed=9)
    h = [state[:m], state[m:]]
    xs = [int(v) for v in book[:3]]
    expected = []
    for x in xs:
        h[0] = np.tanh(p["weight_ih_l0"][:, x] + p["bias_ih_l0"] + p["weight_hh_l0"] @ h[0] + p["bias_hh_l0"])
        h[1] = np.tanh(p["weight_ih_l1"] @ h[0] + p["bias_ih_l1"] + p["weight_hh_l1"] @ h[1] + p["bias_hh_l1"])
        expected.append(softmax(p["head.weight"] @ h[1] + p["head.bias"]))
    _, _, hs, ps = reference.forward(p, xs, xs, state)
    np.testing.assert_allclose(hs[2], np.concatenate(h), rtol=1e-14)
    np.testing.assert_allclose(np.array([ps[t] for t in range(3)]), expected, rtol=1e-14)


def test_the_classic_model_is_the_one_layer_rnn_with_one_bias():
    K, book = encoded()
    classic, p = random_model("rnn", 1, 5, K, seed=10)
    assert classic.classic
    stack = {"weight_ih_l0": p["U"], "weight_hh_l0": p["W"], "bias_ih_l0": p["b"], "bias_hh_l0": np.zeros(5),
             "head.weight": p["V"], "head.bias": p["c"]}
    h = random_state(classic, seed=11)
    x, y = book[:15], book[1:16]
    loss, grads, last = reference.loss_and_grads(p, x, y, h)
    stack_loss, stack_grads, stack_last = reference.loss_and_grads(stack, x, y, h)
    assert stack_loss == pytest.approx(loss, rel=1e-13)
    np.testing.assert_allclose(stack_last, last, rtol=1e-13)
    for ours, theirs in (("U", "weight_ih_l0"), ("W", "weight_hh_l0"), ("b", "bias_ih_l0"), ("V", "head.weight"),
                         ("c", "head.bias")):
        np.testing.assert_allclose(stack_grads[theirs], grads[ours], rtol=1e-12, atol=1e-15)
    uniforms = np.random.default_rng(0).random(40)
    assert reference.sample(stack, h, 3, 40, uniforms) == reference.sample(p, h, 3, 40, uniforms)


@pytest.mark.parametrize("cell", CELLS)
def test_two_streams_update_with_the_mean_of_their_gradients(cell):
    K, book = encoded()
    n = 6
    layout, params = random_model(cell, 2, 3, K, seed=12)
    mem = {name: np.full_like(v, 0.5) for name, v in params.items()}
    H = np.stack([random_state(layout, seed=13), random_state(layout, seed=14)])
    positions = np.array([4, len(book) - n])  # the second has fewer than n + 1 left: it starts again at 0
    expected = [reference.loss_and_grads(params, book[4:4 + n], book[5:5 + n], H[0]),
                reference.loss_and_grads(params, book[:n], book[1:n + 1], np.zeros(layout.state_size))]
    mean = {name: (expected[0][1][name] + expected[1][1][name]) / 2 for name in params}
    new_params = {name: v.copy() for name, v in params.items()}
    new_mem = {name: v.copy() for name, v in mem.items()}
    for name in params:
        g = np.clip(mean[name], -5.0, 5.0)
        new_mem[name] += g * g
        new_params[name] -= 0.1 * g / np.sqrt(new_mem[name] + 1e-8)
    loss, grads = reference.train_step(params, mem, H, positions, book, n)
    assert loss == pytest.approx((expected[0][0] + expected[1][0]) / 2, rel=1e-14)
    assert positions.tolist() == [4 + n, n]
    for s in range(2):
        np.testing.assert_array_equal(H[s], expected[s][2])
    for name in params:
        np.testing.assert_allclose(grads[name], mean[name], rtol=1e-14, atol=1e-16)
        np.testing.assert_allclose(params[name], new_params[name], rtol=1e-14, atol=1e-16)
        np.testing.assert_allclose(mem[name], new_mem[name], rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_sampling_follows_the_forward_pass(cell, layers):
    K, book = encoded()
    layout, params = random_model(cell, layers, 4, K, seed=15, scale=1.0)
    h = random_state(layout, seed=16)
    uniforms = np.random.default_rng(17).random(30)
    first = int(book[0])
    out = reference.sample(params, h, first, 30, uniforms)
    assert out == reference.sample(params, h, first, 30, uniforms) and len(set(out)) > 1
    # each pick is the inverse CDF, at its uniform, of the probabilities after the inputs before it
    _, _, hs, ps = reference.forward(params, [first] + out[:-1], out, h)
    for t, u in enumerate(uniforms):
        assert out[t] == min(int(np.searchsorted(np.cumsum(ps[t]), u * ps[t].sum(), side="right")), K - 1)
    # without an input, the first pick comes from the state itself
    top = h[(layers - 1) * 4:layers * 4]
    V, c = (params["V"], params["c"]) if layout.classic else (params["head.weight"], params["head.bias"])
    p0 = softmax(V @ top + c)
    alone = reference.sample(params, h, None, 5, uniforms)
    assert alone[0] == int(np.searchsorted(np.cumsum(p0), uniforms[0] * p0.sum(), side="right"))
    assert alone[1:] == reference.sample(params, h, alone[0], 4, uniforms[1:])
    greedy = reference.sample(params, hs[3], out[3], 5, uniforms, top_k=1)
    assert greedy[0] == int(np.argmax(ps[4]))


@pytest.mark.parametrize("cell", CELLS)
def test_float32_in_float32_out(cell):
    K, book = encoded()
    layout, params = random_model(cell, 2, 3, K, dtype=np.float32)
    loss, grads, last = reference.loss_and_grads(params, book[:8], book[1:9], random_state(layout))
    assert last.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values())
    assert np.asarray(loss).dtype == np.float32


@pytest.mark.parametrize("cell,layers", stacks(1, 2))
def test_one_chunk_as_pytorch_computes_it(cell, layers):
    torch = pytest.importorskip("torch")
    Cell = getattr(torch.nn, cell.upper(), None)  # torch.nn.RNN, GRU, LSTM
    if Cell is None:
        pytest.skip(f"PyTorch has no {cell} cell to compare with")
    K, book = encoded()
    m = 5
    layout, params = random_model(cell, layers, m, K, seed=18)
    state = random_state(layout, seed=19)
    x, y = book[:20], book[1:21]
    loss, grads, last = reference.loss_and_grads(params, x, y, state)

    rnn = Cell(input_size=K, hidden_size=m, num_layers=layers, batch_first=True, dtype=torch.float64)
    head = torch.nn.Linear(m, K, dtype=torch.float64)
    tensors = {name: torch.tensor(np.ascontiguousarray(v)) for name, v in params.items()}
    rnn.load_state_dict({name: t for name, t in tensors.items() if not name.startswith("head.")})
    head.load_state_dict({"weight": tensors["head.weight"], "bias": tensors["head.bias"]})
    carried = torch.tensor(state).reshape(-1, layers, 1, m)  # (h or c, layer, batch 1, m)
    start = tuple(v.contiguous() for v in carried) if len(carried) > 1 else carried[0].contiguous()
    inputs = torch.nn.functional.one_hot(torch.tensor(x.astype(np.int64))[None, :], K).to(torch.float64)
    out, end = rnn(inputs, start)
    torch_loss = torch.nn.functional.cross_entropy(head(out[0]), torch.tensor(y.astype(np.int64)), reduction="sum")
    torch_loss.backward()

    assert float(loss) == pytest.approx(torch_loss.item(), rel=1e-12)
    end = torch.cat([v.reshape(-1) for v in end]) if isinstance(end, tuple) else end.reshape(-1)
    np.testing.assert_allclose(last, end.detach().numpy(), rtol=1e-12, atol=1e-14)
    named = dict(rnn.named_parameters())
    named.update({"head." + name: p for name, p in head.named_parameters()})
    for name in params:
        np.testing.assert_allclose(grads[name], named[name].grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=name)
