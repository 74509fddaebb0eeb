"""loop: every update against the NumPy reference from the same state, one at a time, for one
stream and for several; the serial and parallel builds; thread-count independence; the loop
compiled apart from its block function."""
import os
import subprocess
import sys
from dataclasses import replace

import numba
import numpy as np
import pytest

from fastrnn.engine import Trainer
from fastrnn.kernels import loop
from fastrnn.kernels.workspace import STACK_BLOCK_ROWS, STREAM_BLOCK, stack_stream_blocks, stream_blocks
from fastrnn.model import with_streams

from helpers import assert_close, kernel_update, reference_update, small_state


# sigma keeps W h of order 1: larger weights make backprop through time explode, and then
# the gradients themselves are ill-conditioned, whatever computes them.
@pytest.mark.parametrize("hidden, seq_length, seed, sigma", [(5, 7, 1, 0.3), (20, 25, 2, 0.1), (100, 25, 3, 0.01)])
def test_each_update_matches_reference(text, hidden, seq_length, seed, sigma):
    # A book short enough that the walk wraps (epoch end, h reset) within the updates checked.
    book_text = text[: seq_length * 4 + 3]
    # clip 1.0 so that the clip is exercised at every size
    state, book = small_state(book_text, hidden, seq_length, seed, sigma=sigma, clip=1.0)
    state.h[:] = np.random.default_rng(seed).uniform(-0.5, 0.5, hidden)
    clipped = False
    for _ in range(10):
        expected, ref_loss, ref_grads = reference_update(state, book)
        _, got, loss, smooth, grads = kernel_update(state, book)
        assert_close(loss, ref_loss)
        assert_close(smooth, expected.smooth_loss)
        for name in ref_grads:
            assert_close(grads[name], ref_grads[name])
            clipped |= bool(np.any(np.abs(ref_grads[name]) > state.hyper.clip))
        assert_close(got.params, expected.params)
        assert_close(got.adagrad, expected.adagrad)
        assert_close(got.h, expected.h)
        assert (got.position, got.epoch, got.update) == (expected.position, expected.epoch, expected.update)
        state = expected  # the next update starts from the reference's state
    assert state.epoch >= 2, "the walk should have wrapped around the book"
    assert clipped, "the gradient clip should have been exercised"


def test_in_place_update_path_matches_reference(text):
    # With no new best, the loop updates the live buffer in place (the other path).
    state, book = small_state(text[:120], hidden=10, seq_length=9, sigma=0.3, clip=1.0)
    for _ in range(5):
        state.best_smooth_loss = -np.inf
        expected, ref_loss, ref_grads = reference_update(state, book)
        trainer, got, loss, _, grads = kernel_update(state, book)
        assert trainer.best_state() is None  # no new best: the in-place branch ran
        assert_close(loss, ref_loss)
        for name in ref_grads:
            assert_close(grads[name], ref_grads[name])
        assert_close(got.params, expected.params)
        assert_close(got.adagrad, expected.adagrad)
        state = expected


def test_many_updates_per_call_equal_single_calls(text):
    # Same implementation, same order of operations: splitting the work must not change a bit.
    state, book = small_state(text[:300], hidden=8, seq_length=10)

    whole = Trainer(state, book)
    l_whole, s_whole = whole.run(40)
    parts = Trainer(state, book)
    pieces = [parts.run(k) for k in (1, 7, 12, 20)]
    assert np.array_equal(l_whole, np.concatenate([p[0] for p in pieces]))
    assert np.array_equal(s_whole, np.concatenate([p[1] for p in pieces]))
    assert np.array_equal(whole.state().params, parts.state().params)
    assert np.array_equal(whole.state().h, parts.state().h)


