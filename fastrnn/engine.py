"""The engine: the one object that runs a model's kernels, chosen once from its layout.

``engine_for(layout)`` gives the classic cell's engine (its own kernels, the assignment's model
bit for bit) or a stack's (any cell, any number of layers, an input embedding); both offer
what training, evaluation, sampling and the gradient check need: a workspace of S streams and
chunks of n characters, the training loop's builds, one chunk's loss and gradients, a text's
loss and sampled text. Nothing outside this module and the kernels asks which of the two a
model is.

``Trainer`` drives the training loop of one run on its engine: the run state and workspace,
allocated once, and the model states read back from them.
"""
from __future__ import annotations

import numba
import numpy as np

from .cells import Layout
from .kernels import loop, sampler
from .kernels.embedding import embedding_grads_into
from .kernels.optim import OptimizerOptions
from .kernels.stack import kernels_for
from .kernels.workspace import allocate_stack_workspace, allocate_workspace, new_run_state, stack_weight_copies
from .documents import Documents, document_starts
from .model import State, updates_per_epoch, with_streams
from .optimizers import learning_rates
from .sharing import ThreadShare


class Engine:
    """The kernels of the models of one ``cells.Layout``; ``ClassicEngine`` and
    ``StackEngine`` fill in where the two differ."""

    kind = ""  # the training loop's build (``kernels.loop.train_loops``)
    name = ""  # the kernels' build, as the compile times name it (``build.CompileTimes``)

    def __init__(self, layout: Layout):
        self.layout = layout

    @property
    def dims(self) -> tuple:
        """The model's sizes as the kernels take them."""
        raise NotImplementedError

    def workspace(self, streams: int, n: int, dtype, index_dtype, dropout: float = 0.0, seed: int = 0,
                  restart: int = -1):
        """The buffers of ``streams`` streams of chunks of ``n`` characters, with ``dropout``
        (its masks drawn from ``seed``), the state starting afresh at each input ``restart``
        (documents' end marker; -1: none)."""
        raise NotImplementedError

    def training_loops(self, optimizer: str):
        """(serial build, parallel build) of the training loop with ``optimizer``."""
        return loop.train_loops(self.kind, optimizer)

    def training_loop(self, optimizer: str, blocks: int, parallel: bool | None = None):
        """The build that runs ``blocks`` blocks of streams: the parallel one (``parallel``
        True), the serial one (False), or by default the one this process's threads suit."""
        if parallel is None:
            return loop.loop_for(blocks, numba.get_num_threads(), self.kind, optimizer)
        return self.training_loops(optimizer)[1 if parallel else 0]

    def chunk_gradients(self, params: np.ndarray, x: np.ndarray, y: np.ndarray, h0: np.ndarray, restart: int = -1
                        ) -> tuple[float, np.ndarray]:
        """(loss, raw gradients (P,)) of one chunk: inputs x, targets y (n,) int, from the flat
        carried state h0 (S,), starting afresh at each input ``restart`` (gradcheck, tests)."""
        x = np.asarray(x)
        work = self.workspace(1, len(x), params.dtype, x.dtype, restart=restart)
        book = np.concatenate([x, np.asarray(y)[-1:]]).astype(x.dtype)
        # the block function reads the run's chunk starts, carried states and update number
        run = new_run_state(params, np.zeros((1, params.size), params.dtype), np.asarray(h0, params.dtype)[None, :],
                            [0], 0, float("nan"), float("inf"))
        return self._chunk_gradients(work, run, book)

    def _chunk_gradients(self, work, run, book) -> tuple[float, np.ndarray]:
        """(loss, gradients) of the chunk at run.positions[0] of ``book``, through ``work``."""
        raise NotImplementedError

    def text_loss(self, work, params: np.ndarray, text: np.ndarray, h0: np.ndarray) -> float:
        """Summed cross-entropy in nats of predicting text[1:], text[0] being fed to the flat
        carried state h0 (S,), in chunks of ``work``'s (a workspace of one stream)."""
        raise NotImplementedError

    def sample(self, params: np.ndarray, n: int, rng: np.random.Generator, temperature: float = 1.0, h=None,
               prime=(), num: int | None = None, top_k: int = 0) -> np.ndarray:
        """``n`` sampled character indices (int64), or with ``num`` a (num, n) array of texts
        sampled at once from the same start (``sample.sample_indices`` says the rest); prime
        (L,) or, with ``num``, (num, L) for each text its own."""
        count = 1 if num is None else num
        H = np.zeros((count, self.layout.state_size), params.dtype)
        if h is not None:
            H[:] = h
        prime = np.asarray(prime, dtype=np.int64)
        if prime.ndim == 1:  # the same for every text
            prime = np.tile(prime, (count, 1))
        out = self.sample_states(params, H, prime, rng.random(count * n).reshape(count, n), temperature, top_k)
        return out[0] if num is None else out

    def sample_states(self, params: np.ndarray, H: np.ndarray, prime: np.ndarray, uniforms: np.ndarray,
                      temperature: float = 1.0, top_k: int = 0) -> np.ndarray:
        """(N, n) sampled characters of N texts from their states H (N, S), advanced in place
        through each text's prime (N, L) int64 and the first n - 1 characters drawn (not the
        last: a text continues with it as its prime); uniforms (N, n) pick the characters."""
        out = np.zeros(uniforms.shape, dtype=np.int64)
        self._sample_chars(out, H, params, prime, uniforms, float(1.0 / temperature), int(top_k))
        return out

    def _sample_chars(self, out, H, params, prime, uniforms, inv_temperature, top_k) -> None:
        """The sampler's kernel: ``out`` (N, n) written, ``H`` (N, S) advanced in place."""
        raise NotImplementedError


