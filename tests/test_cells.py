"""The cells: every declared cell has every part a cell needs, and one that lacks a part is
told which; the gated cells and stacks end to end: training, exact resume (also after kill -9),
validation scored as `fastrnn eval` scores, warm-start sampling with --top-k and --until-end,
checkpoints of format 3 and the older ones, the report, sweeps over cell and layers, and bad
input."""
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

import fastrnn
from fastrnn import gradients, recipes, reference, webpage
from fastrnn.cell_parts import missing_parts
from fastrnn.cells import CELLS, FORWARD_STEP_ARGS
from fastrnn.model import load_checkpoint, save_checkpoint

from conftest import make_text
from helpers import SMALL, assert_same_run, npz_arrays, one_line_error, run
from test_resume import stop_and_resume

LSTM = ["--cell", "lstm", "--layers", "2", "--hidden", "10"]
SMALL_STACK = [a for a in SMALL if a not in ("--hidden", "12")]


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_has_every_part(cell):
    assert missing_parts(cell) == []


# A cell declared and nothing more: a copy of the first cell under a new name, whose parts each
# test gives it, all but those it should lack.
NEW = "newcell"
PART_WHERE = ["kernels/stack.py STEPS", "reference.py STEPS", "gradients.py _BATCHED_STEPS", "web/sampler.js STEPS",
              "recipes.py RECIPES"]


def declare_new_cell(monkeypatch, lacking=()):
    """Declares NEW in ``CELLS`` with every part borrowed from the first cell but those named by
    where they belong in ``lacking``; returns that first cell's name."""
    from fastrnn.kernels import stack

    donor = next(iter(CELLS))
    monkeypatch.setitem(CELLS, NEW, replace(CELLS[donor], name=NEW))
    registries = {"kernels/stack.py STEPS": stack.STEPS, "reference.py STEPS": reference.STEPS,
                  "gradients.py _BATCHED_STEPS": gradients._BATCHED_STEPS, "recipes.py RECIPES": recipes.RECIPES}
    for where, registry in registries.items():
        if where not in lacking:
            monkeypatch.setitem(registry, NEW, registry[donor])
    if "web/sampler.js STEPS" not in lacking:
        page = webpage.sampler_steps()
        monkeypatch.setattr(webpage, "sampler_steps", lambda: dict(page, **{NEW: page[donor]}))
    return donor


def where(missing):
    return [line.split(":")[0] for line in missing]


def test_a_cell_declared_alone_lacks_every_part(monkeypatch):
    declare_new_cell(monkeypatch, lacking=PART_WHERE)
    missing = missing_parts(NEW)
    assert where(missing) == PART_WHERE
    assert all(NEW not in missing_parts(cell) for cell in CELLS if cell != NEW)


@pytest.mark.parametrize("lacking", PART_WHERE)
def test_a_cell_lacking_one_part_is_told_which(monkeypatch, lacking):
    declare_new_cell(monkeypatch, lacking=[lacking])
    assert where(missing_parts(NEW)) == [lacking]


def test_a_page_step_of_other_gates_or_carried_vectors_is_named(monkeypatch):
    donor = declare_new_cell(monkeypatch)
    assert missing_parts(NEW) == []
    gates, carried = webpage.sampler_steps()[donor]
    for wrong in ((gates + 1, carried), (gates, carried + ("n",))):
        page = webpage.sampler_steps()
        monkeypatch.setattr(webpage, "sampler_steps", lambda page=page, wrong=wrong: dict(page, **{NEW: wrong}))
        (line,) = missing_parts(NEW)
        assert line.startswith("web/sampler.js STEPS: declares") and f"not {gates} carrying" in line


def test_a_kernel_step_off_the_contract_is_named(monkeypatch):
    from fastrnn.kernels import stack

    declare_new_cell(monkeypatch)
    forward, backward = stack.STEPS[NEW]

    def newcell_forward_step(h, a, hh, b_hh, h_prev, scratch):  # no c, aux, c_prev
        pass

    monkeypatch.setitem(stack.STEPS, NEW, (newcell_forward_step, backward))
    (line,) = missing_parts(NEW)
    assert line.startswith("kernels/stack.py STEPS: newcell_forward_step takes (h, a, hh, b_hh, h_prev, scratch), "
                           f"not the contract's ({', '.join(FORWARD_STEP_ARGS)})")


def test_the_page_steps_are_read_from_its_table():
    script = webpage.sampler_script()
    assert set(webpage.sampler_steps(script)) == set(CELLS)
    assert {name: webpage.sampler_steps(script)[name] for name in CELLS} == {
        name: (cell.gates, cell.carried) for name, cell in CELLS.items()}
    first = next(iter(CELLS))
    without = "\n".join(line for line in script.splitlines() if not line.startswith(f"  {first}: {{ gates:"))
    assert set(webpage.sampler_steps(without)) == set(CELLS) - {first}
    assert webpage.sampler_steps("function f() {}") == {}


