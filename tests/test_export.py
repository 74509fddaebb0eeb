"""Models as JSON: read back exactly, by fastrnn.load and by fastrnn sample, for every cell;
a stack's arrays load into PyTorch under their own names."""
import json

import numpy as np
import pytest

import fastrnn
from fastrnn import reference
from fastrnn.cells import CELLS
from fastrnn.export import model_dict, write_model_json
from fastrnn.model import CheckpointError, Hyper, init_state, load_checkpoint
from fastrnn.text import build_vocab

from helpers import one_line_error, run

TEXT = "the rain in spain falls mainly on the plain. Zoë’s café 𝄞\n"
MODELS = [(cell, layers) for cell in CELLS for layers in (1, 2)]


def random_state(cell: str, layers: int, hidden: int = 8, seed: int = 0, dtype: str = "float64", embedding: int = 0):
    """A model of ``cell`` (after an input embedding of width ``embedding``) whose weights and
    biases are all N(0, 1) (far larger than a new model's, so that its probabilities are far
    from uniform), with a random carried state and a next character."""
    state = init_state(build_vocab(TEXT), Hyper(hidden=hidden, cell=cell, layers=layers, seed=seed, dtype=dtype,
                                                embedding=embedding))
    rng = np.random.default_rng(seed + 100)
    state.params[:] = rng.normal(0.0, 1.0, state.params.size)
    state.h[:] = rng.uniform(-1.0, 1.0, state.h.size)
    state.next_char = int(state.vocab.encode("r")[0])
    return state


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_json_round_trips_exactly(tmp_path, text, dtype):
    done = fastrnn.train(text=text, out=tmp_path / "run", steps=80, hidden=10, dtype=dtype, progress=False)
    result = run(["export", done.dir, "-o", str(tmp_path / "model.json")])
    assert result.exit_code == 0, result.output
    original, exported = done.best_model, fastrnn.load(tmp_path / "model.json")
    for name in ("W", "U", "V", "b", "c"):
        assert np.array_equal(getattr(original, name), getattr(exported, name))
        assert getattr(exported, name).dtype == np.dtype(dtype)
    assert exported.vocab == original.vocab and exported.hyper == original.hyper
    assert np.array_equal(exported._state.h, original._state.h)
    assert exported._state.next_char == original._state.next_char is not None
    from_json = run(["sample", "--checkpoint", str(tmp_path / "model.json"), "--len", "200", "--seed", "5"])
    assert from_json.stdout == run(["sample", "--checkpoint", done.dir, "--len", "200", "--seed", "5"]).stdout
    document = json.loads((tmp_path / "model.json").read_text(encoding="utf-8"))
    assert document["format"] == "fastrnn-model" and document["format_version"] == 3
    assert len(document["W"]) == 10 and isinstance(document["vocab"], str)


def test_bad_json_models_are_one_line(tmp_path, text):
    done = fastrnn.train(text=text, out=tmp_path / "run", steps=20, hidden=6, progress=False)
    done.best_model.export(tmp_path / "good.json")
    document = json.loads((tmp_path / "good.json").read_text())
    cases = {"torn.json": (tmp_path / "good.json").read_text()[:500], "foreign.json": '{"weights": [1, 2]}',
             "shape.json": json.dumps(dict(document, W=[[0.0]])),
             "vocab.json": json.dumps(dict(document, vocab=document["vocab"][::-1])),
             "next.json": json.dumps(dict(document, next_char=10_000))}
    for name, content in cases.items():
        (tmp_path / name).write_text(content)
        one_line_error(run(["sample", "--checkpoint", str(tmp_path / name)]), 1, "not a fastrnn JSON model")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a directory should be")
    one_line_error(run(["export", done.dir, "-o", str(blocked / "model.json")]), 1, "blocked")
    assert not (tmp_path / "model.json").exists()