class ClassicEngine(Engine):
    """The assignment's model (one rnn layer on one-hot inputs) on its own kernels:
    ``kernels/rnn.py``, the loop's own hooks, ``sampler.sample_chars`` and ``text_loss``."""

    kind = name = "classic"

    @property
    def dims(self) -> tuple:
        return self.layout.m, self.layout.K

    def workspace(self, streams, n, dtype, index_dtype, dropout=0.0, seed=0, restart=-1):
        m, K = self.dims
        return allocate_workspace(streams, n, m, K, self.layout.size, dtype, index_dtype, dropout, seed, restart)

    def _chunk_gradients(self, work, run, book):
        params = run.params[0]
        loop.transposes_for(work, params, self.dims)
        loop.block_loss_and_grads(0, run, work, book, params, self.dims)
        return float(work.block_losses[0]), work.block_grads[0].copy()

    def text_loss(self, work, params, text, h0):
        return float(sampler.text_loss(work, text, h0, params, *self.dims))

    def _sample_chars(self, out, H, params, prime, uniforms, inv_temperature, top_k):
        m, K = self.dims
        views = self.layout.views(params)
        sampler.sample_chars(out, H, np.empty((m, m + K), params.dtype), prime, uniforms, views["W"], views["U"].T,
                             views["V"], views["b"], views["c"], inv_temperature, top_k)


class StackEngine(Engine):
    """A stack of layers of any cell (``kernels/stack.py``, compiled per cell), after an input
    embedding where there is one: the kernels run on the one-hot model it folds into
    (``Layout.fold``)."""

    @property
    def kind(self) -> str:
        return self.layout.cell

    @property
    def name(self) -> str:
        return f"{self.layout.cell} {self.layout.layers}"

    @property
    def dims(self) -> tuple:
        layout = self.layout
        return layout.layers, layout.m, layout.K, layout.gm

    def workspace(self, streams, n, dtype, index_dtype, dropout=0.0, seed=0, restart=-1):
        L, m, K, gm = self.dims
        return allocate_stack_workspace(streams, n, L, m, gm, K, self.layout.folded_size, dtype, index_dtype, dropout,
                                        seed, self.layout.embedding, restart)

    def _chunk_gradients(self, work, run, book):
        layout = self.layout
        kernels = kernels_for(self.kind)
        model = layout.fold(run.params[0])
        kernels["transposes_for"](work, model, self.dims)
        kernels["block_loss_and_grads"](0, run, work, book, model, self.dims)
        grads = work.block_grads[0].copy()
        if layout.embedding:  # the chain rule from the folded model's gradient to the embedding's
            grads = np.empty(layout.size, model.dtype)
            embedding_grads_into(grads, work.block_grads[0], run.params[0], layout.K, layout.embedding, layout.gm)
        return float(work.block_losses[0]), grads

    def text_loss(self, work, params, text, h0):
        return float(sampler.stack_kernels(self.kind)["text_loss"](work, text, h0, self.layout.fold(params),
                                                                   self.dims))

    def _sample_chars(self, out, H, params, prime, uniforms, inv_temperature, top_k):
        L, m, K, gm = self.dims
        weights = stack_weight_copies(L, m, gm, K, params.dtype)
        sampler.stack_kernels(self.kind)["sample_stack"](out, H, *weights, prime, uniforms, self.layout.fold(params),
                                                         self.dims, inv_temperature, top_k)


