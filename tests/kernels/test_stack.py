"""stack (and lstm, gru, the rnn's step): every update of a stack of each cell against the NumPy
reference from the same state, one at a time, for one stream and several, in float64 and
float32; one stream in a block equals that stream alone; the sampler carries on the state
training computes, bit for bit; the serial and parallel builds and the thread count change
nothing."""
from dataclasses import replace

import numba
import numpy as np
import pytest

from fastrnn.cells import CELLS, Layout
from fastrnn.engine import Trainer, engine_for
from fastrnn.kernels import loop
from fastrnn.kernels.sampler import stack_kernels
from fastrnn.kernels.stack import kernels_for, load_states, store_states
from fastrnn.model import Hyper, init_state, with_streams
from fastrnn.text import build_vocab

from helpers import assert_close, assert_updates_match_reference, kernel_update, reference_update, stacks

# every cell in one and two layers, and the first in three: a middle layer, fed and feeding
STACKS = stacks(1, 2) + [(next(iter(CELLS)), 3)]
# float32 rounds each product to 1e-7 of its scale; 25 steps through the gates leave 1e-5
TOLERANCE = {"float64": 1e-10, "float32": 2e-4}


def stack_state(text, cell, layers, *, hidden=6, seq_length=7, streams=1, dtype="float64", seed=1, clip=5.0,
                scale=1.0, **hyper):
    """A stack of ``layers`` layers of ``cell`` on ``text``, its weights scaled by ``scale`` (so
    that the gates leave their linear range), carrying a random state."""
    vocab = build_vocab(text)
    book = vocab.encode(text)
    state = init_state(vocab, Hyper(hidden=hidden, seq_length=seq_length, seed=seed, dtype=dtype, clip=clip,
                                    cell=cell, layers=layers, streams=streams, **hyper))
    state.params *= state.params.dtype.type(scale)
    state = with_streams(state, book.shape[0])
    rng = np.random.default_rng(seed)
    if streams == 1:
        state.h[:] = rng.uniform(-0.5, 0.5, state.h.shape)
    else:
        state.stream_h[:] = rng.uniform(-0.5, 0.5, state.stream_h.shape)
    return state, book


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell, layers", STACKS)
@pytest.mark.parametrize("streams", [1, 3])
def test_each_update_matches_reference(text, cell, layers, streams, dtype):
    # a book short enough that every stream wraps (epoch end, state reset) within the updates
    state, book = stack_state(text[:75], cell, layers, streams=streams, dtype=dtype, clip=0.5, scale=2.0)
    rtol = TOLERANCE[dtype]
    clipped = wrapped = False
    for step in range(12):
        state.best_smooth_loss = -np.inf if step % 2 else np.inf  # both AdaGrad paths
        expected, ref_loss, ref_grads = reference_update(state, book)
        _, got, loss, smooth, grads = kernel_update(state, book)
        assert_close(loss, ref_loss, rtol)
        assert_close(smooth, expected.smooth_loss, rtol)
        for name in ref_grads:
            assert_close(grads[name], ref_grads[name], rtol)
            clipped |= bool(np.any(np.abs(ref_grads[name]) > state.hyper.clip))
        assert_close(got.params, expected.params, rtol)
        assert_close(got.adagrad, expected.adagrad, rtol)
        if streams == 1:
            assert_close(got.h, expected.h, rtol)
            wrapped |= expected.position < state.position
        else:
            assert_close(got.stream_h, expected.stream_h, rtol)
            assert got.stream_positions.tolist() == expected.stream_positions.tolist()
            wrapped |= bool(np.any(expected.stream_positions < state.stream_positions))
        state = expected  # the next update starts from the reference's state
    assert clipped, "the gradient clip should have been exercised"
    assert wrapped, "the walk should have wrapped around the book"