@pytest.mark.parametrize("cell, extra", [(cell, []) for cell in CELLS] + [("lstm", ["--dropout", "0.3"]),
                                                                          ("gru", ["--embedding", "6"])])
def test_a_resumed_stack_with_streams_and_validation_equals_an_uninterrupted_one(tmp_path, book, cell, extra):
    # the cell's recipe but for its cosine schedule, which a resume with more --steps would stretch
    args = ["--cell", cell, "--layers", "2", "--hidden", "10", "--streams", "3", "--val-fraction", "0.1",
            "--val-every", "20", "--schedule", "constant"] + SMALL_STACK + extra
    full, split = tmp_path / "full", tmp_path / "split"
    assert run(["train", str(book), "--out", str(full), "--steps", "100"] + args).exit_code == 0
    assert run(["train", str(book), "--out", str(split), "--steps", "55"] + args).exit_code == 0
    result = run(["train", "--resume", str(split), "--steps", "100", "-q"])
    assert result.exit_code == 0, result.output
    assert_same_run(full, split)
    assert (full / "validation.csv").read_text() == (split / "validation.csv").read_text()
    last = npz_arrays(full / "last.npz")
    assert int(last["format_version"]) == 4 and last["h"].shape == (2, 10)
    carried, gates = CELLS[cell].carried, CELLS[cell].gates
    assert ("c" in last) == ("c" in carried) and last["stream_h"].shape == (3, len(carried) * 2 * 10)
    assert last["weight_hh_l1"].shape == (gates * 10, 10) and "W" not in last
    if "--embedding" in extra:
        K = last["vocab"].size
        assert last["embedding.weight"].shape == (K, 6) and last["weight_ih_l0"].shape == (gates * 10, 6)
    # validation scores from the carried state, as `fastrnn eval` does (without dropout)
    rows = np.loadtxt(full / "validation.csv", delimiter=",", skiprows=1, ndmin=2)
    summary = json.loads((full / "summary.json").read_text())
    held = tmp_path / "held.txt"
    held.write_text(book.read_text()[-summary["val_chars"]:], encoding="utf-8")
    scored = json.loads(run(["eval", str(full / "best.npz"), str(held), "--json"]).stdout)
    best = load_checkpoint(full / "best.npz")
    assert scored["nats_per_char"] == pytest.approx(rows[rows[:, 0] == best.update, 1][0], abs=1e-6)


