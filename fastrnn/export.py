"""Models as JSON, for any language: the parameters, the vocabulary and the state sampling
starts from.

    {"format": "fastrnn-model", "format_version": 1,
     "vocab": "\\n !...",            the characters, in index order (a string)
     "hyper": {"hidden": 100, ...},  the run's hyperparameters
     "W": [[...]], "U": [[...]], "V": [[...]], "b": [...], "c": [...],
     "h": [...], "next_char": 12}    the carried hidden state and the index of the character
                                     fed to it first (null: none recorded)

with h_t = tanh(W h_{t-1} + U[:, x_t] + b), p_t = softmax(V h_t + c). Numbers are written in
the shortest form that reads back to the same float64, so a float64 model round-trips exactly.
AdaGrad sums are not exported: a JSON model samples and scores, it does not resume training.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .files import write_text_atomic

FORMAT = "fastrnn-model"
FORMAT_VERSION = 1


def model_dict(state) -> dict:
    """The JSON document of a ``model.State``."""
    views = state.views()
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, "vocab": state.vocab.chars,
                "hyper": {k: getattr(state.hyper, k) for k in state.hyper.__dataclass_fields__}}
    for name in ("W", "U", "V", "b", "c"):
        document[name] = views[name].astype(np.float64).tolist()
    document["h"] = state.h.astype(np.float64).tolist()
    document["next_char"] = state.next_char
    return document


def write_model_json(path, state) -> None:
    """``model_dict`` written atomically to ``path``."""
    write_text_atomic(os.fspath(path), json.dumps(model_dict(state), separators=(",", ":")) + "\n",
                      encoding="utf-8")


def read_model_json(path: str):
    """A ``model.State`` from a JSON model file; any problem is a ``CheckpointError``."""
    from .model import CheckpointError, Hyper, init_state
    from .text import Vocab

    def fail(why: str) -> CheckpointError:
        return CheckpointError(f"{path}: not a fastrnn JSON model ({why})")

    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except (UnicodeDecodeError, ValueError) as err:
        raise fail(f"unreadable: {err}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise fail("no \"format\": \"fastrnn-model\"")
    if document.get("format_version") != FORMAT_VERSION:
        raise fail(f"format version {document.get('format_version')!r}; this fastrnn reads {FORMAT_VERSION}")
    try:
        hyper = Hyper(**document["hyper"])
        vocab_text = document["vocab"]
        points = np.array([ord(ch) for ch in vocab_text], dtype=np.uint32)
        if points.size == 0 or np.any(np.diff(points.astype(np.int64)) <= 0):
            raise ValueError("the vocabulary is not distinct characters in code-point order")
        state = init_state(Vocab(points), hyper)
        m, K = hyper.hidden, points.size
        dtype = state.params.dtype
        for name, view in state.views().items():
            if not isinstance(document[name], list):
                raise ValueError(f"{name} is not a list of numbers")
            array = np.array(document[name], dtype=np.float64)
            if array.shape != view.shape:
                raise ValueError(f"{name} has shape {array.shape}, expected {view.shape}")
            view[...] = array.astype(dtype)
        h = np.array(document.get("h", [0.0] * m), dtype=np.float64)
        if h.shape != (m,):
            raise ValueError(f"h has shape {h.shape}, expected ({m},)")
        state.h[:] = h.astype(dtype)
        next_char = document.get("next_char")
        if next_char is not None and not (type(next_char) is int and 0 <= next_char < K):
            raise ValueError(f"next_char must be an index below {K} or null")
        state.next_char = next_char
    except (KeyError, TypeError, ValueError) as err:
        raise fail(str(err) if not isinstance(err, KeyError) else f"missing {err}") from None
    if not (np.all(np.isfinite(state.params)) and np.all(np.isfinite(state.h))):
        raise fail("non-finite numbers")
    return state