# every cell, in turn one layer with Adam and two with AdaGrad (which passes over rows of E)
EMBEDDED = [(cell, 1, "adam") if i % 2 == 0 else (cell, 2, "adagrad") for i, cell in enumerate(CELLS)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell, layers, optimizer", EMBEDDED)
@pytest.mark.parametrize("streams", [1, 3])
def test_each_update_with_an_embedding_matches_reference(text, cell, layers, optimizer, streams, dtype):
    # the reference reads E[x_t] where the kernels fold E into one-hot input weights; a short
    # text, so that some characters are not in an update's chunks (AdaGrad passes over their
    # rows of E) and the streams wrap
    norm = dict(clip_norm=1.0, eta=0.01) if optimizer == "adam" else {}
    state, book = stack_state(text[:75], cell, layers, streams=streams, dtype=dtype, clip=0.5, scale=0.5,
                              embedding=5, optimizer=optimizer, **norm)
    assert state.layout.shapes()["embedding.weight"] == (state.vocab.size, 5) and not state.layout.classic
    assert_updates_match_reference(state, book, 12)


@pytest.mark.parametrize("cell, layers", stacks(2))
def test_a_stream_in_a_block_equals_that_stream_alone(text, cell, layers):
    state, book = stack_state(text, cell, layers, streams=5, seq_length=9, scale=2.0)
    trainer = Trainer(state, book)
    trainer.run(1)
    for s in range(5):
        p = int(state.stream_positions[s])
        _, grads = engine_for(state.layout).chunk_gradients(state.params, book[p:p + 9], book[p + 1:p + 10],
                                                            state.stream_h[s])
        alone = Trainer(replace_streams(state, s), book)
        alone.run(1)
        assert np.array_equal(alone.state().h, trainer.state().stream_h[s])
        assert np.array_equal(alone.work.block_grads[0], grads)


def replace_streams(state, s):
    """Stream s of ``state`` as a run of one stream."""
    one = state.copy()
    one.hyper = replace(state.hyper, streams=1)
    one.h, one.position = state.stream_h[s].copy(), int(state.stream_positions[s])
    one.stream_h = one.stream_positions = None
    return one


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_sampler_carries_on_the_state_training_computes(text, cell, dtype):
    state, book = stack_state(text, cell, 2, dtype=dtype, scale=2.0)
    layout = state.layout
    n = 30
    x = book[:n].astype(np.int64)
    engine = engine_for(layout)
    work, dims = engine.workspace(1, n, state.params.dtype, np.int64), engine.dims
    kernels = kernels_for(cell)
    kernels["transposes_for"](work, state.params, dims)
    hs, cs, gates, aux, ps, hh = kernels["block_views"](work, 0, 1, n, dims)
    states = np.stack([state.h])
    load_states(hs, cs, states)
    prev = work.prev[0, :2 * layout.m].reshape(2, 1, layout.m)
    kernels["chunk_forward"](hs, cs, hs, gates, aux, ps, hh, prev, work.scratch[0], x[None, :], x[None, :], work.WT,
                             work.VT, state.params, np.empty((layout.layers, 0, 1, layout.m), dtype), -1, dims)
    store_states(states, hs, cs, n)
    # two texts fed the chunk as a prime; the one character sampled is not fed
    H = np.stack([state.h, state.h])
    stack_kernels(cell)["sample_stack"](np.zeros((2, 1), np.int64), H, work.WT, work.W, work.VT, np.stack([x, x]),
                                        np.full((2, 1), 0.5), state.params, dims, 1.0, 0)
    assert np.array_equal(H[0], states[0]) and np.array_equal(H[1], states[0])


def test_parallel_build_and_thread_count_change_nothing(text):
    state, book = stack_state(text, "lstm", 2, streams=21, seq_length=10)  # two blocks
    results = []
    runs = [(1, False), (1, True), (2, True)] if numba.config.NUMBA_NUM_THREADS > 1 else [(1, False), (1, True)]
    try:
        for threads, parallel in runs:
            numba.set_num_threads(threads)
            trainer = Trainer(state, book, parallel=parallel)
            losses, _ = trainer.run(30)
            results.append((losses, trainer.state()))
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for losses, final in results[1:]:
        assert np.array_equal(losses, results[0][0])
        assert np.array_equal(final.params, results[0][1].params)
        assert np.array_equal(final.stream_h, results[0][1].stream_h)


def test_each_cell_has_its_own_builds():
    for cell in CELLS:
        assert loop.train_loops(cell) is loop.train_loops(cell)
        assert loop.loop_for(1, 2, cell) is loop.train_loops(cell)[0]
        assert loop.loop_for(2, 2, cell) is loop.train_loops(cell)[1]
        assert kernels_for(cell)["chunk_forward"].py_func.__name__ == f"chunk_forward_{cell}"
    assert len({id(loop.train_loops(cell)[0]) for cell in CELLS}) == len(CELLS)


def test_layout_offsets_match_the_kernels_views():
    from fastrnn.kernels.stack import head_views, layer_views

    for cell, layers in STACKS:
        layout = Layout(4, 3, cell, layers)
        flat = np.arange(layout.size, dtype=np.float64)
        views = layout.views(flat)
        for k in range(layers):
            W_ih, W_hh, b_ih, b_hh = layer_views(flat, k, 4, 3, layout.gm)
            assert np.array_equal(W_ih, views[f"weight_ih_l{k}"].T if k == 0 else views[f"weight_ih_l{k}"])
            assert np.array_equal(W_hh, views[f"weight_hh_l{k}"])
            assert np.array_equal(b_ih, views[f"bias_ih_l{k}"]) and np.array_equal(b_hh, views[f"bias_hh_l{k}"])
        V, c = head_views(flat, layers, 4, 3, layout.gm)
        assert np.array_equal(V, views["head.weight"]) and np.array_equal(c, views["head.bias"])
        assert c[-1] == layout.size - 1
