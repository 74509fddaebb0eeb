"""The training loop: updates over chunks of a book, for one stream or many.

Per update, each of the B streams takes the next chunk at its own position with its own
hidden state; the streams run in blocks (``workspace.stream_blocks``) through the cell, so its
products are matrix-matrix; the B gradients are averaged (so eta keeps its meaning) before the
clip (of each element, or of the norm) and one optimizer step. One stream is one block of one:
the classic algorithm, whose gradient goes to the optimizer as it is.

The loop is compiled twice from one body: ``train_updates`` runs the blocks one after another,
``train_updates_parallel`` on Numba's threads (``prange``). Nothing depends on how blocks are
shared among threads, so both give the same numbers bit for bit; a run that has one block, or
one thread, needs only the first, which compiles faster and has no thread start-up per update.
Both call the block function by its address (``TrainLoop``), so that it compiles once, apart
from them.

The body reaches the model through six hooks, the classic cell's below and a stack's in
``stack.py``: ``model_params`` (the parameters the blocks read: with an input embedding, its
one-hot fold), ``transposes_for``, ``block_loss_and_grads``, ``param_grads`` (the gradient
the optimizer takes), ``keep_end_states`` and ``held_rows``, all taking the model's sizes as
one tuple ``dims`` ((m, K) for the classic cell, (L, m, K, gm) for a stack). ``loop_for``
hands out the builds of the classic cell and of each stack's cell (``train_loops``), compiled
only when first run.
"""
import math

import numpy as np
from numba import njit, prange, typeof, types
from numba.core import config as numba_config
from numba.core.types.function_type import WrapperAddressProtocol
from numba.experimental.function_type import _get_wrapper_address as wrapper_address

from .config import JIT, compiled_as
from .dropout import dropout_masks_into
from .linalg import chunks_into, copy_rows_into
from .optim import OPTIMIZER_STEPS, adagrad_step, scale_to_norm
from .rnn import chunk_loss_and_grads, transposes_into
from .stack import kernels_for

SMOOTHING = 0.999


@njit(inline="always")
def smoothed(smooth, loss):
    """The smooth loss after a chunk loss of ``loss``: 0.999 s + 0.001 loss, starting at the
    first chunk's loss (``smooth`` is NaN before it)."""
    return loss if math.isnan(smooth) else SMOOTHING * smooth + (1.0 - SMOOTHING) * loss


def _step_and_keep_best(run, grads, held, smooth, first_row, row_len, eta, opts):
    """Record ``smooth`` as the run's smooth loss and apply the optimizer's step
    (``optimizer_step``, one of ``optim.OPTIMIZER_STEPS``) to the live model of ``run`` (a
    ``RunState``); returns whether it is a new best, in which case the step writes into the
    other buffer so that the model that earned it stays intact, and run.best names it.
    grads (P,): read.   held (K,) bool: the characters the update's chunks held as inputs, whose
    input-weight rows of ``row_len`` from ``first_row`` the optimizer may pass over otherwise.
    eta: this update's learning rate.   opts: the optimizer's options (``optim.OptimizerOptions``)."""
    cur = run.current[0]
    dst = cur
    best = smooth < run.best_smooth[0]
    if best:
        run.best_smooth[0] = smooth
        run.best[0] = cur
        run.best_update[0] = run.update[0]
        dst = 1 - cur
    optimizer_step(run.params[dst], run.mem[dst], run.params[cur], run.mem[cur], grads, held, first_row, row_len,
                   eta, opts, run.update[0] + 1, dst == cur)
    run.current[0] = dst
    run.update[0] += 1
    run.smooth[0] = smooth
    return best


# Compiled on its own rather than inlined: inlined into the prange body of the parallel build,
# it gave wrong losses there (Numba's parfor pass mishandled the inlined code). The loop calls
# it by address (``TrainLoop``).
@njit(**JIT)
def block_loss_and_grads(j, run, work, book, params, dims):
    """Block j of ``work`` (a ``Workspace``) through the cell: its streams' chunks from ``book``
    at run.positions, starting from run.H, with the masks of the update's number (counted from
    1) where there is dropout; writes work.block_grads[j] and work.block_losses[j] and leaves
    h_n of each stream at the end of work.hs[j]; where a stream reads work.restart (documents'
    end marker), its state restarts from 0. params (P,): read; work.WT and
    work.VT hold its transposes.   dims: (m, K)."""
    m, K = dims
    first = work.block_starts[j]
    G = work.block_starts[j + 1] - first
    n = work.chars.shape[2] - 1
    xy = work.chars[j, :G]
    chunks_into(xy, book, run.positions[first:first + G])
    hs = work.hs[j, :(n + 1) * G * m].reshape((n + 1, G, m))
    copy_rows_into(hs[0], run.H[first:first + G])
    if work.dropout[0] > 0.0:
        masks = work.masks[j, :n * G * m].reshape((n, G, m))
        dropped = work.dropped[j, :(n + 1) * G * m].reshape((n + 1, G, m))
        dropout_masks_into(masks.reshape((1, n, G, m)), work.dropout[0], work.seed[0], run.update[0] + 1, first)
    else:
        masks = work.masks[j, :0].reshape((0, G, m))
        dropped = hs
    work.block_losses[j] = chunk_loss_and_grads(
        work.block_grads[j], hs, dropped, work.ps[j, :n * G * K].reshape((n, G, K)),
        work.dh_out[j, :n * G * m].reshape((n, G, m)), work.dh_next[j, :G * m].reshape((G, m)),
        work.wh[j, :G * m].reshape((G, m)), work.scratch[j], xy[:, :n], xy[:, 1:], work.WT, work.VT, params, masks,
        m, K, work.restart[0])