def engine_for(layout: Layout) -> Engine:
    """The engine of models of ``layout``."""
    return ClassicEngine(layout) if layout.classic else StackEngine(layout)


def optimizer_options(hyper, dtype) -> OptimizerOptions:
    """The optimizer's options of a run of ``hyper``, by name, as scalars of ``dtype`` (the
    parameters'); the global-norm clip, where there is one, replaces the element-wise one."""
    options = {name: getattr(hyper, name) for name in OptimizerOptions._fields}
    if hyper.clip_norm > 0:
        options["clip"] = np.inf
    return OptimizerOptions(**{name: np.dtype(dtype).type(value) for name, value in options.items()})


class Trainer:
    """The run state and workspace of ``kernels.loop`` for one run, allocated once, and the
    model states read back from them."""

    def __init__(self, state: State, book: np.ndarray, parallel: bool | None = None, share_machine: bool = False,
                 documents: Documents | None = None):
        """``parallel``: run the loop's parallel build (True) or its serial one (False); by
        default the parallel one where there are several blocks of streams and threads.
        ``share_machine``: run each block of updates on fewer of Numba's threads while other
        processes' threads are runnable (``sharing.py``). ``documents``: a documents model's
        training documents, packed anew in the order of each epoch (``book`` is then one
        packing of them: its length is every packing's)."""
        self.vocab, self.hyper, self.book = state.vocab, state.hyper, book
        h = state.hyper
        n, B = h.seq_length, h.streams
        self.per_epoch = updates_per_epoch(book.shape[0], n)
        self.documents = documents
        if documents is not None:  # the packing the state's positions refer to
            self.book = documents.packed_for_epoch(h.seed, self.epoch_of(state.update))
        if B > self.per_epoch:
            raise ValueError(f"{B} streams on a text of {self.per_epoch} chunks: streams would coincide")
        if B > 1 and state.stream_h is None:
            state = with_streams(state.copy(), book.shape[0])
        H, positions = ((state.h[None, :], [state.position]) if B == 1
                        else (state.stream_h, state.stream_positions))
        self.run_state = new_run_state(state.params, state.opt_state, H, positions, state.update,
                                       state.smooth_loss, state.best_smooth_loss)
        self.engine = engine_for(state.layout)
        self.work = self.engine.workspace(B, n, state.params.dtype, book.dtype, h.dropout, h.seed, state.restart)
        self.restart = state.restart
        self.best_val_loss = state.best_val_loss
        self._loop = self.engine.training_loop(h.optimizer, len(self.work.block_starts) - 1, parallel)
        self._opts = optimizer_options(h, state.params.dtype)
        self._dims = self.engine.dims
        self._block = None  # the block function as the loop takes it, once needed
        self._share = None
        if share_machine and len(self.work.block_starts) > 2:
            self._share = ThreadShare(numba.get_num_threads())

    @property
    def update(self) -> int:
        return int(self.run_state.update[0])

    @property
    def smooth_loss(self) -> float:
        return float(self.run_state.smooth[0])

    def run(self, n_updates: int) -> tuple[np.ndarray, np.ndarray]:
        """Apply ``n_updates`` updates; returns their chunk losses and smooth losses."""
        losses = np.empty(n_updates)
        smooths = np.empty(n_updates)
        every = self.hyper.restart_every
        done = 0
        while done < n_updates:
            count = n_updates - done
            if self.documents is not None:
                count = min(count, self._pack_documents())
            if every:
                if self.update % every == 0 and self.update > 0:
                    self._restart_streams()
                count = min(count, every - self.update % every)
            etas = learning_rates(self.hyper, self.update, count).astype(self.run_state.params.dtype)
            if self._block is None:
                self._block = self._loop.pointer(self.run_state, self.work, self.book, self._dims)
            if self._share is None:
                self._loop(losses[done:done + count], smooths[done:done + count], self.run_state, self.work,
                           self.book, etas, self._opts, self._dims, self._block)
            else:
                with self._share.threads_for_block():
                    self._loop(losses[done:done + count], smooths[done:done + count], self.run_state, self.work,
                               self.book, etas, self._opts, self._dims, self._block)
            done += count
        return losses, smooths

    def _first_update_of(self, epoch: int) -> int:
        """The updates applied before the first update of pass ``epoch`` (``epoch_of``)."""
        return -(-(epoch * self.per_epoch + 1) // self.hyper.streams) - 1

    def _pack_documents(self) -> int:
        """Where the next update starts a pass: the documents packed in its order, each stream
        at the start of a document spread evenly through them, from the zero state. Returns
        the updates left in the pass."""
        epoch = self.epoch_of(self.update + 1)
        if self.update == self._first_update_of(epoch):
            run, B = self.run_state, self.hyper.streams
            self.book = self.documents.packed_for_epoch(self.hyper.seed, epoch)
            spread = np.arange(B, dtype=np.int64) * (self.book.shape[0] // B)
            run.positions[:] = document_starts(self.book, self.restart, spread)
            run.H[:] = 0.0
        return self._first_update_of(epoch + 1) - self.update

    def _restart_streams(self) -> None:
        """``restart_every``: every stream starts afresh, h = 0, at a place drawn from (seed,
        update), so that h = 0 means "anywhere in the book" to the model, not only its first
        line; a function of the update alone, so resumed runs restart where straight ones do."""
        rng = np.random.default_rng([self.hyper.seed, 2, self.update])
        last_start = self.book.shape[0] - self.hyper.seq_length - 1
        run = self.run_state
        run.positions[:] = rng.integers(0, last_start + 1, size=run.positions.shape[0])
        if self.documents is not None:
            run.positions[:] = document_starts(self.book, self.restart, run.positions)
        run.H[:] = 0.0

    def epoch_of(self, update: int) -> int:
        """The pass over the book that the chunks of update number ``update`` (B chunks each,
        counted from 1) belong to, counted from 0; for one stream without restarts, the wraps
        so far."""
        return max(0, update * self.hyper.streams - 1) // self.per_epoch

    def _char_at(self, position: int) -> int | None:
        """The input that follows a hidden state carried to ``position``: book[position], even
        where the next update starts the book again (h then ends a chunk that read the
        characters before it, so the pair is still a state of the model on the book)."""
        return int(self.book[position]) if position < self.book.shape[0] else None

    def compile_loop(self) -> None:
        """Compile this trainer's loop build (or load it from the cache) without the block
        function it calls (``kernels.loop.TrainLoop``)."""
        losses = np.empty(1)
        etas = np.empty(1, self.run_state.params.dtype)
        self._loop.compile_loop(losses, losses, self.run_state, self.work, self.book, etas, self._opts, self._dims)

    def live_params(self) -> np.ndarray:
        """The live parameter buffer (a view, not a copy)."""
        return self.run_state.params[self.run_state.current[0]]

    def _state(self, buffer: int, H: np.ndarray, positions: np.ndarray, update: int, epoch: int,
               smooth: float, best_smooth: float) -> State:
        run = self.run_state
        state = State(self.vocab, self.hyper, run.params[buffer].copy(), run.mem[buffer].copy(), H[0].copy(),
                      update, epoch, int(positions[0]), smooth, best_smooth, self.best_val_loss,
                      next_char=self._char_at(int(positions[0])))
        if self.hyper.streams > 1:
            state.stream_h, state.stream_positions = H.copy(), positions.copy()
        return state

    def state(self) -> State:
        """A copy of the live model and optimizer state."""
        run = self.run_state
        return self._state(run.current[0], run.H, run.positions, self.update, self.epoch_of(self.update),
                           self.smooth_loss, float(run.best_smooth[0]))

    def best_state(self) -> State | None:
        """The model with the lowest smooth loss seen by this trainer, or None if none yet.

        It is the model *before* the update whose chunk gave that smooth loss: the one that
        was evaluated, with the hidden states and positions its chunks started from.
        ``smooth_loss`` holds that lowest value.
        """
        run = self.run_state
        if run.best[0] < 0:
            return None
        update, s = int(run.best_update[0]), float(run.best_smooth[0])
        state = self._state(run.best[0], run.best_H, run.best_positions, update, self.epoch_of(update + 1), s, s)
        state.best_val_loss = float("inf")
        return state
