"""Several streams per update: against the reference from the same state, thread-count
independence, and B = 1 being the classic path."""
import numba
import numpy as np
import pytest

from fastrnn import reference
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
    return new, loss / B, mean


def stream_state(text, streams, **kw):
    from dataclasses import replace

    state, book = small_state(text, **kw)
    state.hyper = replace(state.hyper, streams=streams)
    return with_streams(state, book.shape[0]), book


def test_each_stream_update_matches_reference(text):
    state, book = stream_state(text[:400], 3, hidden=12, seq_length=10, sigma=0.1, clip=1.0)
    assert state.stream_positions.tolist() == [0, 133, 266]
    for step in range(12):  # long enough for streams to wrap around the book
        state.best_smooth_loss = -np.inf if step % 2 else np.inf  # both AdaGrad paths
        expected, ref_loss, ref_grads = reference_stream_update(state, book)
        trainer = Trainer(state, book)
        losses, _ = trainer.run(1)
        got = trainer.state()
        assert_close(losses[0], ref_loss)
        grads = state.layout.views(trainer.grads)
        for name in ref_grads:
            assert_close(grads[name], ref_grads[name])
        assert_close(got.params, expected.params)
        assert_close(got.adagrad, expected.adagrad)
        assert_close(got.stream_h, expected.stream_h)
        assert got.stream_positions.tolist() == expected.stream_positions.tolist()
        state = expected
    assert 0 in state.stream_positions or min(state.stream_positions) < 133


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_results_do_not_depend_on_the_thread_count(text, dtype):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core")
    state, book = stream_state(text, 5, hidden=16, seq_length=10, dtype=dtype)
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
    l1, s1 = classic.run(300)  # past the end of the book: wraps included
    l2, s2 = streamed.run(300)
    assert np.array_equal(l1, l2) and np.array_equal(s1, s2)
    assert np.array_equal(classic.state().params, streamed.state().params)
    assert np.array_equal(classic.h, streamed.h)
    assert classic.state().position == streamed.state().position


def test_streams_through_the_command_line_resume_exactly(tmp_path, book):
    opts = ["--streams", "4", "--threads", "2"] + SMALL
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
    result = run(["sample", "--checkpoint", str(out), "--num", "3", "--len", "40", "--seed", "4"])
    assert result.exit_code == 0
    texts = result.stdout[:-1].split("\n\n")
    single = run(["sample", "--checkpoint", str(out), "--len", "40", "--seed", "4"]).stdout[:-1]
    assert texts[0] == single and len(set(texts)) == 3