def test_sampling_an_lstm_starts_from_its_carried_state(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--steps", "150"] + LSTM + SMALL_STACK).exit_code == 0
    model = fastrnn.load(out / "last.npz")
    assert model.cell == "lstm" and model.layers == 2 and set(model.state) == {"h", "c"}
    assert model.params["embedding.weight"].shape == (len(model.vocab), 256)  # the recipe's
    assert model.params["weight_ih_l0"].shape == (40, 256) and model.state["c"].shape == (2, 10)
    with pytest.raises(AttributeError, match="Model.params"):
        model.W
    warm, cold = model.sample(300, seed=4), model.sample(300, seed=4, from_zero=True)
    assert warm != cold and len(warm) == 300
    top1 = model.sample(50, seed=1, top_k=1)
    assert top1 == model.sample(50, seed=2, top_k=1)  # the likeliest character every time
    result = run(["sample", "--checkpoint", str(out / "last.npz"), "--len", "300", "--seed", "4"])
    assert result.exit_code == 0 and result.stdout.rstrip("\n") == warm
    assert "torch_state_dict" in dir(model) and set(model.torch_state_dict()) == set(model.params)


def test_a_gru_writes_tweets_until_their_end(tmp_path):
    tweets = [make_text(12, seed=s).strip() for s in range(60)]
    run_ = fastrnn.train(text=tweets, out=tmp_path / "tweets", steps=200, cell="gru", hidden=12, seq_length=10,
                         progress=False, sample_every=0)
    texts = run_.model.sample(400, seed=0, num=4, until_end=True)
    assert all("\x03" not in t for t in texts) and any(len(t) < 400 for t in texts)


def test_the_report_of_an_lstm_run_checks_its_own_arrays(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--steps", "60"] + LSTM + SMALL_STACK).exit_code == 0
    report = tmp_path / "report.md"
    result = run(["report", str(out), "-o", str(report), "--markdown"])
    assert result.exit_code == 0, result.output
    text = report.read_text()
    assert "A 2-layer lstm after an input embedding (of width 4 here), m = 5" in text  # the recipe's, made small
    for name in ("embedding.weight", "weight_ih_l0", "weight_hh_l1", "bias_hh_l1", "head.weight"):
        assert f"{name} (seed 40)" in text


@pytest.mark.parametrize("cell, layers", [("lstm", 2), ("gru", 1)])
def test_gradcheck_of_a_stack_prints_a_row_per_array(cell, layers):
    result = run(["gradcheck", "--cell", cell, "--layers", str(layers)])
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.stdout.splitlines()[2:-1]]
    assert names == [n for k in range(layers) for n in (f"weight_ih_l{k}", f"weight_hh_l{k}", f"bias_ih_l{k}",
                                                        f"bias_hh_l{k}")] + ["head.weight", "head.bias"]
    assert result.stdout.rstrip().endswith("passed")


def test_checkpoints_of_formats_1_and_2_load_as_classic_models(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--steps", "30"] + SMALL).exit_code == 0
    arrays = npz_arrays(out / "last.npz")
    hyper = json.loads(str(arrays["hyper"]))
    for version in (1, 2):
        old = dict(arrays, format_version=np.array(version),
                   hyper=np.array(json.dumps({k: v for k, v in hyper.items() if k not in ("cell", "layers")})))
        if version == 1:
            old.pop("next_char", None)
        path = tmp_path / f"v{version}.npz"
        np.savez(path, **old)
        state = load_checkpoint(path)
        assert state.hyper.cell == "rnn" and state.hyper.layers == 1 and state.layout.classic
        assert np.array_equal(state.params, load_checkpoint(out / "last.npz").params)


def test_bad_cells_and_shapes_are_one_line(tmp_path, book):
    one_line_error(run(["train", str(book), "--layers", "0"]), 2, "--layers")
    one_line_error(run(["train", str(book), "--cell", "transformer"]), 2, "--cell")
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--steps", "20"] + LSTM + SMALL_STACK).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    one_line_error(run(["train", "--resume", str(out), "--cell", "gru"]), 2, "--cell cannot change")
    one_line_error(run(["train", "--resume", str(out), "--layers", "3"]), 2, "--layers cannot change")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    arrays = npz_arrays(out / "last.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, **dict(arrays, weight_hh_l1=arrays["weight_hh_l1"][:, :5]))
    one_line_error(run(["sample", "--checkpoint", str(bad)]), 1, "weight_hh_l1 has shape (40, 5), expected (40, 10)")
    np.savez(bad, **{k: v for k, v in arrays.items() if k != "c"})
    one_line_error(run(["sample", "--checkpoint", str(bad)]), 1, "missing c")
    np.savez(bad, **dict(arrays, hyper=np.array(str(arrays["hyper"]).replace('"lstm"', '"gpt"'))))
    one_line_error(run(["sample", "--checkpoint", str(bad)]), 1, "unknown cell 'gpt'")
    hyper = json.loads(str(arrays["hyper"]))
    for field, value, fragment in (("cell", ["lstm"], "unknown cell"), ("layers", 10**9, "hyper says 1000000000")):
        np.savez(bad, **dict(arrays, hyper=np.array(json.dumps({**hyper, field: value}))))
        one_line_error(run(["sample", "--checkpoint", str(bad)]), 1, fragment)
    for cell in ("LSTM", ["lstm"]):
        with pytest.raises(fastrnn.FastrnnError, match=f"cell must be one of {', '.join(CELLS)}"):
            fastrnn.train(book, cell=cell, out=tmp_path / "x", progress=False)
    one_line_error(run(["sweep", str(book), "--grid", "cell=lstn", "--steps", "10", "--out", str(tmp_path / "s")]),
                   2, f"cell must be one of {', '.join(CELLS)}, not 'lstn'")
    assert not (tmp_path / "s").exists()


def test_a_sweep_over_cells_and_layers(tmp_path, book):
    out = tmp_path / "sweep"
    result = run(["sweep", str(book), "--grid", "cell=rnn,lstm", "--grid", "layers=1,2", "--grid", "hidden=8",
                  "--steps", "40", "--out", str(out), "--workers", "2", "--threads", "1"])
    assert result.exit_code == 0, result.output
    with open(out / "results.csv") as f:
        rows = list(__import__("csv").DictReader(f))
    assert sorted((r["cell"], r["layers"]) for r in rows) == [("lstm", "1"), ("lstm", "2"), ("rnn", "1"), ("rnn", "2")]
    assert all(r["status"] == "finished" for r in rows)
    for r in rows:
        model = fastrnn.load(out / r["trial"] / "last.npz")
        assert (model.cell, model.layers, model.update) == (r["cell"], int(r["layers"]), 40)


@pytest.mark.skipif(shutil.which("fastrnn") is None, reason="the fastrnn command is not installed")
def test_a_killed_lstm_run_resumes_to_the_same_result(tmp_path):
    args = ["--cell", "lstm", "--layers", "2", "--hidden", "8", "--streams", "2", "--checkpoint-every", "100",
            "--sample-every", "500", "--log-every", "50", "-q"]
    stop_and_resume(tmp_path, "SIGKILL", args, "1500")


def test_a_saved_stack_round_trips(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--steps", "20"] + LSTM + SMALL_STACK).exit_code == 0
    state = load_checkpoint(out / "last.npz")
    save_checkpoint(tmp_path / "again.npz", state)
    again = load_checkpoint(tmp_path / "again.npz")
    assert np.array_equal(again.params, state.params) and np.array_equal(again.h, state.h)
    assert np.array_equal(again.adagrad, state.adagrad) and again.next_char == state.next_char
