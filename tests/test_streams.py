"""Several streams per update: against the reference from the same state, thread-count
independence, and B = 1 being the classic path."""
import json

import numba
import numpy as np
import pytest

from fastrnn import reference
from fastrnn.kernels import STREAM_BLOCK, stream_blocks
from fastrnn.model import load_checkpoint, with_streams
from fastrnn.train import Trainer

from helpers import assert_close, small_state
from test_cli import one_line_error, run
from test_resume import SMALL, assert_same_run


def reference_stream_update(state, book):
    """One update of B streams in the reference: mean of the B chunk gradients, then clip and
    AdaGrad. Returns (new_state, mean loss, mean raw gradients)."""
    new = state.copy()
    n, B = state.hyper.seq_length, state.hyper.streams
    params, mem = new.views(), new.layout.views(new.adagrad)
    total = {k: np.zeros_like(v) for k, v in params.items()}
    loss = 0.0
    for s in range(B):
        if new.stream_positions[s] + n + 1 > book.shape[0]:
            new.stream_positions[s], new.stream_h[s] = 0, 0.0
        p = new.stream_positions[s]
        chunk_loss, grads, h = reference.loss_and_grads(params, book[p:p + n], book[p + 1:p + n + 1], new.stream_h[s])
        loss += chunk_loss
        for k in total:
            total[k] += grads[k]
        new.stream_h[s] = h
        new.stream_positions[s] += n
    mean = {k: v / B for k, v in total.items()}
    reference.adagrad_step(params, mem, mean, state.hyper.eta, state.hyper.eps, state.hyper.clip)
    new.update += 1
    loss /= B
    new.smooth_loss = loss if np.isnan(state.smooth_loss) else 0.999 * state.smooth_loss + 0.001 * loss
    return new, loss, mean


def stream_state(text, streams, **kw):
    from dataclasses import replace

    state, book = small_state(text, **kw)
    state.hyper = replace(state.hyper, streams=streams)
    return with_streams(state, book.shape[0]), book


def test_stream_blocks_depend_on_the_stream_count_alone():
    assert stream_blocks(1) == [1] and stream_blocks(8) == [8]
    assert stream_blocks(9) == [5, 4] and stream_blocks(13) == [7, 6] and stream_blocks(16) == [8, 8]
    for B in range(1, 300):
        sizes = stream_blocks(B)
        assert sum(sizes) == B and max(sizes) <= STREAM_BLOCK and max(sizes) - min(sizes) <= 1


# one block; two blocks of unequal size, whose 70 and 60 rows of chunk characters take both ways
# of the backward's transposed products (a contiguous copy from 64 rows on, a view below)
@pytest.mark.parametrize("streams", [3, 13])
def test_each_stream_update_matches_reference(text, streams):
    state, book = stream_state(text[:400], streams, hidden=12, seq_length=10, sigma=0.1, clip=1.0)
    assert state.stream_positions[:3].tolist() == [0, 400 // streams, 2 * (400 // streams)]
    wrapped = False
    for step in range(30):  # long enough for the last streams to wrap around the book
        state.best_smooth_loss = -np.inf if step % 2 else np.inf  # both AdaGrad paths
        expected, ref_loss, ref_grads = reference_stream_update(state, book)
        trainer = Trainer(state, book)
        losses, smooths = trainer.run(1)
        got = trainer.state()
        assert_close(losses[0], ref_loss)
        assert_close(smooths[0], expected.smooth_loss)
        wrapped |= bool(np.any(expected.stream_positions < state.stream_positions))
        grads = state.layout.views(trainer.grads)
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
    for threads in (1, 2):
        numba.set_num_threads(threads)
        trainer = Trainer(state, book)
        losses, _ = trainer.run(60)
        results.append((losses, trainer.state()))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1].params, results[1][1].params)
    assert np.array_equal(results[0][1].stream_h, results[1][1].stream_h)


def test_one_stream_through_the_stream_kernel_is_the_classic_path(text):
    state, book = small_state(text, hidden=8, seq_length=10)
    classic, streamed = Trainer(state, book), Trainer(state, book, streams_kernel=True)
    for count in (classic.per_epoch, 1, 300):  # to the end of an epoch, past it, and on: wraps included
        l1, s1 = classic.run(count)
        l2, s2 = streamed.run(count)
        assert np.array_equal(l1, l2) and np.array_equal(s1, s2)
        a, b = classic.state(), streamed.state()
        assert np.array_equal(a.params, b.params) and np.array_equal(a.h, b.h)
        assert (a.position, a.epoch, a.update) == (b.position, b.epoch, b.update)
    best_a, best_b = classic.best_state(), streamed.best_state()
    assert np.array_equal(best_a.params, best_b.params) and np.array_equal(best_a.h, best_b.h)
    assert (best_a.update, best_a.position) == (best_b.update, best_b.position)


def test_streams_through_the_command_line_resume_exactly(tmp_path, book):
    opts = ["--streams", "4", "--threads", str(min(2, numba.config.NUMBA_NUM_THREADS))] + SMALL
    full, split = tmp_path / "full", tmp_path / "split"
    assert run(["train", str(book), "--out", str(full), "--steps", "120"] + opts).exit_code == 0
    assert run(["train", str(book), "--out", str(split), "--steps", "50"] + opts).exit_code == 0
    result = run(["train", "--resume", str(split), "--steps", "120", "-q"])
    assert result.exit_code == 0, result.output
    assert_same_run(full, split)
    last = load_checkpoint(full / "last.npz")
    assert last.hyper.streams == 4 and last.stream_h.shape == (4, 12)
    one_line_error(run(["train", "--resume", str(split), "--streams", "2"]), 2, "--streams cannot change")
    with np.load(full / "last.npz") as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "bad.npz", **dict(arrays, stream_h=arrays["stream_h"][:2]))
    one_line_error(run(["sample", "--checkpoint", str(tmp_path / "bad.npz")]), 1, "stream_h")


def test_epochs_count_chunks_of_all_streams(tmp_path, book, text):
    per_epoch = (len(text) - 1) // 25
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--streams", "4", "--epochs", "2", "--hidden", "8",
                "-q"]).exit_code == 0
    assert load_checkpoint(out / "last.npz").update == -(-2 * per_epoch // 4)


def test_sample_several_texts(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--hidden", "8", "--steps", "50", "-q"]).exit_code == 0
    args = ["sample", "--checkpoint", str(out), "--num", "3", "--len", "40", "--seed", "4"]
    plain, as_json = run(args), run(args + ["--json"])
    assert plain.exit_code == 0 and as_json.exit_code == 0
    texts = json.loads(as_json.stdout)
    assert len(texts) == 3 and len(set(texts)) == 3 and all(len(t) == 40 for t in texts)
    assert plain.stdout == "\n\n".join(texts) + "\n"
    single = run(["sample", "--checkpoint", str(out), "--len", "40", "--seed", "4"]).stdout[:-1]
    assert texts[0] == single


def test_stream_options_are_checked_before_any_work(tmp_path, book, text):
    out = tmp_path / "run"
    too_many = str(numba.config.NUMBA_NUM_THREADS + 1)
    one_line_error(run(["train", str(book), "--out", str(out), "--threads", too_many]), 2, "--threads")
    per_epoch = (len(text) - 1) // 25
    one_line_error(run(["train", str(book), "--out", str(out), "--streams", str(per_epoch + 1)]), 2, "--streams")
    assert not out.exists()
