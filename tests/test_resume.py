"""Runs you can trust: exact resume, interruption, kill -9, non-finite stops, validation."""
import json
import shutil
import signal
import subprocess
import time
from dataclasses import replace

import numpy as np
import pytest

from fastrnn.model import load_checkpoint
from fastrnn.trainer import NonFiniteError, RunOptions, train_run

from conftest import make_text
from helpers import SMALL, assert_same_run, npz_arrays, one_line_error, run, small_state


def test_resumed_run_equals_uninterrupted_run(tmp_path, book):
    full, split = tmp_path / "full", tmp_path / "split"
    assert run(["train", str(book), "--out", str(full), "--steps", "200"] + SMALL).exit_code == 0
    assert run(["train", str(book), "--out", str(split), "--steps", "95"] + SMALL).exit_code == 0
    assert load_checkpoint(split / "last.npz").update == 95
    result = run(["train", "--resume", str(split), "--steps", "200", "-q"])
    assert result.exit_code == 0, result.output
    assert_same_run(full, split)
    assert (split / "validation.csv").exists() is False


@pytest.mark.parametrize("first", [90, 80])  # between restarts, and at one
def test_resumed_run_with_restarts_equals_uninterrupted_run(tmp_path, book, first):
    full, split = tmp_path / "full", tmp_path / "split"
    restarts = SMALL + ["--restart-every", "20"]
    assert run(["train", str(book), "--out", str(full), "--steps", "200"] + restarts).exit_code == 0
    assert run(["train", str(book), "--out", str(split), "--steps", str(first)] + restarts).exit_code == 0
    assert run(["train", "--resume", str(split), "--steps", "200", "-q"]).exit_code == 0
    assert_same_run(full, split)
    one_line_error(run(["train", "--resume", str(split), "--steps", "300", "--restart-every", "5"]), 2,
                   "--restart-every cannot change")


