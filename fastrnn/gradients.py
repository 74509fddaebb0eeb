"""Analytic gradients (of the kernels and of the reference) against centred finite differences.

The numerical gradient is the centred five-point difference
    f'(x) ~ (-f(x + 2h) + 8 f(x + h) - 8 f(x - h) + f(x - 2h)) / 12h,
whose truncation error is O(h^4), with the loss evaluated in extended precision. With the
two-point rule in float64, rounding in a loss of ~80 nats alone is ~1e-9 per entry at h = 1e-5,
which is larger than many gradient entries of a small network; here it is ~1e-13 at h = 1e-4.
The loss is evaluated for a batch of models at once, each differing from the checked one in
one entry; its maths (every cell, any number of layers) is written here once more, apart from
the reference's.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from . import reference
from .cells import Layout, cell_of
from .documents import document_lines
from .engine import engine_for
from .errors import FastrnnError
from .formats import END_OF_TEXT
from .model import PARAM_NAMES, Hyper, init_state
from .text import build_vocab

# Used when no book is given: a few lines written for this purpose.
BUILTIN_TEXT = """\
A gradient check compares what the chain rule says with what the loss itself does when one
weight is nudged a little up and a little down. If the two agree to many digits for every
weight, the backward pass is right; if one parameter disagrees, the error is in its term.
Small networks make the check fast: five hidden units and a few dozen characters suffice.
"""

DEFAULT_TOL = {"float64": 1e-6, "float32": 1e-3}
DEFAULT_STEP = 1e-4


@dataclass
class ParamError:
    """Worst agreement over all checked entries of one parameter, for one implementation."""

    param: str
    max_rel: float
    max_abs: float


def relative_error(analytic, numerical, eps: float = 1e-6):
    """|ga - gn| / max(eps, |ga| + |gn|), elementwise."""
    return np.abs(analytic - numerical) / np.maximum(eps, np.abs(analytic) + np.abs(numerical))


# Extended precision where the platform has it (80-bit on x86): rounding in the loss then stays
# far below the differences being measured.
PRECISION = np.longdouble
STENCIL = ((2, -1.0), (1, 8.0), (-1, -8.0), (-2, 1.0))  # centred five-point: f' = sum w f(x + k h) / 12 h
BATCH = 256


def _batched_loss(params: dict, name: str, stack, x, y, h0, restart=None):
    """Chunk losses of ``len(stack)`` models that differ from ``params`` only in ``name``,
    whose values are ``stack`` (B, *shape), each state starting afresh (zeros) at the input
    ``restart``. Returns (B,)."""
    B = stack.shape[0]
    p = dict(params)
    p[name] = stack
    W, U, V, b, c = (p[k] for k in ("W", "U", "V", "b", "c"))
    batched = lambda a, ndim: a.ndim > ndim  # noqa: E731
    h = np.broadcast_to(h0, (B, h0.shape[0]))
    loss = np.zeros(B, dtype=PRECISION)
    for xt, yt in zip(x, y):
        if xt == restart:
            h = np.zeros_like(h)
        Wh = np.matmul(W, h[:, :, None])[:, :, 0] if batched(W, 2) else h @ W.T
        Ux = U[:, :, xt] if batched(U, 2) else U[:, xt]
        h = np.tanh(Wh + Ux + b)
        o = (np.matmul(V, h[:, :, None])[:, :, 0] if batched(V, 2) else h @ V.T) + c
        top = np.max(o, axis=1, keepdims=True)
        # -log softmax(o)[y] = log sum exp(o) - o[y]
        loss += np.log(np.sum(np.exp(o - top), axis=1)) + top[:, 0] - o[:, yt]
    return loss


def _matvec(W, v):
    """W v for a batch: W (G, n) or (B, G, n), v (B, n). Returns (B, G)."""
    return np.matmul(W, v[:, :, None])[:, :, 0] if W.ndim == 3 else v @ W.T


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _batched_rnn(gi, gh, carried):
    return (np.tanh(gi + gh),)


def _batched_gru(gi, gh, carried):
    (h,) = carried
    m = h.shape[1]
    r = _sigmoid(gi[..., :m] + gh[..., :m])
    z = _sigmoid(gi[..., m:2 * m] + gh[..., m:2 * m])
    n = np.tanh(gi[..., 2 * m:] + r * gh[..., 2 * m:])
    return ((1.0 - z) * n + z * h,)


def _batched_lstm(gi, gh, carried):
    h, c = carried
    m = h.shape[1]
    a = gi + gh
    i, f, o = _sigmoid(a[..., :m]), _sigmoid(a[..., m:2 * m]), _sigmoid(a[..., 3 * m:])
    c = f * c + i * np.tanh(a[..., 2 * m:3 * m])
    return (o * np.tanh(c), c)


# each cell's step for a batch of models, from gi = W_ih x + b_ih and gh = W_hh h + b_hh
# (each (G m,) or (B, G m)) and the layer's carried vectors, each (B, m)
_BATCHED_STEPS = {"rnn": _batched_rnn, "gru": _batched_gru, "lstm": _batched_lstm}


def _batched_stack_loss(params: dict, name: str, stack, x, y, h0, restart=None, *, cell: str, layers: int):
    """``_batched_loss`` for a stack of ``layers`` layers of ``cell`` (after an input
    embedding where ``params`` has one); h0 the flat carried state (S,)."""
    B = stack.shape[0]
    p = dict(params)
    p[name] = stack
    m = p["weight_hh_l0"].shape[-1]
    n = len(cell_of(cell).carried)
    h0 = np.broadcast_to(h0, (B, h0.shape[0]))
    carried = [tuple(h0[:, (j * layers + k) * m:(j * layers + k + 1) * m] for j in range(n)) for k in range(layers)]
    V, c = p["head.weight"], p["head.bias"]
    E = p.get("embedding.weight")
    loss = np.zeros(B, dtype=PRECISION)
    for xt, yt in zip(x, y):
        if xt == restart:
            carried = [tuple(np.zeros_like(v) for v in vectors) for vectors in carried]
        for k in range(layers):
            W_ih, W_hh, b_ih, b_hh = (p[f"{a}_l{k}"] for a in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            if k > 0:
                gi = _matvec(W_ih, carried[k - 1][0]) + b_ih
            elif E is None:
                gi = W_ih[..., xt] + b_ih
            else:  # W_ih E[x_t]
                gi = _matvec(W_ih, E[:, xt] if E.ndim == 3 else np.broadcast_to(E[xt], (B, E.shape[1]))) + b_ih
            carried[k] = _BATCHED_STEPS[cell](gi, _matvec(W_hh, carried[k][0]) + b_hh, carried[k])
        o = _matvec(V, carried[-1][0]) + c
        top = np.max(o, axis=1, keepdims=True)
        loss += np.log(np.sum(np.exp(o - top), axis=1)) + top[:, 0] - o[:, yt]
    return loss


def numerical_grads(params: dict, x, y, h0, step: float, restart=None) -> dict:
    """Centred five-point differences of the chunk loss, entry by entry, computed in extended
    precision (``PRECISION``) whatever the dtype of ``params``; returned as float64. ``params``:
    the classic cell's arrays or a stack's (``reference.architecture`` reads which).
    ``restart``: the input read from the zero state (documents' end marker), or None."""
    work = {k: np.asarray(v, dtype=PRECISION) for k, v in params.items()}
    h0 = np.asarray(h0, dtype=PRECISION)
    if "W" in params:
        names, loss = PARAM_NAMES, _batched_loss
    else:
        cell, layers, _ = reference.architecture(params)
        names = tuple(params)
        loss = partial(_batched_stack_loss, cell=cell, layers=layers)
    grads = {}
    for name in names:
        base = work[name]
        flat = np.zeros(base.size, dtype=PRECISION)
        for start in range(0, base.size, BATCH):
            idx = np.arange(start, min(start + BATCH, base.size))
            for k, weight in STENCIL:
                stack = np.repeat(base.reshape(1, -1), idx.size, axis=0)
                stack[np.arange(idx.size), idx] += k * step
                flat[idx] += weight * loss(work, name, stack.reshape((idx.size,) + base.shape), x, y, h0, restart)
        grads[name] = (flat / (12 * step)).astype(np.float64).reshape(base.shape)
    return grads


def kernel_grads(state, x, y, h0) -> dict:
    """Raw gradients of one chunk from the Numba kernels, in the state's dtype, as named views;
    h0: the flat carried state (a documents model's state restarts at its end marker)."""
    return state.layout.views(engine_for(state.layout).chunk_gradients(state.params, x, y, h0, state.restart)[1])


@dataclass(frozen=True)
class CheckSettings:
    """What a gradient check checks: a model of ``layers`` layers of ``cell`` (after an input
    ``embedding`` of that width; 0: none) of ``hidden`` units, its weights drawn as training
    draws them from ``seed`` (``sigma`` is the rnn cell's; the gated cells' are PyTorch's
    uniform), the kernels in ``dtype``; the first chunk of ``seq_length`` characters and
    ``chunks`` more at random positions; finite differences of step ``h``. ``documents``: the
    text's lines are documents, each read from the start state (``--format lines``)."""

    cell: str = "rnn"
    layers: int = 1
    embedding: int = 0
    hidden: int = 5
    sigma: float = 0.01
    dtype: str = "float64"
    seq_length: int = 25
    seed: int = 0
    chunks: int = 0
    h: float = DEFAULT_STEP
    documents: bool = False


def check_gradients(text: str = BUILTIN_TEXT, settings: CheckSettings = CheckSettings(), eps: float = 1e-6,
                    kernel_grads_fn=None) -> dict[str, list[ParamError]]:
    """Check the first chunk of ``text`` and ``settings.chunks`` more at random positions.

    Returns {"kernels": [...], "reference": [...]}, one ParamError per parameter, worst over all
    chunks: for the classic cell (``cell="rnn"``, ``layers=1``) b, c, U, W, V; for a stack (or
    a model with an input ``embedding``) its arrays in the order of ``Layout.shapes``. The
    reference is checked in float64; the kernels in ``settings.dtype``. ``eps``: the floor of
    the relative error's denominator (``relative_error``). ``kernel_grads_fn`` replaces the
    kernels' gradients (used to prove the check can fail).
    """
    seq_length, seed, dtype = settings.seq_length, settings.seed, settings.dtype
    if settings.documents:
        text = END_OF_TEXT + "".join(line + END_OF_TEXT for line in document_lines(text))
    if len(text) < seq_length + 1:
        raise ValueError(f"the text has {len(text)} characters; the check needs seq_length + 1 = {seq_length + 1}")
    vocab = build_vocab(text)
    book = vocab.encode(text)
    state = init_state(vocab, Hyper(hidden=settings.hidden, seq_length=seq_length, seed=seed, sigma=settings.sigma,
                                    dtype=dtype, cell=settings.cell, layers=settings.layers,
                                    embedding=settings.embedding, documents=settings.documents))
    restart = None if state.restart < 0 else state.restart
    layout = state.layout
    names = ("b", "c", "U", "W", "V") if layout.classic else layout.names
    S = layout.state_size
    rng = np.random.default_rng(seed)
    starts = [0] + list(rng.integers(0, len(book) - seq_length, size=settings.chunks))
    worst = {impl: {n: [0.0, 0.0] for n in names} for impl in ("kernels", "reference")}
    for k, start in enumerate(starts):
        x, y = book[start:start + seq_length], book[start + 1:start + seq_length + 1]
        # the first chunk starts from a zero state as training does; the others from a random one
        h0 = np.zeros(S) if k == 0 else rng.uniform(-0.5, 0.5, S)
        params64 = {name: v.astype(np.float64) for name, v in state.views().items()}
        numerical = numerical_grads(params64, x, y, h0, settings.h, restart)
        analytic = {
            "kernels": (kernel_grads_fn or kernel_grads)(state, x, y, h0.astype(dtype)),
            "reference": reference.loss_and_grads(params64, x, y, h0, restart=restart)[1],
        }
        for impl, grads in analytic.items():
            for name in names:
                ga = grads[name].astype(np.float64)
                rel = float(np.max(relative_error(ga, numerical[name], eps)))
                absolute = float(np.max(np.abs(ga - numerical[name])))
                w = worst[impl][name]
                w[0], w[1] = max(w[0], rel), max(w[1], absolute)
    return {impl: [ParamError(n, *worst[impl][n]) for n in names] for impl in worst}


@dataclass(frozen=True)
class GradientCheck:
    """The result of ``gradient_check``: per implementation ("kernels", "reference"), one
    ``ParamError`` per parameter (b, c, U, W, V for the classic cell; a stack's arrays in the
    order of ``Layout.shapes``), and the settings that produced it."""

    hidden: int
    seq_length: int
    seed: int
    chunks: int  # chunks checked, the first included
    h: float
    dtype: str
    tol: float
    results: dict
    cell: str = "rnn"
    layers: int = 1
    embedding: int = 0

    @property
    def failed(self) -> list[str]:
        """"implementation parameter" for each relative error above ``tol``."""
        return [f"{impl} {e.param}" for impl, rows in self.results.items() for e in rows if not e.max_rel <= self.tol]

    @property
    def passed(self) -> bool:
        return not self.failed

    def table(self) -> str:
        """The table ``fastrnn gradcheck`` prints."""
        model = ("" if Layout(self.hidden, 1, self.cell, self.layers, self.embedding).classic
                 else f"{f'embedding {self.embedding}, ' if self.embedding else ''}{self.layers}-layer {self.cell}, ")
        width = max([6] + [len(e.param) + 2 for e in self.results["kernels"]])
        lines = [f"gradient check: {model}m={self.hidden}, {self.chunks} chunk(s) of {self.seq_length}, h={self.h:g}, "
                 f"kernels in {self.dtype}, tolerance {self.tol:g}",
                 f"{'param':<{width}}{'kernels rel':>14}{'kernels abs':>14}{'reference rel':>16}{'reference abs':>16}"]
        for k, r in zip(self.results["kernels"], self.results["reference"]):
            lines.append(f"{k.param:<{width}}{k.max_rel:>14.2e}{k.max_abs:>14.2e}{r.max_rel:>16.2e}{r.max_abs:>16.2e}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"hidden": self.hidden, "seq_length": self.seq_length, "seed": self.seed, "chunks": self.chunks,
                "h": self.h, "dtype": self.dtype, "tol": self.tol, "cell": self.cell, "layers": self.layers,
                "embedding": self.embedding, "passed": self.passed,
                "results": {impl: [vars(e) for e in rows] for impl, rows in self.results.items()}}


def gradient_check(text: str = BUILTIN_TEXT, settings: CheckSettings = CheckSettings(), tol: float | None = None
                   ) -> GradientCheck:
    """``check_gradients`` on ``text`` (a small built-in text by default) with ``settings``;
    ``tol`` defaults to 1e-6 in float64 and 1e-3 in float32."""
    if len(text) < settings.seq_length + 1:
        raise FastrnnError(f"the text has {len(text)} characters; the check needs seq_length + 1 = "
                           f"{settings.seq_length + 1}")
    results = check_gradients(text, settings)
    return GradientCheck(settings.hidden, settings.seq_length, settings.seed, settings.chunks + 1, settings.h,
                         settings.dtype, tol or DEFAULT_TOL[settings.dtype], results, settings.cell, settings.layers,
                         settings.embedding)
