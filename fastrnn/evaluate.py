"""Loss of a model on a text: validation during training and ``fastrnn eval``.

Text is scored from the state the model was in when it was saved, its carried hidden state
(``sample.start_state``): the text's first character is fed to that state and every later one
is predicted. From h = 0, which to a model trained on a book means "the book's first line",
some models fall into an attractor and score worse than uniform guessing.
"""
from __future__ import annotations

import math

import numpy as np

from .cells import Layout
from .engine import engine_for
from .sample import start_state
from .text import codepoints


class TextScorer:
    """Summed cross-entropy of next-character prediction over texts, with buffers allocated once.

    The hidden state starts where the caller says (zeros by default) and is carried through the
    text in chunks of ``chunk`` characters (the chunk length changes nothing but speed), from
    zeros again at each input ``restart`` (a documents model's end marker).
    Texts are arrays of vocabulary indices of ``index_dtype``.
    """

    def __init__(self, m: int, K: int, dtype, index_dtype, chunk: int = 100, cell: str = "rnn", layers: int = 1,
                 embedding: int = 0, restart: int = -1):
        self.layout = Layout(m, K, cell, layers, embedding)
        self.engine = engine_for(self.layout)
        self.work = self.engine.workspace(1, chunk, dtype, index_dtype, restart=restart)

    def total_loss(self, params, indices, h=None) -> tuple[float, int]:
        """(summed loss in nats, number of predictions) for predicting indices[1:], indices[0]
        being fed to the flat carried state ``h`` (S,) (zeros when None)."""
        if len(indices) < 2:
            return 0.0, 0
        h0 = np.zeros(self.layout.state_size, params.dtype) if h is None else np.asarray(h, params.dtype)
        text = np.ascontiguousarray(indices, self.work.chars.dtype)
        return self.engine.text_loss(self.work, params, text, h0), len(indices) - 1


def evaluate_text(state, text: str, from_zero: bool = False) -> dict:
    """Bits per character and perplexity of ``state``'s model on ``text``, scored from the
    model's carried hidden state (from h = 0 with ``from_zero``).

    Characters outside the model's vocabulary cannot be predicted or fed in: each one is
    counted, left out, and the text after it is scored from the start state again.
    """
    h, _ = start_state(state, from_zero)
    vocab = state.vocab
    points = codepoints(text)
    idx, known = vocab.lookup(points)
    scorer = TextScorer(state.hyper.hidden, vocab.size, state.params.dtype, vocab.index_dtype(),
                        cell=state.hyper.cell, layers=state.hyper.layers, embedding=state.hyper.embedding,
                        restart=state.restart)
    total, count = 0.0, 0
    # score each run of known characters on its own
    edges = np.flatnonzero(np.diff(np.concatenate([[0], known.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        loss, n = scorer.total_loss(state.params, idx[start:stop], h)
        total += loss
        count += n
    unknown = points[~known]
    nats = total / count if count else float("nan")
    return {
        "chars": int(points.size),
        "predicted": count,
        "nats_per_char": nats,
        "bits_per_char": nats / math.log(2) if count else float("nan"),
        "perplexity": math.exp(nats) if count else float("nan"),
        "unknown_chars": int(unknown.size),
        "unknown_distinct": "".join(map(chr, np.unique(unknown).tolist())),
    }