@njit(inline="always")
def transposes_for(work, params, dims):
    """work.WT, work.VT <- W.T, V.T of params (P,)."""
    m, K = dims
    transposes_into(work.WT, work.VT, params, m, K)


@njit(inline="always")
def keep_end_states(run, work, j, first, G, n, dims):
    """run.H of block j's G streams from ``first`` <- the h_n their chunks ended in."""
    m, K = dims
    copy_rows_into(run.H[first:first + G], work.hs[j, n * G * m:(n + 1) * G * m].reshape((G, m)))


@njit(inline="always")
def held_rows(work, dims):
    """(first index, length) of the rows of U.T, which the optimizer skips for characters no
    chunk held."""
    m, K = dims
    return m * m, m


@njit(inline="always")
def model_params(work, params, dims):
    """The parameters the blocks read: params themselves."""
    return params


@njit(inline="always")
def param_grads(work, grads, params, dims):
    """The gradient the optimizer takes: the blocks' own."""
    return grads


def _train_updates(losses, smooths, run, work, book, etas, opts, dims, block):
    """Apply ``losses.shape[0]`` training updates.

    losses, smooths (N,) float64: written with each update's chunk loss and smooth loss (per
        chunk: the mean over streams).
    run: a ``RunState``, read and written.   work: a ``Workspace`` (``StackWorkspace``) for
        run.H.shape[0] streams.
    book (N_chars,) int: the encoded text; a stream with fewer than n + 1 characters left
        starts again at 0 with its state 0.
    etas (N,): each update's learning rate.   opts: the optimizer's options, of the parameters'
        dtype (``optim.OptimizerOptions``).   dims: the model's sizes.
    block: the block function, by address (``TrainLoop``).
    """
    B = run.H.shape[0]
    nb = work.block_starts.shape[0] - 1
    n = work.chars.shape[2] - 1
    P = work.grads.shape[0]
    for step in range(losses.shape[0]):
        for s in range(B):
            if run.positions[s] + n + 1 > book.shape[0]:
                run.positions[s] = 0
                run.H[s] = 0.0
        live = run.params[run.current[0]]
        model = model_params(work, live, dims)
        transposes_for(work, model, dims)  # shared, read-only, by all blocks
        for j in prange(nb):
            # prange's index is unsigned: the block function takes an int64
            block(np.int64(j), run, work, book, model, dims)
        loss = 0.0
        for j in range(nb):
            loss += work.block_losses[j]
        loss /= B
        smooth = smoothed(run.smooth[0], loss)
        held, chars = work.held, work.chars
        held[:] = False
        for j in range(nb):
            for s in range(work.block_starts[j + 1] - work.block_starts[j]):
                for t in range(n):
                    held[chars[j, s, t]] = True
        if B > 1:
            # g = (G_0 + ... + G_{nb-1}) / B, the block sums summed in block order. The sum
            # writes through a name of its own: through ``grads``, bound to one of two arrays
            # below, the serial build counted a reference up and down for every element (4 ms
            # an update at P = 350,000)
            mean, block_grads = work.grads, work.block_grads
            for i in prange(P):
                acc = 0.0
                for j in range(nb):
                    acc += block_grads[j, i]
                mean[i] = acc / B
        grads = work.block_grads[0] if B == 1 else work.grads
        grads = param_grads(work, grads, live, dims)
        if opts.clip_norm > 0.0:
            scale_to_norm(grads, opts.clip_norm)
        first_row, row_len = held_rows(work, dims)
        if step_and_keep_best(run, grads, held, smooth, first_row, row_len, etas[step], opts):
            copy_rows_into(run.best_H, run.H)
            for s in range(B):
                run.best_positions[s] = run.positions[s]
        for j in range(nb):
            first = work.block_starts[j]
            G = work.block_starts[j + 1] - first
            keep_end_states(run, work, j, first, G, n, dims)
        for s in range(B):
            run.positions[s] += n
        losses[step] = loss
        smooths[step] = smooth