def test_a_json_model_is_known_by_its_contents_not_its_name(tmp_path, text):
    done = fastrnn.train(text=text, out=tmp_path / "run", steps=20, hidden=6, progress=False)
    done.best_model.export(tmp_path / "model")  # no .json
    assert fastrnn.load(tmp_path / "model").sample(50, seed=1) == done.best_model.sample(50, seed=1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell,layers,embedding", [(cell, layers, 0) for cell, layers in MODELS]
                         + [(cell, 1, 5) for cell in CELLS])
def test_every_cell_round_trips_exactly(tmp_path, cell, layers, embedding, dtype):
    state = random_state(cell, layers, dtype=dtype, embedding=embedding)
    write_model_json(tmp_path / "model.json", state)
    back = fastrnn.load(tmp_path / "model.json")._state
    assert back.hyper == state.hyper and back.vocab.chars == state.vocab.chars and back.next_char == state.next_char
    assert back.params.dtype == np.dtype(dtype) and back.h.dtype == np.dtype(dtype)
    assert np.array_equal(back.params, state.params) and np.array_equal(back.h, state.h)



def test_a_json_stack_samples_as_its_checkpoint(tmp_path):
    from fastrnn.model import save_checkpoint

    state = random_state("lstm", 2)
    save_checkpoint(tmp_path / "model.npz", state)
    write_model_json(tmp_path / "model.json", state)
    args = ["--len", "200", "--seed", "5", "--prime", "the "]
    from_json = run(["sample", "--checkpoint", str(tmp_path / "model.json")] + args)
    assert from_json.exit_code == 0, from_json.output
    assert from_json.stdout == run(["sample", "--checkpoint", str(tmp_path / "model.npz")] + args).stdout

@pytest.mark.parametrize("cell,layers", MODELS)
def test_params_are_pytorchs_state_dict(cell, layers):
    state = random_state(cell, layers)
    layout = state.layout
    document = model_dict(state)
    expected = layout.torch_state_dict(state.params)
    assert list(document["params"]) == list(expected)
    for name, array in expected.items():
        assert np.array_equal(np.array(document["params"][name]), array), name
    assert (document["format_version"], document["cell"], document["layers"], document["hidden"]) == (
        3, cell, layers, 8)
    carried = layout.state_views(state.h)
    assert sorted(k for k in document if k in ("h", "c", "W", "U", "V", "b")) == (
        ["U", "V", "W", "b", "c", "h"] if layout.classic else sorted(carried))
    for name, view in carried.items():
        assert np.array_equal(np.array(document[name]), view)
    if not layout.classic:
        assert np.shape(document["h"]) == (layers, 8)
        return
    # the classic model keeps format 1's arrays, the same numbers
    views = state.views()
    for name in ("W", "U", "V", "b", "c"):
        assert np.array_equal(np.array(document[name]), views[name]), name
    assert np.shape(document["h"]) == (8,)
    assert not np.any(document["params"]["bias_hh_l0"])
    assert document["params"]["weight_hh_l0"] == document["W"] and document["params"]["weight_ih_l0"] == document["U"]


def test_format_1_documents_still_read(tmp_path):
    state = random_state("rnn", 1)
    document = model_dict(state)
    old = {k: v for k, v in document.items() if k not in ("cell", "layers", "hidden", "params")}
    old["format_version"] = 1
    old["hyper"] = {k: v for k, v in old["hyper"].items() if k not in ("cell", "layers")}  # format 1's hyper
    (tmp_path / "old.json").write_text(json.dumps(old))
    back = load_checkpoint(tmp_path / "old.json")
    assert back.hyper == state.hyper and np.array_equal(back.params, state.params)
    assert np.array_equal(back.h, state.h) and back.next_char == state.next_char


def bad_document_message(tmp_path, document) -> str:
    (tmp_path / "bad.json").write_text(json.dumps(document))
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(tmp_path / "bad.json")
    message = str(caught.value)
    assert "\n" not in message and "not a fastrnn JSON model" in message
    return message


