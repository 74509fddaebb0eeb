"""Models as JSON, for any language: the parameters, the vocabulary and the state sampling
starts from.

    {"format": "fastrnn-model", "format_version": 3,
     "vocab": "\\n !...",              the characters, in index order (a string)
     "hyper": {"hidden": 100, ...},    the run's hyperparameters
     "cell": "lstm", "layers": 2,      the cell (rnn, gru, lstm), its layers L
     "hidden": 100,                    and their size m (as in hyper)
     "params": {"embedding.weight": [[...]], (with an input embedding only)
                "weight_ih_l0": [[...]], "weight_hh_l0": [[...]],
                "bias_ih_l0": [...], "bias_hh_l0": [...], ..., (every layer k < L)
                "head.weight": [[...]], "head.bias": [...]},
     "h": [[...], ...], "c": [[...], ...],  the carried state, (L, m) each; c for the LSTM only
     "next_char": 12}                  the index of the character fed to it first (null: none)

``params`` holds PyTorch's state-dict names and shapes (``cells.Layout.torch_state_dict``): the
arrays of ``torch.nn.RNN`` / ``GRU`` / ``LSTM`` (``num_layers=L``, ``input_size=K``, one-hot
input) without a prefix, and the output ``torch.nn.Linear(m, K)`` as ``head``. ``cells.py``
writes out the equations. weight_ih_l0 is (G m, K), or (G m, D) after an input embedding
``torch.nn.Embedding(K, D)`` (``embedding.weight``, (K, D); format 3), weight_ih_l{k>0} and
weight_hh_l{k} are (G m, m), the biases (G m,), G = 1, 3, 4 for rnn, gru, lstm; head.weight
(K, m), head.bias (K,).

The classic model (rnn, one layer) has h of shape (m,), and keeps the arrays of format 1 at the
top level for the readers of that format: W (m, m), U (m, K), V (K, m), b (m,), c (K,), with
h_t = tanh(W h_{t-1} + U[:, x_t] + b), p_t = softmax(V h_t + c); its ``params`` are the same
numbers under PyTorch's names (weight_hh_l0 = W, weight_ih_l0 = U, bias_ih_l0 = b,
bias_hh_l0 = 0, head.weight = V, head.bias = c). Its top-level ``c`` is thus the output bias,
an LSTM's the cell state. Format 1 is the classic model alone, without ``cell``, ``layers``,
``hidden`` and ``params``; both formats are read.

Numbers are written in the shortest form that reads back to the same float64, so a float64
model round-trips exactly. The optimizer's state is not exported: a JSON model samples and
scores, it does not resume training.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .cells import CLASSIC_TORCH_NAMES
from .errors import CheckpointError
from .files import write_text_atomic

FORMAT = "fastrnn-model"
# 2: ``cell``, ``layers``, ``hidden`` and ``params`` (every cell, under PyTorch's names); the
#    carried h (and c) of a stack as (layers, m). 1: the classic model's W, U, V, b, c and h.
# 3: ``embedding.weight`` and ``hyper.embedding`` where the model has an input embedding.
FORMAT_VERSION = 3
READS = (1, 2, 3)


def model_dict(state) -> dict:
    """The JSON document of a ``model.State``."""
    layout = state.layout
    as_list = lambda a: np.asarray(a, dtype=np.float64).tolist()  # noqa: E731
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, "vocab": state.vocab.chars,
                "hyper": {k: getattr(state.hyper, k) for k in state.hyper.__dataclass_fields__},
                "cell": layout.cell, "layers": layout.layers, "hidden": layout.m}
    if layout.classic:
        document.update({name: as_list(view) for name, view in state.views().items()})
    document["params"] = {name: as_list(a) for name, a in layout.torch_state_dict(state.params).items()}
    document.update({name: as_list(view) for name, view in layout.state_views(state.h).items()})
    document["next_char"] = state.next_char
    return document


def write_model_json(path, state) -> None:
    """``model_dict`` written atomically to ``path``."""
    write_text_atomic(os.fspath(path), json.dumps(model_dict(state), separators=(",", ":")) + "\n",
                      encoding="utf-8")


def _array(document: dict, key: str, shape: tuple[int, ...], label: str | None = None) -> np.ndarray:
    """``document[key]`` as a float64 array of ``shape``; ValueError naming it otherwise."""
    label = label or key
    expected = f"a {shape} array of numbers" if shape else "a number"
    if key not in document:
        raise ValueError(f"missing {label}, {expected}")
    try:
        array = np.array(document[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{label} is not {expected}") from None
    if array.shape != shape:
        raise ValueError(f"{label} has shape {array.shape}, expected {shape}")
    return array


def _hyper_fields(document: dict) -> dict:
    """The hyperparameters of a document: its ``hyper``, with ``cell``, ``layers`` and
    ``hidden`` (which must agree with it where both are given)."""
    fields = document.get("hyper")
    if not isinstance(fields, dict):
        raise ValueError("missing hyper")
    fields = dict(fields)
    for key in ("cell", "layers", "hidden"):
        if key in document:
            if key in fields and fields[key] != document[key]:
                raise ValueError(f"{key} is {document[key]!r} but hyper.{key} is {fields[key]!r}")
            fields[key] = document[key]
    return fields


def _torch_shapes(layout) -> dict[str, tuple[int, ...]]:
    """The shapes of ``layout.torch_state_dict``'s arrays, without allocating them."""
    shapes = layout.shapes()
    if not layout.classic:
        return shapes
    named = {CLASSIC_TORCH_NAMES[name]: shape for name, shape in shapes.items()}
    named["bias_hh_l0"] = shapes["b"]
    return named


