"""A time budget: durations read, the updates that fit fixed before the run starts (a cosine
spans them, --steps of that number reproduces the run), the held-out loss at the end, and bad
budgets as one line."""
import json

import numpy as np
import pytest

import fastrnn
from fastrnn.budget import parse_duration, validation_interval

from helpers import SMALL, npz_arrays, one_line_error, run


@pytest.mark.parametrize("given, seconds", [("150s", 150), ("2.5m", 150), ("1h", 3600), ("90", 90), (" 2m ", 120),
                                            (2.5, 2.5), (".5s", 0.5)])
def test_durations(given, seconds):
    assert parse_duration(given) == seconds


@pytest.mark.parametrize("given", ["abc", "0", "0s", "-5s", "1d", "", "1.5.2m", True, 0, float("inf")])
def test_bad_durations(given):
    with pytest.raises(ValueError):
        parse_duration(given)


def test_a_budget_fixes_the_updates_and_steps_of_that_number_reproduce_the_run(tmp_path, text):
    settings = dict(hidden=16, optimizer="adam", eta=0.01, schedule="cosine", val_fraction=0.1, val_every=20_000,
                    sample_every=0, progress=False)
    timed = fastrnn.train(text=text, out=tmp_path / "timed", time_limit="2s", **settings)
    summary = json.loads((tmp_path / "timed" / "summary.json").read_text())
    total = json.loads((tmp_path / "timed" / "run.json").read_text())["total_updates"]
    assert summary["time_limit"] == 2.0 and summary["seconds"] < 4 and total > 100
    assert timed.model.hyper["schedule_updates"] == total
    validated = np.loadtxt(tmp_path / "timed" / "validation.csv", delimiter=",", skiprows=1, ndmin=2)
    assert validated[-1, 0] == summary["updates"]  # what the budget reached, scored at its end
    assert summary["last_val_nats_per_char"] == pytest.approx(validated[-1, 1], abs=1e-6)
    if summary["updates"] < total:  # the machine slowed down and the time ran out first
        fastrnn.resume(tmp_path / "timed", progress=False)
    fastrnn.train(text=text, out=tmp_path / "counted", steps=total, **settings)
    a, b = npz_arrays(tmp_path / "timed" / "last.npz"), npz_arrays(tmp_path / "counted" / "last.npz")
    for key in ("W", "U", "V", "b", "c", "adam_m.W", "adam_v.V", "h", "update"):
        assert np.array_equal(a[key], b[key]), key


def test_a_budget_validates_ten_times_and_once_an_epoch_unless_told(tmp_path, text):
    assert validation_interval(1000, 500) == 100 and validation_interval(1000, 40) == 40
    assert validation_interval(5, 40) == 1
    # a short text: many epochs in a second
    fastrnn.train(text=text, out=tmp_path / "timed", time_limit="1s", hidden=16, val_fraction=0.1, sample_every=0,
                  progress=False)
    config = json.loads((tmp_path / "timed" / "run.json").read_text())
    per_epoch = (len(text) - round(0.1 * len(text)) - 1) // 25  # updates of one stream over the training part
    assert config["total_updates"] > 10 * per_epoch and config["val_every"] == per_epoch
    validated = np.loadtxt(tmp_path / "timed" / "validation.csv", delimiter=",", skiprows=1, ndmin=2)
    assert list(validated[:-1, 0]) == [config["val_every"] * i for i in range(len(validated) - 1)]
    assert validated[-1, 0] == json.loads((tmp_path / "timed" / "summary.json").read_text())["updates"]
    fastrnn.train(text=text, out=tmp_path / "counted", steps=50, hidden=16, val_fraction=0.1, progress=False)
    assert json.loads((tmp_path / "counted" / "run.json").read_text())["val_every"] == 10_000


def test_bad_budgets_are_one_line_and_lose_nothing(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--steps", "10"] + SMALL).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for args, fragment in ((["--time-limit", "0"], "more than zero"),
                           (["--time-limit", "soon"], "150s, 2.5m or 1h"),
                           (["--time-limit", "10s", "--steps", "5"], "not both"),
                           (["--time-limit", "10s", "--epochs", "1"], "not both")):
        one_line_error(run(["train", str(book), "--out", str(out), "--force"] + SMALL + args), 2, fragment)
    # known once the model's speed is measured: after the line saying what would train
    one_line_error(run(["train", str(book), "--out", str(out), "--force", "--time-limit", "0.00001s"] + SMALL), 2,
                   "give at least", alone=False)
    one_line_error(run(["train", "--resume", str(out), "--time-limit", "5s"]), 2, "--time-limit cannot change")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
