"""The named arrays the kernels work on, and the one function that allocates each.

``Workspace``: the buffers of one training update of B streams of the classic cell, also used
for scoring a text (one stream) and for one chunk's gradients (gradcheck, tests).
``StackWorkspace``: the same for a stack of layers of any cell (``stack.py``). ``RunState``:
what the training loop reads and writes from update to update. Both are NamedTuples of NumPy arrays, which Numba
passes into kernels as they are; scalars that kernels update live in arrays of one element.
"""
from typing import NamedTuple

import numpy as np

STREAM_BLOCK = 8  # streams per block: W.T and V.T are read once per timestep for up to this many
# a stack's recurrent weights (4 m^2 numbers per layer for the LSTM) outgrow the caches sooner:
# more streams share each pass over them, in blocks of 16, 8 or 4 streams (the products' register
# tiles take 4 rows: a block of 6 ran its last 2 streams through the scalar path, 12 % slower)
# and up to STACK_BLOCK_ROWS (streams x chunk length) rows of gates per block, past which the
# block's gate buffers fall out of the caches (benchmarks/README.md)
STACK_STREAM_BLOCKS = (16, 8, 4)
STACK_BLOCK_ROWS = 800


def padded_row(length: int, itemsize: int) -> int:
    """``length``, or 64 bytes more where its rows would be a multiple of 256 bytes apart: the
    rows a tile reads down a column block then fall into different cache sets, where at 4 KB
    apart (an LSTM 256's W_hh.T in float32) they evict each other and the product runs at half
    speed (benchmarks/README.md)."""
    return length + (64 // itemsize if (length * itemsize) % 256 == 0 else 0)


def stream_blocks(B: int) -> list[int]:
    """Stream count of each of the classic cell's blocks, for B streams: ceil(B / STREAM_BLOCK)
    blocks of near-equal size, earlier blocks one larger. A function of B alone, so results
    never depend on the number of threads that run the blocks."""
    count = -(-B // STREAM_BLOCK)
    return [B // count + (1 if i < B % count else 0) for i in range(count)]


class Workspace(NamedTuple):
    """Buffers of one update of B streams in nb blocks (``stream_blocks``; G the largest block).

    Per-block buffers are flat, so that blocks of different sizes share one array; block j of
    G_j streams reshapes the start of its row (``block_views``).
    """

    block_starts: np.ndarray  # (nb+1,) int64: block j holds streams block_starts[j] .. [j+1] - 1
    chars: np.ndarray  # (nb, G, n+1) of the book's dtype: each stream's chunk, inputs and targets
    hs: np.ndarray  # (nb, (n+1) G m): hidden states h_0..h_n
    ps: np.ndarray  # (nb, n G K): probabilities, then output gradients
    dh_out: np.ndarray  # (nb, n G m): V.T g_t, then da_t
    dh_next: np.ndarray  # (nb, G m): W.T da_{t+1}
    wh: np.ndarray  # (nb, G m): W h_{t-1}
    scratch: np.ndarray  # (nb, 3, rows max(m, K)): exp, tanh and softmax work
    block_grads: np.ndarray  # (nb, P): each block's summed gradient
    block_losses: np.ndarray  # (nb,) float64: each block's summed loss
    grads: np.ndarray  # (P,): the mean gradient of all streams (B > 1)
    WT: np.ndarray  # (m, m): W.T of the live parameters
    VT: np.ndarray  # (m, K): V.T
    held: np.ndarray  # (K,) bool: characters the update's chunks hold as inputs
    masks: np.ndarray  # (nb, n G m): dropout's multipliers; (nb, 0) without dropout
    dropped: np.ndarray  # (nb, (n+1) G m): h_t times the masks, which the output layer reads; (nb, 0) without
    dropout: np.ndarray  # (1,) float64: the dropout probability p, 0 for none
    seed: np.ndarray  # (1,) int64: the run's seed, which the masks are drawn from
    restart: np.ndarray  # (1,) int64: the input read from the zero state wherever it comes (documents' end
    # marker), -1 for none

    def block_views(self, j: int = 0, G: int = 1):
        """(hs (n+1, G, m), ps (n, G, K), dh_out (n, G, m), dh_next (G, m), wh (G, m), scratch)
        of block j, for Python callers (the loop kernel makes the same views)."""
        n = self.chars.shape[2] - 1
        m, K = self.WT.shape[0], self.VT.shape[1]
        return (self.hs[j, :(n + 1) * G * m].reshape(n + 1, G, m), self.ps[j, :n * G * K].reshape(n, G, K),
                self.dh_out[j, :n * G * m].reshape(n, G, m), self.dh_next[j, :G * m].reshape(G, m),
                self.wh[j, :G * m].reshape(G, m), self.scratch[j])


def allocate_workspace(streams: int, n: int, m: int, K: int, P: int, dtype, index_dtype, dropout: float = 0.0,
                       seed: int = 0, restart: int = -1) -> Workspace:
    """A ``Workspace`` for ``streams`` streams of chunks of ``n`` characters, hidden size m,
    vocabulary K and P parameters, with ``dropout`` before the output layer (masks drawn from
    ``seed``), restarting the state at each input ``restart`` (-1: none). A lone stream's exp and tanh work covers its whole chunk (one exp call per
    chunk); a block's, one row per stream."""
    sizes = stream_blocks(streams)
    nb, G = len(sizes), max(sizes)
    rows = n if G == 1 else G
    dtype = np.dtype(dtype)
    return Workspace(
        block_starts=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        chars=np.zeros((nb, G, n + 1), index_dtype),
        hs=np.zeros((nb, (n + 1) * G * m), dtype),
        ps=np.zeros((nb, n * G * K), dtype),
        dh_out=np.zeros((nb, n * G * m), dtype),
        dh_next=np.zeros((nb, G * m), dtype),
        wh=np.zeros((nb, G * m), dtype),
        scratch=np.zeros((nb, 3, rows * max(m, K)), dtype),
        block_grads=np.zeros((nb, P), dtype),
        block_losses=np.zeros(nb),
        grads=np.zeros(P, dtype),
        WT=np.zeros((m, m), dtype),
        VT=np.zeros((m, K), dtype),
        held=np.zeros(K, np.bool_),
        **_dropout_buffers(dropout, seed, nb, 1, n, G, m, dtype),
        restart=np.array([restart], np.int64),
    )


def _dropout_buffers(dropout: float, seed: int, nb: int, L: int, n: int, G: int, m: int, dtype) -> dict:
    """The masks, dropped, dropout and seed fields of a workspace: buffers of no size without
    dropout."""
    on = dropout > 0
    return dict(masks=np.zeros((nb, L * n * G * m if on else 0), dtype),
                dropped=np.zeros((nb, L * (n + 1) * G * m if on else 0), dtype),
                dropout=np.array([dropout], np.float64), seed=np.array([seed], np.int64))


class StackWorkspace(NamedTuple):
    """Buffers of one update of B streams through a stack of L layers of a cell with G m rows
    of weights per layer (gm), in nb blocks of at most G streams (``stream_blocks``).

    Per-block buffers are flat, as in ``Workspace``; block j of G_j streams reshapes the start
    of its row (``stack.block_views``).
    """

    block_starts: np.ndarray  # (nb+1,) int64
    chars: np.ndarray  # (nb, G, n+1) of the book's dtype
    hs: np.ndarray  # (nb, L (n+1) G m): each layer's h_0..h_n
    cs: np.ndarray  # (nb, L (n+1) G m): each layer's c_0..c_n (the LSTM's)
    gates: np.ndarray  # (nb, L n G gm): each layer's activated gates
    aux: np.ndarray  # (nb, L n G m): what a cell's backward step needs besides (tanh c_t; W_hn h + b_hn)
    ps: np.ndarray  # (nb, n G K): probabilities, then output gradients
    dh: np.ndarray  # (nb, 2, n G m): dL/dh_t of a layer, from above; the layer below's
    dg_ih: np.ndarray  # (nb, n G gm): the gradient of the input product's output
    dg_hh: np.ndarray  # (nb, n G gm): the gradient of the recurrent product's output
    dh_next: np.ndarray  # (nb, G m): dL/dh_t through step t+1
    dc_next: np.ndarray  # (nb, G m): dL/dc_t through step t+1
    hh: np.ndarray  # (nb, G gm): W_hh h_{t-1}
    scratch: np.ndarray  # (nb, 3, G max(gm, K)): exp, tanh, sigmoid and softmax work
    block_grads: np.ndarray  # (nb, P)
    block_losses: np.ndarray  # (nb,) float64
    grads: np.ndarray  # (P,): the mean gradient of all streams (B > 1)
    WT: np.ndarray  # (L, 2, m, >= gm): W_hh.T and (above layer 0) W_ih.T of the live parameters
    W: np.ndarray  # (L, 2, gm, >= m): W_hh and (above layer 0) W_ih, rows padded (``padded_row``)
    VT: np.ndarray  # (m, K): head.weight.T
    held: np.ndarray  # (K,) bool
    masks: np.ndarray  # (nb, L n G m): dropout's multipliers of each layer's h_t; (nb, 0) without dropout
    dropped: np.ndarray  # (nb, L (n+1) G m): each layer's h_t times its masks, what the layer above and the
    # output layer read; (nb, 0) without dropout
    dropout: np.ndarray  # (1,) float64: the dropout probability p, 0 for none
    seed: np.ndarray  # (1,) int64: the run's seed, which the masks are drawn from
    # with an input embedding (``embedding.py``), the blocks run on its one-hot fold:
    embedding: np.ndarray  # (1,) int64: the embedding's width D, 0 for one-hot inputs
    folded: np.ndarray  # (P,): the one-hot model the blocks read; (0,) without an embedding
    param_grads: np.ndarray  # (P + (K + gm) D - K gm,): the gradient of the embedding model; (0,) without
    restart: np.ndarray  # (1,) int64: the input read from the zero state wherever it comes, -1 for none
    prev: np.ndarray  # (nb, 2 G m): the h_{t-1}, c_{t-1} a step reads where some of its streams restart


def stack_block_streams(n: int) -> int:
    """Most streams in a stack's block for chunks of ``n`` characters (a function of n alone,
    so results never depend on the threads): the largest of STACK_STREAM_BLOCKS within
    STACK_BLOCK_ROWS rows, fewer only for chunks over a fourth of them."""
    for G in STACK_STREAM_BLOCKS:
        if G * n <= STACK_BLOCK_ROWS:
            return G
    return max(1, STACK_BLOCK_ROWS // n)


def stack_stream_blocks(B: int, n: int) -> list[int]:
    """Stream count of each of a stack's blocks, for B streams of chunks of n: whole blocks of
    ``stack_block_streams(n)``, then what is left, so that the blocks fill the register tiles."""
    G = stack_block_streams(n)
    return [G] * (B // G) + ([B % G] if B % G else [])


def allocate_stack_workspace(streams: int, n: int, L: int, m: int, gm: int, K: int, P: int, dtype,
                             index_dtype, dropout: float = 0.0, seed: int = 0, embedding: int = 0,
                             restart: int = -1) -> StackWorkspace:
    """A ``StackWorkspace`` for ``streams`` streams of chunks of ``n`` characters through L layers
    of hidden size m and gm weight rows, vocabulary K and P parameters (those of the one-hot
    model), with ``dropout`` on each layer's output (masks drawn from ``seed``) and an input
    embedding of width ``embedding`` (0: none), restarting the state at each input ``restart``
    (-1: none)."""
    sizes = stack_stream_blocks(streams, n)
    nb, G = len(sizes), max(sizes)
    dtype = np.dtype(dtype)
    zeros = lambda *shape: np.zeros(shape, dtype)  # noqa: E731
    return StackWorkspace(
        block_starts=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        chars=np.zeros((nb, G, n + 1), index_dtype),
        hs=zeros(nb, L * (n + 1) * G * m), cs=zeros(nb, L * (n + 1) * G * m),
        gates=zeros(nb, L * n * G * gm), aux=zeros(nb, L * n * G * m), ps=zeros(nb, n * G * K),
        dh=zeros(nb, 2, n * G * m), dg_ih=zeros(nb, n * G * gm), dg_hh=zeros(nb, n * G * gm),
        dh_next=zeros(nb, G * m), dc_next=zeros(nb, G * m), hh=zeros(nb, G * gm),
        scratch=zeros(nb, 3, G * max(gm, K)),
        block_grads=zeros(nb, P), block_losses=np.zeros(nb), grads=zeros(P),
        **stack_weight_copies(L, m, gm, K, dtype)._asdict(), held=np.zeros(K, np.bool_),
        **_dropout_buffers(dropout, seed, nb, L, n, G, m, dtype),
        embedding=np.array([embedding], np.int64), folded=zeros(P if embedding else 0),
        param_grads=zeros(P + (K + gm) * embedding - K * gm if embedding else 0),
        restart=np.array([restart], np.int64), prev=zeros(nb, 2 * G * m),
    )


class StackWeights(NamedTuple):
    """The layouts of a stack's weights that its products read (``stack.stack_transposes_into``)."""

    WT: np.ndarray  # (L, 2, m, >= gm): W_hh.T and (above layer 0) W_ih.T, rows padded
    W: np.ndarray  # (L, 2, gm, >= m): W_hh and (above layer 0) W_ih, rows padded
    VT: np.ndarray  # (m, K): head.weight.T


def stack_weight_copies(L: int, m: int, gm: int, K: int, dtype) -> StackWeights:
    dtype = np.dtype(dtype)
    return StackWeights(np.zeros((L, 2, m, padded_row(gm, dtype.itemsize)), dtype),
                        np.zeros((L, 2, gm, padded_row(m, dtype.itemsize)), dtype), np.zeros((m, K), dtype))


class RunState(NamedTuple):
    """What the training loop carries from update to update (all read and written).

    The model is kept twice: when an update sets a new best smooth loss it writes into the
    other buffer, so that the model that earned it stays intact without a copy.
    """

    params: np.ndarray  # (2, P): the live buffer is params[current[0]]
    mem: np.ndarray  # (2, k, P): the optimizer's k arrays, beside params
    H: np.ndarray  # (B, S): each stream's carried state (S = m for the classic cell)
    positions: np.ndarray  # (B,) int64: each stream's next chunk start
    best_H: np.ndarray  # (B, S): the start states of the best model's chunks
    best_positions: np.ndarray  # (B,) int64
    current: np.ndarray  # (1,) int64: 0 or 1, the live buffer
    update: np.ndarray  # (1,) int64: updates applied
    best: np.ndarray  # (1,) int64: the buffer holding the best model, -1 before any
    best_update: np.ndarray  # (1,) int64: updates applied to the best model
    smooth: np.ndarray  # (1,) float64: the smooth loss, NaN before the first update
    best_smooth: np.ndarray  # (1,) float64: the lowest smooth loss seen


def new_run_state(params, mem, H, positions, update: int, smooth: float, best_smooth: float) -> RunState:
    """A ``RunState`` starting from the flat ``params`` (P,) and the optimizer's arrays ``mem``
    (k, P), carried states H (B, S)
    and chunk starts (B,); no best model yet."""
    return RunState(
        params=np.stack([params, params]), mem=np.stack([mem, mem]),
        H=np.array(H, copy=True), positions=np.array(positions, np.int64),
        best_H=np.zeros_like(H), best_positions=np.zeros(len(positions), np.int64),
        current=np.zeros(1, np.int64), update=np.array([update], np.int64), best=np.array([-1], np.int64),
        best_update=np.zeros(1, np.int64), smooth=np.array([smooth]), best_smooth=np.array([best_smooth]),
    )
