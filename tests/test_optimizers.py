"""Optimizers, schedules and the global-norm clip from the command line and the API: exact
resume mid-schedule, checkpoints that hold the optimizer's state, and bad input. (Each update
against the reference: tests/kernels/test_optim_steps.py.)"""
import json

import numpy as np
import pytest

import fastrnn
from fastrnn.model import load_checkpoint

from helpers import SMALL, assert_same_run, npz_arrays, one_line_error, run

ADAM = ["--cell", "lstm", "--hidden", "10", "--optimizer", "adam", "--eta", "0.01", "--weight-decay", "0.01",
        "--schedule", "cosine", "--warmup", "10", "--streams", "2"] + [a for a in SMALL if a not in ("--hidden", "12")]


def test_an_adam_run_stopped_mid_schedule_resumes_to_the_same_result(tmp_path, book):
    settings = dict(cell="lstm", hidden=10, seq_length=10, optimizer="adam", eta=0.01, weight_decay=0.01,
                    schedule="cosine", warmup=10, streams=2, log_every=7, sample_every=40, checkpoint_every=30,
                    progress=False)
    fastrnn.train(book, out=tmp_path / "full", steps=90, **settings)
    asked = []
    with pytest.raises(fastrnn.Interrupted):  # stopped between blocks of updates, mid-schedule
        fastrnn.train(book, out=tmp_path / "split", steps=90, should_stop=lambda: asked.append(1) or len(asked) > 2,
                      **settings)
    stopped = load_checkpoint(tmp_path / "split" / "last.npz")
    assert 10 < stopped.update < 90 and stopped.hyper.schedule_updates == 90
    assert fastrnn.resume(tmp_path / "split", progress=False).updates_trained == 90 - stopped.update
    assert_same_run(tmp_path / "full", tmp_path / "split")
    last = npz_arrays(tmp_path / "full" / "last.npz")
    assert "adam_m.weight_hh_l0" in last and "adam_v.head.bias" in last and "mweight_hh_l0" not in last
    hyper = json.loads(str(last["hyper"]))
    assert (hyper["optimizer"], hyper["schedule"], hyper["warmup"]) == ("adam", "cosine", 10)


def test_a_run_resumed_past_its_cosine_says_so_and_trains_at_min_eta(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--steps", "30"] + ADAM).exit_code == 0
    result = run(["train", "--resume", str(out), "--steps", "40"])
    assert result.exit_code == 0 and "the cosine schedule of this run ends at update 30" in result.stderr


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_every_optimizer_trains_a_classic_model_and_lowers_its_loss(tmp_path, text, optimizer):
    run_ = fastrnn.train(text=text, out=tmp_path / optimizer, steps=300, hidden=16, optimizer=optimizer, eta=0.01,
                         clip_norm=5.0, progress=False, sample_every=0)
    smooth = run_.metrics["smooth_loss"]
    assert smooth[-1] < smooth[0] - 5
    assert run_.model.hyper["optimizer"] == optimizer and run_.model.hyper["clip_norm"] == 5.0


def test_bad_optimizer_options_are_one_line_and_lose_nothing(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--steps", "20"] + SMALL).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for args, fragment in ((["--beta1", "0.8"], "beta1 is an option of adam, not of adagrad"),
                           (["--optimizer", "rmsprop", "--beta2", "0.9"], "beta2 is an option of adam, not of"),
                           (["--optimizer", "adagrad", "--weight-decay", "0.1"], "weight_decay is an option of"),
                           (["--warmup", "100", "--steps", "50"], "warmup (100 updates) must end before"),
                           (["--clip", "3", "--clip-norm", "1"], "not both"),
                           (["--min-eta", "0.01"], "min_eta belongs to the cosine schedule"),
                           (["--schedule", "step"], "the step schedule needs decay_every"),
                           (["--optimizer", "adam", "--beta1", "1.5"], "beta1 must be a number in [0, 1)"),
                           (["--optimizer", "sgd"], "--optimizer"),
                           (["--dropout", "1"], "--dropout")):
        one_line_error(run(["train", str(book), "--out", str(out), "--force"] + args), 2, fragment)
    one_line_error(run(["train", "--resume", str(out), "--optimizer", "adam"]), 2, "--optimizer cannot change")
    one_line_error(run(["train", "--resume", str(out), "--schedule", "cosine"]), 2, "--schedule cannot change")
    one_line_error(run(["train", "--resume", str(out), "--dropout", "0.1"]), 2, "--dropout cannot change")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    arrays = npz_arrays(out / "last.npz")
    bad = tmp_path / "bad.npz"
    hyper = json.loads(str(arrays["hyper"]))
    np.savez(bad, **dict(arrays, hyper=np.array(json.dumps({**hyper, "optimizer": "adam"}))))
    one_line_error(run(["sample", "--checkpoint", str(bad)]), 1, "missing adam_m.")
    np.savez(bad, **dict(arrays, hyper=np.array(json.dumps({**hyper, "optimizer": "sgd"}))))
    one_line_error(run(["sample", "--checkpoint", str(bad)]), 1, "unknown optimizer 'sgd'")


def test_dropout_trains_a_classic_model_and_is_recorded(tmp_path, text):
    run_ = fastrnn.train(text=text, out=tmp_path / "drop", steps=300, hidden=16, dropout=0.2, progress=False,
                         sample_every=0)
    smooth = run_.metrics["smooth_loss"]
    assert smooth[-1] < smooth[0] - 5 and run_.model.hyper["dropout"] == 0.2
    for bad in (1.0, -0.1, "half"):
        with pytest.raises(fastrnn.FastrnnError, match="dropout"):
            fastrnn.train(text=text, out=tmp_path / "bad", steps=10, dropout=bad, progress=False)
    assert not (tmp_path / "bad").exists()