def test_resuming_a_finished_run_does_nothing(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--steps", "50"] + SMALL).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = run(["train", "--resume", str(out)])
    assert result.exit_code == 0
    assert "nothing to do" in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_resume_refuses_changes_and_foreign_books(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--steps", "20"] + SMALL).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    one_line_error(run(["train", "--resume", str(out), "--hidden", "20"]), 2, "--hidden cannot change")
    one_line_error(run(["train", "--resume", str(out), "--out", str(tmp_path / "x")]), 2, "--resume")
    other = tmp_path / "other.txt"
    other.write_text(make_text(seed=3) + "Zebras & quokkas!\n", encoding="utf-8")
    one_line_error(run(["train", str(other), "--resume", str(out), "--steps", "40"]), 1, "'&'")
    one_line_error(run(["train", "--resume", str(tmp_path / "nope")]), 1, "no such run directory")
    (out / "last.npz").write_bytes(b"garbage")
    one_line_error(run(["train", "--resume", str(out), "--steps", "40"]), 1, "not a fastrnn checkpoint")
    (out / "last.npz").write_bytes(before["last.npz"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _wait_for_checkpoint(path, timeout=120.0):
    """Until ``path`` holds a checkpoint past the starting point (update > 0)."""
    start = time.monotonic()
    while not (path.exists() and load_checkpoint(path).update > 0):
        if time.monotonic() - start > timeout:
            raise TimeoutError(path)
        time.sleep(0.05)


def _long_book(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text(make_text(n_words=30_000, seed=7), encoding="utf-8")
    return path


def stop_and_resume(tmp_path, how, args, total):
    """A `fastrnn train` process stopped by signal ``how`` after its first checkpoint and
    resumed ends where an uninterrupted run of the same ``args`` ends, bit for bit."""
    book = _long_book(tmp_path)
    out = tmp_path / "run"
    proc = subprocess.Popen(["fastrnn", "train", str(book), "--out", str(out), "--steps", total] + args,
                            stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(out / "last.npz")
    proc.send_signal(getattr(signal, how))
    _, err = proc.communicate(timeout=120)
    expected_code = {"SIGTERM": 143, "SIGINT": 130, "SIGKILL": -signal.SIGKILL}[how]
    assert proc.returncode == expected_code, err
    stopped = load_checkpoint(out / "last.npz")
    assert 0 < stopped.update < int(total)
    if how != "SIGKILL":
        assert f"fastrnn train --resume {out}" in err
        assert json.loads((out / "summary.json").read_text())["finished"] is False
    resumed = subprocess.run(["fastrnn", "train", "--resume", str(out), "-q"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    reference = tmp_path / "uninterrupted"
    full = subprocess.run(["fastrnn", "train", str(book), "--out", str(reference), "--steps", total] + args,
                          capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    assert_same_run(reference, out)


@pytest.mark.skipif(shutil.which("fastrnn") is None, reason="the fastrnn command is not installed")
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_stopped_process_resumes_to_the_same_result(tmp_path, how):
    args = ["--hidden", "16", "--checkpoint-every", "200", "--sample-every", "1000", "--log-every", "50", "-q"]
    stop_and_resume(tmp_path, how, args, "100000")


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path, text):
    state, book = small_state(text, hidden=8)
    out = str(tmp_path)
    train_run(state, book, out, RunOptions(total_updates=60, checkpoint_every=30))
    before = {name: (tmp_path / name).read_bytes() for name in ("last.npz", "best.npz")}
    resumed = load_checkpoint(tmp_path / "last.npz")
    resumed.hyper = replace(resumed.hyper, eta=1e308)  # the first update overflows
    with pytest.raises(NonFiniteError, match="non-finite"):
        train_run(resumed, book, out, RunOptions(total_updates=200, checkpoint_every=30), resume=True)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before


def test_non_finite_run_is_one_line_error(tmp_path, book):
    out = tmp_path / "run"
    result = run(["train", str(book), "--out", str(out), "--eta", "1e308", "--steps", "50", "-q"])
    one_line_error(result, 1, "non-finite", alone=False)
    assert load_checkpoint(out / "last.npz").update == 0  # the last good state: where it started


def test_validation_picks_best_model_and_logs(tmp_path, book):
    out = tmp_path / "run"
    result = run(["train", str(book), "--out", str(out), "--steps", "300", "--val-fraction", "0.2",
                  "--val-every", "50"] + SMALL)
    assert result.exit_code == 0, result.output
    rows = np.loadtxt(out / "validation.csv", delimiter=",", skiprows=1, ndmin=2)
    assert rows[:, 0].tolist() == list(range(0, 301, 50))
    assert np.allclose(rows[:, 2], rows[:, 1] / np.log(2))
    best = load_checkpoint(out / "best.npz")
    i = int(np.argmin(rows[:, 1]))
    assert best.update == rows[i, 0]
    assert best.best_val_loss == pytest.approx(rows[i, 1], abs=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["val_chars"] > 0 and summary["best_val_nats_per_char"] == pytest.approx(rows[i, 1], abs=1e-6)
    # validation scores as `fastrnn eval` does: from the model's carried state
    held = tmp_path / "held.txt"
    held.write_text(book.read_text()[-summary["val_chars"]:], encoding="utf-8")
    scored = json.loads(run(["eval", str(out / "best.npz"), str(held), "--json"]).stdout)
    assert scored["nats_per_char"] == pytest.approx(rows[i, 1], abs=1e-6)
    assert scored["predicted"] == summary["val_chars"] - 1
    one_line_error(run(["train", str(book), "--out", str(tmp_path / "x"), "--val-fraction", "0.7"]), 2,
                   "--val-fraction")


def test_eval_reports_bits_per_char_and_unknown_characters(tmp_path, book, text):
    from fastrnn import reference

    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--steps", "100"] + SMALL).exit_code == 0
    held = tmp_path / "held.txt"
    held.write_text(text[:500], encoding="utf-8")
    result = run(["eval", str(out), str(held), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    state = load_checkpoint(out / "best.npz")
    idx = state.vocab.encode(text[:500])
    assert np.any(state.h != 0)
    loss = reference.forward(state.views(), idx[:-1], idx[1:], state.h)[0]  # from the carried state
    assert data["nats_per_char"] == pytest.approx(loss / 499, rel=1e-10)
    assert data["bits_per_char"] == pytest.approx(loss / 499 / np.log(2), rel=1e-10)
    assert data["unknown_chars"] == 0
    zero = json.loads(run(["eval", str(out), str(held), "--json", "--from-zero"]).stdout)
    loss = reference.forward(state.views(), idx[:-1], idx[1:], np.zeros(12))[0]
    assert zero["nats_per_char"] == pytest.approx(loss / 499, rel=1e-10)
    odd = tmp_path / "odd.txt"
    odd.write_text("the rain@ in spain~~", encoding="utf-8")
    result = run(["eval", str(out), str(odd)])
    assert result.exit_code == 0, result.output
    assert "bits/char" in result.stdout and "perplexity" in result.stdout
    assert "3 characters outside the vocabulary" in result.stderr and "'@'" in result.stderr
    one_line_error(run(["eval", str(out), str(tmp_path / "none.txt")]), 1, "no such file")


def test_foreign_and_hand_edited_checkpoints(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--steps", "5"] + SMALL).exit_code == 0
    arrays = npz_arrays(out / "best.npz")
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3))
    one_line_error(run(["sample", "--checkpoint", str(tmp_path / "foreign.npz")]), 1,
                   "not a fastrnn checkpoint (its arrays: weights)")
    partial = {k: v for k, v in arrays.items() if k not in ("mW", "h")}
    np.savez(tmp_path / "partial.npz", **partial)
    one_line_error(run(["sample", "--checkpoint", str(tmp_path / "partial.npz")]), 1, "missing h, mW")
    edited = dict(arrays, vocab=arrays["vocab"][::-1].copy())
    np.savez(tmp_path / "edited.npz", **edited)
    one_line_error(run(["sample", "--checkpoint", str(tmp_path / "edited.npz")]), 1, "vocabulary")
    wrong_dtype = dict(arrays, b=arrays["b"].astype(np.float32))
    np.savez(tmp_path / "dtype.npz", **wrong_dtype)
    one_line_error(run(["sample", "--checkpoint", str(tmp_path / "dtype.npz")]), 1, "b has dtype float32")
    for bad in (np.array(-1), np.array(len(arrays["vocab"])), np.array([0, 1]), np.array(0.5)):
        np.savez(tmp_path / "next.npz", **dict(arrays, next_char=bad))
        one_line_error(run(["sample", "--checkpoint", str(tmp_path / "next.npz")]), 1, "next_char")
    np.savez(tmp_path / "newer.npz", **dict(arrays, format_version=np.array(99)))
    one_line_error(run(["sample", "--checkpoint", str(tmp_path / "newer.npz")]), 1, "upgrade fastrnn")
    bad_hyper = dict(arrays, hyper=np.array("{not json"))
    np.savez(tmp_path / "hyper.npz", **bad_hyper)
    one_line_error(run(["sample", "--checkpoint", str(tmp_path / "hyper.npz")]), 1, "hyperparameters")


def test_resumed_run_with_validation_equals_uninterrupted_run(tmp_path, book):
    val = ["--val-fraction", "0.2", "--val-every", "50"]
    full, split = tmp_path / "full", tmp_path / "split"
    assert run(["train", str(book), "--out", str(full), "--steps", "200"] + SMALL + val).exit_code == 0
    assert run(["train", str(book), "--out", str(split), "--steps", "95"] + SMALL + val).exit_code == 0
    assert run(["train", "--resume", str(split), "--steps", "200", "-q"]).exit_code == 0
    assert_same_run(full, split)
    assert (full / "validation.csv").read_text() == (split / "validation.csv").read_text()


def test_force_replaces_the_whole_old_run(tmp_path, book):
    out = tmp_path / "run"
    old = ["train", str(book), "--out", str(out), "--steps", "60", "--val-fraction", "0.2", "--val-every", "20"]
    assert run(old + SMALL).exit_code == 0
    assert (out / "validation.csv").exists()
    # the new run fails at its first update: what is left must be the new run's start, not the old run
    result = run(["train", str(book), "--out", str(out), "--force", "--eta", "1e308", "--seed", "9"] + SMALL)
    assert result.exit_code == 1
    assert not (out / "validation.csv").exists()
    last = load_checkpoint(out / "last.npz")
    assert last.update == 0 and last.hyper.seed == 9
    assert json.loads((out / "run.json").read_text())["val_fraction"] == 0


def test_truncation_drops_torn_rows_and_keeps_odd_sample_text(tmp_path):
    from fastrnn.rundir import RunDir

    (tmp_path / "metrics.csv").write_text("update,epoch,loss,smooth_loss\n100,0,1,2\n200,0,1,2\n3")
    (tmp_path / "samples.txt").write_text(
        "--- update 0, smooth loss nan ---\nsome text\n--- update foo, bar\n\n"
        "--- update 100, smooth loss 5.0 ---\nmore\n\n--- update 300, smooth loss 4.0 ---\nlater\n\n"
        "=== best model (update 250, smooth loss 4.0): 1000 characters ===\npassage\n", encoding="utf-8")
    RunDir(tmp_path).truncate(200)
    assert (tmp_path / "metrics.csv").read_text() == "update,epoch,loss,smooth_loss\n100,0,1,2\n200,0,1,2\n"
    samples = (tmp_path / "samples.txt").read_text(encoding="utf-8")
    assert samples.endswith("--- update 100, smooth loss 5.0 ---\nmore\n\n")
    assert "--- update foo, bar" in samples and "later" not in samples and "passage" not in samples