def test_bad_documents_of_every_cell_are_one_line(tmp_path):
    lstm = model_dict(random_state("lstm", 2))
    params = lstm["params"]
    cases = {
        "params.weight_hh_l1 has shape (2, 2), expected (32, 8)": dict(params, weight_hh_l1=[[0.0, 1.0]] * 2),
        "missing params.bias_ih_l1, a (32,) array of numbers": {k: v for k, v in params.items() if k != "bias_ih_l1"},
        "params.head.bias is not a (23,) array of numbers": dict(params, **{"head.bias": [[1.0], 2.0]}),
    }
    for fragment, broken in cases.items():
        assert fragment in bad_document_message(tmp_path, dict(lstm, params=broken))
    assert "c has shape (8,), expected (2, 8)" in bad_document_message(tmp_path, dict(lstm, c=lstm["c"][0]))
    assert "missing params" in bad_document_message(tmp_path, {k: v for k, v in lstm.items() if k != "params"})
    unknown = dict(lstm, cell="transformer", hyper=dict(lstm["hyper"], cell="transformer"))
    message = bad_document_message(tmp_path, unknown)
    assert f"unknown cell 'transformer' (this fastrnn has {', '.join(CELLS)})" in message
    assert "layers is 3 but hyper.layers is 2" in bad_document_message(tmp_path, dict(lstm, layers=3))
    message = bad_document_message(tmp_path, dict(lstm, format_version=4))
    assert "format version 4; this fastrnn reads formats 1, 2, 3" in message
    assert "format 1 holds the classic rnn only" in bad_document_message(tmp_path, dict(lstm, format_version=1))
    classic = model_dict(random_state("rnn", 1))
    short = dict(classic["params"], weight_ih_l0=classic["params"]["weight_ih_l0"][:3])
    assert "params.weight_ih_l0 has shape (3, 23), expected (8, 23)" in bad_document_message(
        tmp_path, dict(classic, params=short))


@pytest.mark.parametrize("cell,layers", MODELS)
def test_an_exported_model_loads_into_pytorch(tmp_path, cell, layers):
    # the lines of docs/formats.md's JSON export section, for every cell (PyTorch's RNN, GRU, LSTM)
    torch = pytest.importorskip("torch")
    if not hasattr(torch.nn, cell.upper()):
        pytest.skip(f"PyTorch has no {cell} cell to load it into")
    original = random_state(cell, layers)
    write_model_json(tmp_path / "model.json", original)
    with open(tmp_path / "model.json", encoding="utf-8") as f:
        model = json.load(f)
    vocab, m, L = model["vocab"], model["hidden"], model["layers"]
    K = len(vocab)
    params = {name: torch.tensor(a, dtype=torch.float64) for name, a in model["params"].items()}
    Cell = getattr(torch.nn, model["cell"].upper())
    rnn = Cell(input_size=K, hidden_size=m, num_layers=L, batch_first=True, dtype=torch.float64)
    head = torch.nn.Linear(m, K, dtype=torch.float64)
    rnn.load_state_dict({k: v for k, v in params.items() if not k.startswith("head.")})
    head.load_state_dict({"weight": params["head.weight"], "bias": params["head.bias"]})
    h = torch.tensor(model["h"], dtype=torch.float64).reshape(L, 1, m)
    c = torch.tensor(model["c"], dtype=torch.float64).reshape(L, 1, m) if "c" in CELLS[cell].carried else None
    state = h if c is None else (h, c)
    inputs = [model["next_char"]] + [vocab.index(ch) for ch in "the rain"]
    x = torch.nn.functional.one_hot(torch.tensor([inputs]), K).to(torch.float64)  # (batch 1, T, K)
    with torch.no_grad():
        out, state = rnn(x, state)
        log_p = torch.log_softmax(head(out[0]), dim=-1)  # (T, K)
    expected = reference.forward(original.views(), inputs, inputs, original.h)[3]
    np.testing.assert_allclose(log_p.numpy(), np.log([expected[t] for t in range(len(inputs))]), rtol=1e-12, atol=0)