def test_best_model_is_the_one_that_earned_the_lowest_smooth_loss(text):
    state, book = small_state(text[:400], hidden=8, seq_length=10, sigma=0.5)

    trainer = Trainer(state, book)
    snapshots = [trainer.state()]
    smooths = []
    for _ in range(60):
        smooths.append(trainer.run(1)[1][0])
        snapshots.append(trainer.state())
    best_index = int(np.argmin(smooths))
    best = trainer.best_state()
    # update k+1's smooth loss is earned by the model before that update (snapshot k)
    assert best.update == best_index
    assert best.smooth_loss == smooths[best_index]
    assert np.array_equal(best.params, snapshots[best_index].params)
    assert np.array_equal(best.adagrad, snapshots[best_index].adagrad)
    assert np.array_equal(best.h, snapshots[best_index].h)
    assert np.array_equal(trainer.state().params, snapshots[-1].params)


def stream_state(text, streams, **kw):
    state, book = small_state(text, **kw)
    state.hyper = replace(state.hyper, streams=streams)
    return with_streams(state, book.shape[0]), book


def test_stream_blocks_depend_on_the_stream_count_alone():
    assert stream_blocks(1) == [1] and stream_blocks(8) == [8]
    assert stream_blocks(9) == [5, 4] and stream_blocks(13) == [7, 6] and stream_blocks(16) == [8, 8]
    for B in range(1, 300):
        sizes = stream_blocks(B)
        assert sum(sizes) == B and max(sizes) <= STREAM_BLOCK and max(sizes) - min(sizes) <= 1


def test_a_stacks_blocks_fill_the_register_tiles_and_depend_on_streams_and_chunks_alone():
    # the gated recipe's 32 streams of 64 characters: 4 blocks of 8, none of 6 with a scalar tail
    assert stack_stream_blocks(32, 64) == [8] * 4 and stack_stream_blocks(32, 25) == [16, 16]
    assert stack_stream_blocks(20, 64) == [8, 8, 4] and stack_stream_blocks(32, 100) == [8] * 4
    assert stack_stream_blocks(5, 200) == [4, 1] and stack_stream_blocks(3, 1000) == [1, 1, 1]
    for B in range(1, 70):
        for n in (1, 25, 64, 100, 150, 400, 1000):
            sizes = stack_stream_blocks(B, n)
            assert sum(sizes) == B and all(G > 0 for G in sizes)
            assert max(sizes) * n <= max(STACK_BLOCK_ROWS, n)  # rows within the cap, or one stream
            assert all(G % 4 == 0 for G in sizes[:-1]) or max(sizes) < 4


# one block; two blocks of unequal size, whose 70 and 60 rows of chunk characters take both ways
# of the backward's transposed products (a contiguous copy from 64 rows on, a view below)
@pytest.mark.parametrize("streams", [3, 13])
def test_each_stream_update_matches_reference(text, streams):
    state, book = stream_state(text[:400], streams, hidden=12, seq_length=10, sigma=0.1, clip=1.0)
    assert state.stream_positions[:3].tolist() == [0, 400 // streams, 2 * (400 // streams)]
    wrapped = False
    for step in range(30):  # long enough for the last streams to wrap around the book
        state.best_smooth_loss = -np.inf if step % 2 else np.inf  # both AdaGrad paths
        expected, ref_loss, ref_grads = reference_update(state, book)
        _, got, loss, smooth, grads = kernel_update(state, book)
        assert_close(loss, ref_loss)
        assert_close(smooth, expected.smooth_loss)
        wrapped |= bool(np.any(expected.stream_positions < state.stream_positions))
        for name in ref_grads:
            assert_close(grads[name], ref_grads[name])
        assert_close(got.params, expected.params)
        assert_close(got.adagrad, expected.adagrad)
        assert_close(got.stream_h, expected.stream_h)
        assert got.stream_positions.tolist() == expected.stream_positions.tolist()
        state = expected
    assert wrapped, "a stream should have wrapped around the book"


def test_best_model_of_several_streams_replays_its_update(text):
    state, book = stream_state(text[:600], 4, hidden=10, seq_length=10, sigma=0.5)
    trainer = Trainer(state, book)
    _, smooths = trainer.run(80)
    best = trainer.best_state()
    assert best.update == int(np.argmin(smooths))
    assert best.stream_h.shape == (4, 10) and best.stream_positions.shape == (4,)
    replay = best.copy()
    replay.smooth_loss = smooths[best.update - 1] if best.update else np.nan
    again = Trainer(replay, book)
    _, replayed = again.run(1)
    assert replayed[0] == smooths[best.update]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_results_do_not_depend_on_the_thread_count(text, dtype):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core")
    state, book = stream_state(text, 21, hidden=16, seq_length=10, dtype=dtype)  # three blocks
    results = []
    try:
        for threads in (1, 2):  # the parallel build on one thread and on two
            numba.set_num_threads(threads)
            trainer = Trainer(state, book, parallel=True)
            losses, _ = trainer.run(60)
            results.append((losses, trainer.state()))
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1].params, results[1][1].params)
    assert np.array_equal(results[0][1].stream_h, results[1][1].stream_h)


