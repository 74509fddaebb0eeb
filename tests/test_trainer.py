import json
from dataclasses import replace

import numpy as np

from fastrnn.engine import Trainer
from fastrnn.model import updates_per_epoch
from fastrnn.model import load_checkpoint, with_streams
from fastrnn.rundir import RunDir
from fastrnn.sample import sample_text
from fastrnn.trainer import RunOptions, train_run

from helpers import small_state


def test_updates_per_epoch_counts_whole_chunks():
    # chunks start at 0, n, 2n, ... and need n + 1 characters
    assert updates_per_epoch(26, 25) == 1
    assert updates_per_epoch(50, 25) == 1
    assert updates_per_epoch(51, 25) == 2


def test_training_lowers_the_smooth_loss(tmp_path, text):
    state, book = small_state(text, hidden=32, seq_length=25, sigma=0.01)
    summary = train_run(state, book, str(tmp_path), RunOptions(total_updates=1500, sample_every=500))
    metrics = RunDir(tmp_path).metrics()
    first, last = metrics[0, 3], metrics[-1, 3]
    assert last < first - 5.0, (first, last)
    assert summary["best_smooth_loss"] <= summary["final_smooth_loss"] + 1e-12
    # a run lowers the raw loss well below uniform guessing (25 ln K)
    assert np.mean(metrics[-5:, 2]) < 0.7 * 25 * np.log(state.vocab.size)


def test_run_directory_contents(tmp_path, text):
    state, book = small_state(text, hidden=8)
    per_epoch = updates_per_epoch(book.shape[0], 7)
    total = per_epoch + 10
    train_run(state, book, str(tmp_path), RunOptions(total_updates=total, sample_every=100, log_every=10,
                                                      checkpoint_every=50))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best.npz", "last.npz", "loss.png", "metrics.csv", "samples.txt", "summary.json"]
    last = load_checkpoint(tmp_path / "last.npz")
    assert last.update == total and last.epoch == 1 and last.position == 70
    best = load_checkpoint(tmp_path / "best.npz")
    assert best.smooth_loss == last.best_smooth_loss
    metrics = RunDir(tmp_path).metrics()
    assert metrics[:, 0].tolist() == list(range(10, total + 1, 10))
    assert set(metrics[:, 1]) == {0, 1}
    samples = (tmp_path / "samples.txt").read_text(encoding="utf-8")
    assert samples.count("--- update ") == 1 + total // 100
    assert "=== best model" in samples
    header, passage = samples.split("=== best model", 1)[1].split(" ===\n", 1)
    assert len(passage) == 1000 + 1
    # text starts from the state each checkpoint was in: its carried h and next character
    assert last.next_char == book[last.position] and best.next_char == book[best.position]
    assert header.endswith("from its carried hidden state and next character")
    assert passage[:-1] == sample_text(best, 1000, seed=state.hyper.seed)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("updates", "chars", "seconds", "chars_per_s", "best_smooth_loss", "final_smooth_loss"):
        assert key in summary
    assert summary["chars"] == total * 7
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_zero_steps_writes_initial_parameters(tmp_path, text):
    state, book = small_state(text, hidden=8)
    train_run(state, book, str(tmp_path), RunOptions(total_updates=0))
    for name in ("best.npz", "last.npz"):
        saved = load_checkpoint(tmp_path / name)
        assert np.array_equal(saved.params, state.params) and saved.update == 0


def test_same_seed_same_run(tmp_path, text):
    results = []
    for run in ("a", "b"):
        state, book = small_state(text, hidden=8, seed=4)
        train_run(state, book, str(tmp_path / run), RunOptions(total_updates=300, sample_every=100))
        results.append(((tmp_path / run / "samples.txt").read_text(), load_checkpoint(tmp_path / run / "last.npz")))
    assert results[0][0] == results[1][0]
    assert np.array_equal(results[0][1].params, results[1][1].params)
    other, book = small_state(text, hidden=8, seed=5)
    train_run(other, book, str(tmp_path / "c"), RunOptions(total_updates=300, sample_every=100))
    assert (tmp_path / "c" / "samples.txt").read_text() != results[0][0]
    assert not np.array_equal(load_checkpoint(tmp_path / "c" / "last.npz").params, results[0][1].params)


def test_restarts_start_every_stream_afresh_at_a_drawn_place(text):
    state, book = small_state(text, hidden=8)
    for streams in (1, 3):
        hyper = replace(state.hyper, restart_every=10, streams=streams)
        trainer = Trainer(with_streams(replace(state.copy(), hyper=hyper), book.shape[0]), book)
        trainer.run(20)
        before = trainer.state()
        trainer.run(1)  # update 21 starts with the restart drawn at update 20
        n = state.hyper.seq_length
        drawn = np.random.default_rng([state.hyper.seed, 2, 20]).integers(0, book.shape[0] - n, size=streams)
        after = trainer.state()
        assert after.position == drawn[0] + n and after.epoch == trainer.epoch_of(21)
        # the same update, without restarts, from h = 0 at the drawn places
        by_hand = replace(before, hyper=replace(hyper, restart_every=0), position=int(drawn[0]),
                          h=np.zeros_like(before.h))
        if streams > 1:
            by_hand.stream_positions, by_hand.stream_h = drawn.astype(np.int64), np.zeros_like(before.stream_h)
        else:
            assert before.position != drawn[0]
        plain = Trainer(by_hand, book)
        plain.run(1)
        assert np.array_equal(plain.state().params, after.params)
        assert np.array_equal(plain.state().h, after.h)
