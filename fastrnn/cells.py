"""The cells and their parameter arrays: one declaration that checkpoints, the API's ``Model``,
export, the page's sampler, gradcheck and the report read.

Three cells, with PyTorch's maths and names (``torch.nn.RNN``, ``torch.nn.GRU``,
``torch.nn.LSTM``), layer k fed by layer k-1's h (layer 0 by the one-hot character x_t):

    rnn   h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    gru   r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
          z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
          n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
          h_t = (1 - z_t) * n_t + z_t * h_{t-1}
    lstm  i_t, f_t, o_t = sigmoid(.), g_t = tanh(.) of the four blocks of
                          W_ih x_t + b_ih + W_hh h_{t-1} + b_hh, in the order i, f, g, o
          c_t = f_t * c_{t-1} + i_t * g_t,   h_t = o_t * tanh(c_t)

then the output layer on the last layer's h: o_t = V h_t + c, p_t = softmax(o_t).

Each layer k has ``weight_ih_l{k}`` (G m, K or m), ``weight_hh_l{k}`` (G m, m), ``bias_ih_l{k}``
and ``bias_hh_l{k}`` (G m,), G being the cell's gate multiple (1, 3, 4), gates stacked in
PyTorch's order; the output layer ``head.weight`` (V, (K, m)) and ``head.bias`` (c, (K,)).
With an input embedding of width D (PyTorch's ``torch.nn.Embedding(K, D)`` before the first
layer), ``embedding.weight`` (E, (K, D)) comes first, layer 0 reads x_t = E[char] and its
``weight_ih_l0`` is (G m, D); the kernels run on the one-hot model it folds into
(``kernels/embedding.py``).

The classic cell (``rnn``, one layer, no embedding) keeps the assignment's arrays W = weight_hh_l0,
U = weight_ih_l0, b (one bias: PyTorch's bias_hh_l0 is 0), V and c, and its initialisation,
bit for bit. Every other model is a *stack*.

All parameters live in one flat buffer, in the order of ``Layout.shapes``, so the optimizer
runs over one array. The input weights of layer 0 are stored transposed, a column after
another: the column that character x reads and updates is contiguous, and the columns of
characters a chunk does not hold are skipped as wholes by the optimizer (with an embedding,
the rows of E are, and weight_ih_l0 is stored transposed, (D, G m), for the fold's product).
Checkpoints and ``Model`` show every array in its own (PyTorch's) orientation.

A cell's step: the contract
--------------------------
A cell is one step of one layer: from the layer's input x_t and its carried vectors at t-1,
its carried vectors at t. Its gates are PyTorch's kind: pre-activations linear in x_t and
h_{t-1} through two products of G m rows, a_t = W_ih x_t + b_ih and W_hh h_{t-1} + b_hh,
and everything else is the step's own, element by element. The first carried vector is h,
what the layer above and the output layer read; the kernels carry h and, optionally, c (the
``carried`` of a ``Cell`` is ("h",) or ("h", "c")).

The kernels' pair (``kernels/lstm.py`` is the model), for G streams at once, every array of
the parameters' dtype:

    forward_step(h, c, a, aux, hh, b_hh, h_prev, c_prev, scratch)
        h, c (G, m)         written with h_t, c_t (c: unused by a cell that carries h alone)
        a (G, G m)          read as W_ih x_t + b_ih; written with what the backward step needs
                            (the activated gates, say)
        aux (G, m)          written with anything else the backward step needs (the LSTM's
                            tanh(c_t), the GRU's W_hn h_{t-1} + b_hn)
        hh (G, G m)         read: W_hh h_{t-1}, without its bias, which the stack computes
                            (for every stream at once) before it calls the step
        b_hh (G m,)         read
        h_prev, c_prev (G, m)   read: the carried h_{t-1}, c_{t-1} (c_prev: zeros without c)
        scratch (3, >= G max(G m, K))   workspace of ``mathfn``'s in-place sigmoid and tanh

    backward_step(dg_ih, dg_hh, dh_next, dc_next, dh_above, a, aux, h_prev, c_prev, h)
        dg_ih, dg_hh (G, G m)   written with the loss's gradient with respect to the outputs of
                            the two products, W_ih x_t + b_ih and W_hh h_{t-1} + b_hh (equal
                            where the cell adds the two before any gate)
        dh_next (G, m)      read as dL/dh_t through step t+1; written with the part of
                            dL/dh_{t-1} that does not pass through W_hh (the GRU's dh z; 0
                            otherwise): the stack then adds W_hh^T dg_hh itself
        dc_next (G, m)      read as dL/dc_t through step t+1, written with dL/dc_{t-1}
        dh_above (G, m)     read: dL/dh_t from the output layer or the layer above
        a, aux              read: what the forward step wrote at t
        h_prev, c_prev, h (G, m)   read: h_{t-1}, c_{t-1} and h_t

From dg_ih and dg_hh the stack makes every weight's gradient (dW_ih += dg_ih x_t^T, dW_hh +=
dg_hh h_{t-1}^T, db_ih += dg_ih, db_hh += dg_hh) and the layer below's dL/dh_t (W_ih^T dg_ih).
A step neither raises nor allocates, and each stream's numbers go through the same operations
whatever G is: one stream in a block equals that stream alone, and sampling (n = 1) continues
exactly the state training computed. ``FORWARD_STEP_ARGS`` and ``BACKWARD_STEP_ARGS`` are the
two signatures. The other implementations take the same maths in their own shapes:
``reference.STEPS`` a ``Step`` (forward(w, x, carried) -> (carried_t, cache) and
backward(dw, w, cache, dcarried_t) -> (dx, dcarried), accumulating into dw), the gradient
check's loss (gi, gh, carried) -> carried_t for a batch of models, the page's (gi, gh,
carried, m) -> carried_t.

Adding a cell: a ``Cell`` in ``CELLS`` and these parts, which ``cell_parts.missing_parts``
checks by the cell's name (the tests run it for every cell, and every test of "each cell"
iterates ``CELLS``):

    kernels/<cell>.py          its step pair, registered in ``kernels/stack.py``'s ``STEPS``
    reference.py               its NumPy step pair in ``STEPS``
    gradients.py               its step for a batch of models in ``_BATCHED_STEPS`` (the
                               gradient check's extended-precision loss)
    web/sampler.js             its step in the page's ``STEPS``, with the cell's gate multiple
                               and carried vectors
    recipes.py                 its defaults in ``RECIPES``

Checkpoints and the JSON export need nothing of their own: they hold the arrays ``Layout``
names and the carried vectors under the names ``carried`` gives them. The products, the
layers, the training loop, the optimizers, the sampler and the scorer are every cell's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Cell:
    """A cell's declaration: its gate multiple and the state it carries per layer. Its step
    follows the contract of this module's docstring, in each of the parts ``missing_parts``
    names."""

    name: str
    gates: int  # blocks of m rows in weight_ih / weight_hh (PyTorch's gate multiple)
    carried: tuple[str, ...]  # per layer, the vectors carried from chunk to chunk
    init: str  # "normal": N(0, sigma) weights (the assignment's); "uniform": U(-1/sqrt(m), 1/sqrt(m))
    gate_names: tuple[str, ...]  # the blocks, in PyTorch's order


CELLS = {
    "rnn": Cell("rnn", 1, ("h",), "normal", ("",)),
    "gru": Cell("gru", 3, ("h",), "uniform", ("r", "z", "n")),
    "lstm": Cell("lstm", 4, ("h", "c"), "uniform", ("i", "f", "g", "o")),
}
CLASSIC_NAMES = ("W", "U", "V", "b", "c")
# the classic arrays under PyTorch's state-dict names (bias_hh_l0 is exported as zeros)
CLASSIC_TORCH_NAMES = {"W": "weight_hh_l0", "U": "weight_ih_l0", "b": "bias_ih_l0", "V": "head.weight",
                       "c": "head.bias"}
LSTM_FORGET_BIAS = 1.0  # bias_ih's f block starts at 1, so that cells remember from the start


# the kernels' step pair of every cell (``kernels/lstm.py``): the arguments, in order
FORWARD_STEP_ARGS = ("h", "c", "a", "aux", "hh", "b_hh", "h_prev", "c_prev", "scratch")
BACKWARD_STEP_ARGS = ("dg_ih", "dg_hh", "dh_next", "dc_next", "dh_above", "a", "aux", "h_prev", "c_prev", "h")


def cell_of(name: str) -> Cell:
    """The cell called ``name``; KeyError names the cells there are."""
    try:
        return CELLS[name]
    except KeyError:
        raise KeyError(f"unknown cell {name!r}: one of {', '.join(CELLS)}") from None


@dataclass(frozen=True)
class Layout:
    """Where each parameter sits in the flat buffer of a model with hidden size m, vocabulary
    size K, and ``layers`` layers of ``cell``."""

    m: int
    K: int
    cell: str = "rnn"
    layers: int = 1
    embedding: int = 0  # D, the width of an input embedding; 0: one-hot inputs

    @property
    def classic(self) -> bool:
        """The assignment's model: one layer of the rnn cell on one-hot inputs, arrays W, U,
        V, b, c."""
        return self.cell == "rnn" and self.layers == 1 and self.embedding == 0

    @property
    def folded_size(self) -> int:
        """Parameters of the one-hot model the kernels run (``fold``): ``size`` without an
        embedding; with one, a stack whose layer 0 reads W_ih.T (K, gm) in place of E and
        W_ih.T (D, gm)."""
        D = self.embedding
        return self.size - (self.K + self.gm) * D + self.K * self.gm if D else self.size

    def fold(self, flat: np.ndarray) -> np.ndarray:
        """The flat buffer of the one-hot model ``flat`` (``size``,) folds into: flat itself
        without an embedding; else layer 0's input weights E W_ih.T, computed by the kernel
        that training uses, so that sampling and scoring continue exactly the numbers it
        computed."""
        if not self.embedding:
            return flat
        from .kernels.embedding import embedding_fold_into

        out = np.empty(self.folded_size, flat.dtype)
        embedding_fold_into(out, np.ascontiguousarray(flat), self.K, self.embedding, self.gm)
        return out

    @property
    def gm(self) -> int:
        """Rows of each layer's weight matrices: the gate multiple times m."""
        return cell_of(self.cell).gates * self.m

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter array's shape, in the order of the flat buffer."""
        m, K = self.m, self.K
        if self.classic:
            return {"W": (m, m), "U": (m, K), "V": (K, m), "b": (m,), "c": (K,)}
        gm, D = self.gm, self.embedding
        out = {"embedding.weight": (K, D)} if D else {}
        for k in range(self.layers):
            out[f"weight_ih_l{k}"] = (gm, (D or K) if k == 0 else m)
            out[f"weight_hh_l{k}"] = (gm, m)
            out[f"bias_ih_l{k}"] = (gm,)
            out[f"bias_hh_l{k}"] = (gm,)
        out["head.weight"] = (K, m)
        out["head.bias"] = (K,)
        return out

    def transposed(self, name: str) -> bool:
        """Whether ``name`` is stored transposed (the input weights of layer 0)."""
        return name in ("U", "weight_ih_l0")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.shapes())

    @property
    def size(self) -> int:
        return sum(int(np.prod(s)) for s in self.shapes().values())

    def offsets(self) -> dict[str, int]:
        """Each array's first index in the flat buffer."""
        out, start = {}, 0
        for name, shape in self.shapes().items():
            out[name] = start
            start += int(np.prod(shape))
        return out

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Named views (no copies) into a flat buffer of length ``size``; the input weights of
        layer 0 are the transpose of a contiguous block."""
        out, start = {}, 0
        for name, shape in self.shapes().items():
            n = int(np.prod(shape))
            block = flat[start:start + n]
            out[name] = block.reshape(shape[::-1]).T if self.transposed(name) else block.reshape(shape)
            start += n
        return out

    def torch_state_dict(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """The arrays under PyTorch's names (``torch.nn.RNN/GRU/LSTM`` as ``rnn.*`` without the
        prefix, the output ``torch.nn.Linear`` as ``head.*``), as contiguous copies."""
        views = self.views(flat)
        if not self.classic:
            return {name: np.ascontiguousarray(v) for name, v in views.items()}
        out = {CLASSIC_TORCH_NAMES[name]: np.ascontiguousarray(v) for name, v in views.items()}
        out["bias_hh_l0"] = np.zeros_like(out["bias_ih_l0"])
        return {name: out[name] for name in Layout(self.m, self.K, "rnn", 2).shapes() if name in out}

    # the carried state: per stream, one flat vector [h of layer 0, ..., h of layer L-1, c of
    # layer 0, ...] (the classic cell: h alone)

    @property
    def carried(self) -> tuple[str, ...]:
        return cell_of(self.cell).carried

    @property
    def state_size(self) -> int:
        """Numbers carried per stream from chunk to chunk."""
        return len(self.carried) * self.layers * self.m

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """The carried vectors as checkpoints hold them: h (m,) for the classic cell, else h
        (and c for the LSTM) of shape (layers, m)."""
        if self.classic:
            return {"h": (self.m,)}
        return {name: (self.layers, self.m) for name in self.carried}

    def state_views(self, flat_state: np.ndarray) -> dict[str, np.ndarray]:
        """Named views of one stream's flat carried state (S,)."""
        out, start = {}, 0
        for name, shape in self.state_shapes().items():
            n = int(np.prod(shape))
            out[name] = flat_state[start:start + n].reshape(shape)
            start += n
        return out

    def initialise(self, flat: np.ndarray, rng: np.random.Generator, sigma: float) -> None:
        """Draw the weights of ``flat`` in the order of ``shapes``, each at its own shape: the
        rnn cell N(0, sigma) (the assignment's), the gated cells U(-1/sqrt(m), 1/sqrt(m))
        (PyTorch's), an embedding N(0, 1) (PyTorch's); biases 0, but for the LSTM's forget
        gate (``LSTM_FORGET_BIAS``)."""
        views = self.views(flat)
        uniform = cell_of(self.cell).init == "uniform"
        bound = 1.0 / np.sqrt(self.m)
        for name, view in views.items():
            if name == "embedding.weight":
                view[...] = rng.normal(0.0, 1.0, size=view.shape)
            elif view.ndim == 2:
                view[...] = (rng.uniform(-bound, bound, size=view.shape) if uniform
                             else rng.normal(0.0, sigma, size=view.shape))
            else:
                view[...] = 0.0
        if self.cell == "lstm":
            for k in range(self.layers):
                views[f"bias_ih_l{k}"][self.m:2 * self.m] = LSTM_FORGET_BIAS
