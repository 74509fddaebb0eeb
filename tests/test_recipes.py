"""What a run trains with where it is not told: the cell's recipe, the given options winning."""
import json

import numpy as np
import pytest

import fastrnn
from fastrnn.recipes import CLASSIC, LONG_RUN_EPOCHS, RECIPES
from helpers import one_line_error, run


def trained_hyper(tmp_path, text, **options) -> dict:
    out = tmp_path / "run"
    fastrnn.train(text=text, out=out, steps=1, sample_every=0, progress=False, force=True, **options)
    return fastrnn.load(out / "last.npz").hyper


def test_the_rnn_cell_keeps_the_assignments_rule(tmp_path, text):
    hyper = trained_hyper(tmp_path, text)
    rule = {name: value for name, value in CLASSIC.items() if name not in ("clip_norm", "weight_decay")}
    assert {name: hyper[name] for name in rule} == rule
    assert hyper["clip_norm"] == 0  # off: each element is clipped instead
    assert (hyper["hidden"], hyper["seq_length"], hyper["streams"], hyper["eta"], hyper["clip"]) == (100, 25, 1, 0.1, 5)
    assert (hyper["optimizer"], hyper["schedule"], hyper["dtype"]) == ("adagrad", "constant", "float64")


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_a_gated_cell_alone_takes_its_recipe(tmp_path, text, cell):
    hyper = trained_hyper(tmp_path, text, cell=cell)
    assert {name: hyper[name] for name in RECIPES[cell]} == RECIPES[cell]
    assert (hyper["optimizer"], hyper["schedule"], hyper["dtype"], hyper["clip_norm"]) == ("adam", "cosine",
                                                                                           "float32", 5.0)
    assert hyper["eta"] == 0.004 and hyper["min_eta"] == pytest.approx(hyper["eta"] / 10)
    assert hyper["embedding"] == 256 and hyper["dropout"] == (0.1 if cell == "lstm" else 0.0)
    assert hyper["weight_decay"] == (0.1 if cell == "lstm" else 0.0)


def test_options_given_win_and_a_rate_not_given_follows_the_optimizer(tmp_path, text):
    hyper = trained_hyper(tmp_path, text, cell="lstm", hidden=12, optimizer="adagrad", clip=3.0, dtype="float64")
    assert (hyper["hidden"], hyper["optimizer"], hyper["eta"], hyper["dtype"]) == (12, "adagrad", 0.1, "float64")
    assert (hyper["clip"], hyper["clip_norm"]) == (3.0, 0)  # an element-wise clip given turns the norm's off
    assert hyper["seq_length"] == 64 and hyper["schedule"] == "cosine"  # the rest stays the recipe's
    assert trained_hyper(tmp_path, text, optimizer="rmsprop", hidden=12)["eta"] == 0.002
    assert trained_hyper(tmp_path, text, cell="gru", hidden=12, eta=0.01)["eta"] == 0.01
    # the recipe's weight decay goes with its optimizer: another's is that one's own
    assert trained_hyper(tmp_path, text, cell="lstm", hidden=12, optimizer="rmsprop")["weight_decay"] == 0.0
    assert trained_hyper(tmp_path, text, cell="lstm", hidden=12, weight_decay=0.0)["weight_decay"] == 0.0


def test_a_short_text_gets_as_many_recipe_streams_as_it_has_chunks(tmp_path, text, book):
    short = text[:64 * 5 + 1]
    assert trained_hyper(tmp_path, short, cell="gru", hidden=12)["streams"] == 5
    # streams asked for are not cut down: too many is an error
    one_line_error(run(["train", str(book), "--out", str(tmp_path / "x"), "--cell", "gru", "--streams", "500", "-q"]),
                   2, "chunks of 64 characters to spread 500 streams over")


def test_help_shows_each_cells_default():
    help_text = " ".join(run(["train", "--help"]).output.split())
    assert "[100; 384]" in help_text and "[25; 64]" in help_text and "[adagrad; adam]" in help_text


def test_the_lstms_dropout_not_given_follows_the_epochs_the_run_plans(tmp_path, text):
    book = tmp_path / "book.txt"
    book.write_text(text, encoding="utf-8")
    chunks = (len(text) - 1) // 64
    streams = min(32, chunks)
    per_epoch = -(-chunks // streams)  # updates
    for epochs, dropout in ((LONG_RUN_EPOCHS, 0.1), (LONG_RUN_EPOCHS + 1, 0.2)):
        out = tmp_path / f"run{epochs}"
        result = run(["train", str(book), "--cell", "lstm", "--hidden", "8", "--embedding", "4",
                      "--steps", str(epochs * per_epoch), "--sample-every", "0", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert fastrnn.load(out / "last.npz").hyper["dropout"] == dropout
        assert ("dropout 0.2: the lstm recipe's for a run of more than 12 epochs" in result.output) == (dropout == 0.2)
    # given, it is kept
    out = tmp_path / "given"
    fastrnn.train(book, out=out, cell="lstm", hidden=8, embedding=4, dropout=0.05,
                  steps=(LONG_RUN_EPOCHS + 1) * per_epoch, sample_every=0, progress=False)
    assert fastrnn.load(out / "last.npz").hyper["dropout"] == 0.05


def test_a_run_trained_in_pieces_of_its_planned_updates_ends_where_one_run_ends(tmp_path, text):
    chunks = (len(text) - 1) // 64
    planned = (LONG_RUN_EPOCHS + 1) * -(-chunks // min(32, chunks))  # past the long-run dropout's epochs
    small = dict(cell="lstm", hidden=8, embedding=4, sample_every=0, progress=False)
    first = fastrnn.train(text=text, out=tmp_path / "pieces", steps=planned // 3, planned_updates=planned,
                          **small).model
    # the first piece already has the whole run's cosine span and long-run dropout
    assert first.update == planned // 3 and first.hyper["schedule_updates"] == planned
    assert first.hyper["dropout"] == 0.2
    pieces = fastrnn.resume(tmp_path / "pieces", steps=planned, progress=False)
    straight = fastrnn.train(text=text, out=tmp_path / "straight", steps=planned, **small)
    assert pieces.updates_trained == planned - planned // 3
    assert json.loads((tmp_path / "pieces" / "run.json").read_text())["planned_updates"] == planned
    assert all(np.array_equal(a, b) for a, b in zip(pieces.model.params.values(), straight.model.params.values()))
    with pytest.raises(fastrnn.OptionError, match="the run's 30 updates are more than the 20 planned"):
        fastrnn.train(text=text, out=tmp_path / "x", steps=30, planned_updates=20, **small)
    with pytest.raises(fastrnn.OptionError, match="give it or planned_updates, not both"):
        fastrnn.train(text=text, out=tmp_path / "x", time_limit="1s", planned_updates=20, **small)