class BlockPointer(WrapperAddressProtocol):
    """The block function compiled for one signature, as Numba passes a function by address.
    Its type and address are worked out once: Numba asks for both at every call of the loop."""

    def __init__(self, block, signature):
        self.sig = signature
        # compiles the block function (or loads it from the cache) for the signature; Numba's
        # own lookup of the address it passes a dispatcher by
        self.address = wrapper_address(block, signature)
        self._numba_type_ = types.FunctionType(signature)

    def __wrapper_address__(self):
        return self.address

    def signature(self):
        return self.sig


class TrainLoop:
    """A build of the loop, called with the loop's arguments, reaching the block function by
    its address. Numba optimises and compiles a compiled function again, in full, inside each
    compiled function that calls it, and a prange puts three such callers (its body and two
    wrappers) between the loop and what the body calls: called directly, the cell's whole tree
    compiled five times over in the parallel build (the LSTM recipe's: 47 s in one process,
    34 s by address).
    By address, the block function and the loop also compile apart, in two processes at once
    on a cold cache (``build.compile_kernels``)."""

    def __init__(self, build, block):
        self.build, self.block = build, block
        self.name = getattr(build, "py_func", build).__qualname__
        self._pointers = {}

    def __call__(self, losses, smooths, run, work, book, etas, opts, dims, block=None):
        """Run the loop; ``block``: ``pointer(run, work, book, dims)``, worked out here where
        not given (0.2 ms: a caller that runs the loop often keeps it)."""
        block = self.pointer(run, work, book, dims) if block is None else block
        self.build(losses, smooths, run, work, book, etas, opts, dims, block)

    def pointer(self, run, work, book, dims):
        """The block function for these arguments, as the loop takes it (compiled, or loaded
        from the cache, on first use)."""
        if numba_config.DISABLE_JIT:  # plain Python: the function itself
            return self.block
        key = self._signature(run, work, book, dims)
        if key not in self._pointers:
            self._pointers[key] = BlockPointer(self.block, key)
        return self._pointers[key]

    def compile_loop(self, losses, smooths, run, work, book, etas, opts, dims):
        """Compile the loop for these arguments (or load it from the cache), not the block
        function it calls."""
        if not numba_config.DISABLE_JIT:
            function = types.FunctionType(self._signature(run, work, book, dims))
            self.build.compile(tuple(map(typeof, (losses, smooths, run, work, book, etas, opts, dims))) + (function,))

    @staticmethod
    def _signature(run, work, book, dims):
        return types.void(types.int64, typeof(run), typeof(work), typeof(book), typeof(run.params[0]), typeof(dims))


def _builds(namespace, suffix):
    """(serial build, parallel build) of the loop with the hooks and optimizer of ``namespace``."""
    block = namespace["block_loss_and_grads"]
    return (TrainLoop(compiled_as(_train_updates, f"train_updates{suffix}", namespace, **JIT), block),
            TrainLoop(compiled_as(_train_updates, f"train_updates_parallel{suffix}", namespace, **JIT,
                                  parallel=True), block))


optimizer_step = adagrad_step
# inlined where it is called (as a plain function would be: its calls into the optimizer then
# compile with the loop), its globals those of the build it belongs to
step_and_keep_best = compiled_as(_step_and_keep_best, "step_and_keep_best", inline="always")
train_updates, train_updates_parallel = _builds(globals(), "")
_LOOPS = {("classic", "adagrad"): (train_updates, train_updates_parallel)}


def train_loops(kind: str, optimizer: str = "adagrad"):
    """(serial build, parallel build) of the loop for ``kind`` ("classic", or a stack's cell)
    and ``optimizer`` (a key of ``optim.OPTIMIZER_STEPS``)."""
    if (kind, optimizer) not in _LOOPS:
        namespace = dict(globals())
        if kind != "classic":
            namespace.update({name: f for name, f in kernels_for(kind).items()
                              if name in ("transposes_for", "block_loss_and_grads", "keep_end_states", "held_rows",
                                          "model_params", "param_grads")})
        suffix = ("" if kind == "classic" else f"_{kind}") + ("" if optimizer == "adagrad" else f"_{optimizer}")
        namespace["optimizer_step"] = OPTIMIZER_STEPS[optimizer]
        namespace["step_and_keep_best"] = compiled_as(_step_and_keep_best, f"step_and_keep_best{suffix}", namespace,
                                                      inline="always")
        _LOOPS[kind, optimizer] = _builds(namespace, suffix)
    return _LOOPS[kind, optimizer]


def loop_for(blocks: int, threads: int, kind: str = "classic", optimizer: str = "adagrad"):
    """The compiled loop to run ``blocks`` blocks of streams on ``threads`` threads."""
    serial, parallel = train_loops(kind, optimizer)
    return parallel if blocks > 1 and threads > 1 else serial