@pytest.mark.parametrize("streams", [1, 13])
def test_serial_and_parallel_builds_agree_bit_for_bit(text, streams):
    state, book = stream_state(text, streams, hidden=8, seq_length=10)
    serial, parallel = Trainer(state, book, parallel=False), Trainer(state, book, parallel=True)
    per_epoch = serial.per_epoch // streams
    for count in (per_epoch, 1, 120):  # to the end of an epoch, past it, and on: wraps included
        l1, s1 = serial.run(count)
        l2, s2 = parallel.run(count)
        assert np.array_equal(l1, l2) and np.array_equal(s1, s2)
        a, b = serial.state(), parallel.state()
        assert np.array_equal(a.params, b.params) and np.array_equal(a.h, b.h)
        assert (a.position, a.epoch, a.update) == (b.position, b.epoch, b.update)
    best_a, best_b = serial.best_state(), parallel.best_state()
    assert np.array_equal(best_a.params, best_b.params) and np.array_equal(best_a.h, best_b.h)
    assert (best_a.update, best_a.position) == (best_b.update, best_b.position)


def test_a_run_with_one_block_or_one_thread_uses_the_serial_build():
    assert loop.loop_for(1, 16) is loop.train_updates and loop.loop_for(3, 1) is loop.train_updates
    assert loop.loop_for(2, 2) is loop.train_updates_parallel


LOOP_ALONE = """
import numpy as np
from fastrnn.build import KernelSet, compile_kernels
from fastrnn.kernels import linalg, loop
compile_kernels(KernelSet(np.float64, np.uint8, streams=3, parallel=True, loop_alone=True))
assert loop.train_updates_parallel.build.signatures and not loop.block_loss_and_grads.signatures
print(len(linalg.matmul_add.signatures))
"""

BLOCK = """
from fastrnn.engine import Trainer
from fastrnn.kernels import linalg, loop
from fastrnn.model import Hyper, init_state
from fastrnn.text import build_vocab
text = "a short text for a loop that compiles alone " * 4
vocab = build_vocab(text)
Trainer(init_state(vocab, Hyper(hidden=4, seq_length=5, streams=3)), vocab.encode(text), parallel=True).run(1)
stats = linalg.matmul_add.stats
print(sum(loop.train_updates_parallel.build.stats.cache_hits.values()), sum(stats.cache_hits.values()),
      sum(stats.cache_misses.values()))
"""


def test_the_loop_compiles_without_its_block_function_and_another_process_loads_it(tmp_path):
    # what a cold start does: a second process compiles the product the block function needs
    # last and the loop alone, while the first compiles the block function (the cell's whole
    # tree), then the first loads the loop; here one after the other
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))

    def run(script):
        return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                              check=True).stdout.split()

    assert run(LOOP_ALONE) == ["1"]  # the loop compiled, and the transposed product only
    # the block function's tree compiled its other product and loaded the transposed one
    assert run(BLOCK) == ["1", "1", "1"]
