"""The declaration of every setting, and what is derived from it: the public signatures, the
command line, the checkpoint's record, the recipes, the sweep's list and the report's rows."""
import inspect
import math

import pytest

import fastrnn
import fastrnn.cells
from fastrnn import settings
from fastrnn.model import Hyper, hyper_from_fields
from fastrnn.recipes import RECIPES, run_settings
from fastrnn.settings import BY_NAME, OPTIONS, SETTINGS, STORED, SWEEPABLE, OptionError, check
from fastrnn.sweeps import parse_grid
from helpers import run


def test_each_setting_is_declared_once_with_what_it_needs():
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    for s in SETTINGS:
        assert s.group in settings.GROUPS and s.help and s.type in (int, float, str, bool), s.name
        assert s.default is None or s.valid(s.default) or s.default == 0, s.name
        for cell, value in s.by_cell.items():
            assert cell in fastrnn.cells.CELLS and (value is None or s.valid(value)), (s.name, cell)


def test_train_keeps_an_explicit_signature_that_follows_the_declaration():
    parameters = inspect.signature(fastrnn.train).parameters
    doc = fastrnn.train.__doc__
    for s in OPTIONS:
        assert s.name in parameters, f"fastrnn.train lacks the setting {s.name}"
        default = parameters[s.name].default
        # None: decided by the recipe, the init model or the optimizer; otherwise the declared default
        assert default is None or default == s.default, (s.name, default, s.default)
        assert s.name in doc, f"train's docstring does not mention {s.name}"
    resumable = inspect.signature(fastrnn.resume).parameters
    for s in OPTIONS:
        assert (s.name in resumable) == s.resumable, s.name


def test_the_checkpoints_record_is_the_model_and_optimizer_settings():
    assert list(Hyper.__dataclass_fields__) == [s.name for s in STORED]
    assert Hyper() == Hyper(**{s.name: s.default for s in STORED})
    with pytest.raises(ValueError, match="hyperparameter hidden must be a positive integer, not 0"):
        hyper_from_fields({"hidden": 0})
    with pytest.raises(ValueError, match="unknown hyperparameter 'colour'"):
        hyper_from_fields({"colour": 1})
    assert hyper_from_fields({"clip_norm": 0.0}).clip_norm == 0.0  # the default: no norm clip


@pytest.mark.parametrize("s", [s for s in OPTIONS if s.type is not str or s.choices], ids=lambda s: s.name)
def test_every_option_refuses_a_value_outside_its_range_with_one_message(s):
    bad = ("nothing" if s.choices else "1" if s.type is not str else 3)
    with pytest.raises(OptionError, match=f"^{s.name} must be {s.what()[:12]}") as err:
        check(s.name, bad)
    assert err.value.option == s.name
    if s.low is not None:
        below = s.low - (0 if s.low_open else 1)
        with pytest.raises(OptionError, match=f"^{s.name} must be"):
            check(s.name, below)
    check(s.name, None)  # not given


def test_the_command_line_options_come_from_the_declaration():
    help_text = " ".join(run(["train", "--help"]).output.split())
    for s in OPTIONS:
        if s.name != "planned_updates":  # the API's, for sweeps
            assert "--" + s.name.replace("_", "-") in help_text, s.name
    for name in settings.FIXED_ON_RESUME:
        if name == "planned_updates":
            continue
        flag = "--" + name.replace("_", "-")
        value = {str: "x", int: "3", float: "0.3"}[BY_NAME[name].type]
        value = BY_NAME[name].choices[-1] if BY_NAME[name].choices else value
        result = run(["train", "--resume", "nowhere", flag, value])
        assert result.exit_code == 2 and f"{flag} cannot change when resuming" in result.stderr, (flag, result.stderr)


def test_recipes_and_sweeps_come_from_the_declaration():
    for cell, recipe in RECIPES.items():
        for name, value in recipe.items():
            assert BY_NAME[name].by_cell[cell] == value
    assert set(SWEEPABLE) == {s.name for s in SETTINGS if s.sweepable}
    assert parse_grid([f"{name}={'1' if kind is not str else 'x'}" for name, kind in SWEEPABLE.items()
                       if kind is not str]).keys() == {n for n, k in SWEEPABLE.items() if k is not str}
    with pytest.raises(OptionError, match="cannot be swept"):
        parse_grid(["val_fraction=0.1"])


def test_a_run_is_given_only_the_options_its_optimizer_and_schedule_take():
    with pytest.raises(OptionError, match="beta1 is an option of adam, not of adagrad"):
        run_settings({"beta1": 0.5})
    with pytest.raises(OptionError, match="decay belongs to the step schedule, not to cosine"):
        run_settings({"cell": "lstm", "decay": 0.5})
    fields = run_settings({"cell": "lstm"})
    assert fields["min_eta"] == pytest.approx(fields["eta"] / 10) and fields["weight_decay"] == 0.1
    assert run_settings({"schedule": "step", "decay_every": 10})["decay"] == 0.5


def test_a_report_names_only_the_settings_the_run_uses():
    adam_lstm = Hyper(cell="lstm", optimizer="adam", schedule="cosine", clip_norm=5.0)
    names = {s.name for s in settings.used(adam_lstm)}
    assert {"beta1", "beta2", "weight_decay", "min_eta", "clip_norm"} <= names
    assert not names & {"sigma", "clip", "alpha", "decay", "decay_every"}
    classic = {s.name for s in settings.used(Hyper())}
    assert {"sigma", "clip", "eta"} <= classic
    assert not classic & {"beta1", "beta2", "alpha", "weight_decay", "min_eta", "clip_norm", "schedule_updates"}


def test_a_value_at_the_open_end_of_a_range_is_refused():
    assert not BY_NAME["dropout"].valid(1.0) and BY_NAME["dropout"].valid(0.0)
    assert not BY_NAME["eta"].valid(math.inf) and not BY_NAME["eta"].valid(0.0)
    assert BY_NAME["decay"].valid(1.0) and not BY_NAME["decay"].valid(0.0)
    assert not BY_NAME["hidden"].valid(True) and not BY_NAME["hidden"].valid(2.0)


def test_sample_length_sets_the_samples_of_a_run_and_of_its_resumed_sessions(tmp_path, book):
    out = tmp_path / "run"
    result = run(["train", str(book), "--out", str(out), "--hidden", "8", "--steps", "20", "--sample-every", "10",
                  "--sample-length", "17", "-q"])
    assert result.exit_code == 0, result.output
    assert [len(s.text) for s in fastrnn.Run(out).samples] == [17, 17, 17]
    fastrnn.resume(out, steps=30, progress=False)  # keeps the run's length
    assert [len(s.text) for s in fastrnn.Run(out).samples] == [17] * 4


def test_a_run_of_zero_steps_writes_the_model_at_update_zero(tmp_path, book):
    out = tmp_path / "run"
    result = run(["train", str(book), "--out", str(out), "--steps", "0", "--hidden", "8", "-q"])
    assert result.exit_code == 0, result.output
    model = fastrnn.load(out / "last.npz")
    assert model.update == 0 and fastrnn.Run(out).summary["updates"] == 0
    # the first update by hand from there is the run's own first update
    assert fastrnn.resume(out, steps=1, progress=False).updates_trained == 1
    with pytest.raises(OptionError, match="warmup"):  # a warm-up still has to end within the run
        fastrnn.train(book, out=tmp_path / "w", steps=3, warmup=3, hidden=8, progress=False)