def read_model_json(path: str, hyper_of, new_state):
    """A ``model.State`` from a JSON model file of format 1, 2 or 3; any problem is a
    ``CheckpointError`` of one line naming it. ``hyper_of(fields)`` checks the document's
    hyperparameters (ValueError saying what is wrong) and ``new_state(hyper, code points)``
    makes the model to fill in (``model.hyper_from_fields``, ``model.new_state``); the model is
    made only once the document's arrays have been read and found of its shapes."""

    def fail(why: str) -> CheckpointError:
        return CheckpointError(f"{path}: not a fastrnn JSON model ({why})")

    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except (UnicodeDecodeError, ValueError) as err:
        raise fail(f"unreadable: {err}") from None
    except RecursionError:
        raise fail("unreadable: nested too deeply") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise fail("no \"format\": \"fastrnn-model\"")
    version = document.get("format_version")
    if type(version) is not int or version not in READS:
        raise fail(f"format version {version!r}; this fastrnn reads formats {', '.join(map(str, READS))}")
    try:
        hyper = hyper_of(_hyper_fields(document))
        vocab_text = document["vocab"]
        if not isinstance(vocab_text, str):
            raise ValueError("vocab is not a string")
        points = np.array([ord(ch) for ch in vocab_text], dtype=np.uint32)
        if points.size == 0 or np.any(np.diff(points.astype(np.int64)) <= 0):
            raise ValueError("the vocabulary is not distinct characters in code-point order")
        layout, K = hyper.layout(points.size), points.size
        if version == 1 and not layout.classic:
            raise ValueError(f"format 1 holds the classic rnn only, not a {hyper.layers}-layer {hyper.cell}")
        if version == 1:  # the classic arrays at the top level
            arrays = {name: _array(document, name, shape) for name, shape in layout.shapes().items()}
        else:
            params = document.get("params")
            if not isinstance(params, dict):
                raise ValueError("missing params, the arrays under PyTorch's names")
            arrays = {name: _array(params, name, shape, f"params.{name}")
                      for name, shape in _torch_shapes(layout).items()}
            if layout.classic:  # one bias: b = bias_ih + bias_hh (exported with bias_hh = 0)
                arrays["bias_ih_l0"] = arrays["bias_ih_l0"] + arrays.pop("bias_hh_l0")
                arrays = {name: arrays[CLASSIC_TORCH_NAMES[name]] for name in layout.shapes()}
                for name, array in arrays.items():  # format 1's copies, where present, agree
                    if name in document and not np.array_equal(_array(document, name, array.shape), array):
                        raise ValueError(f"{name} differs from params.{CLASSIC_TORCH_NAMES[name]}")
        carried = {name: _array(document, name, shape) for name, shape in layout.state_shapes().items()
                   if name in document}  # absent: zeros
        next_char = document.get("next_char")
        if next_char is not None and not (type(next_char) is int and 0 <= next_char < K):
            raise ValueError(f"next_char must be an index below {K} or null")
    except (KeyError, TypeError, ValueError) as err:
        raise fail(str(err) if not isinstance(err, KeyError) else f"missing {err}") from None
    if not all(np.all(np.isfinite(a)) for a in (*arrays.values(), *carried.values())):
        raise fail("non-finite numbers")
    state = new_state(hyper, points)
    for name, view in state.views().items():
        view[...] = arrays[name]
    for name, view in layout.state_views(state.h).items():
        if name in carried:
            view[...] = carried[name]
    state.next_char = next_char
    return state
