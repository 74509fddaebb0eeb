"""The Python API as a notebook or a script uses it, against the command line it underlies."""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

import fastrnn
from fastrnn.formats import END_OF_TEXT
from fastrnn.model import load_checkpoint

from conftest import make_text
from helpers import run

QUIET = dict(progress=False, hidden=12, seq_length=10, log_every=10, sample_every=50, checkpoint_every=40)


@pytest.fixture
def trained(tmp_path, text):
    return fastrnn.train(text=text, out=tmp_path / "run", steps=120, val_fraction=0.1, val_every=40, **QUIET)


def test_a_model_samples_what_the_command_line_prints(trained):
    from_python = fastrnn.load(trained.dir).sample(300, seed=4)
    printed = run(["sample", "--checkpoint", trained.dir, "--len", "300", "--seed", "4"])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == from_python + "\n"
    several = fastrnn.load(trained.dir).sample(50, seed=4, num=3, temperature=0.7, top_k=5)
    assert json.loads(run(["sample", "--checkpoint", trained.dir, "--len", "50", "--seed", "4", "--num", "3",
                           "--temperature", "0.7", "--top-k", "5", "--json"]).stdout) == several


def test_a_run_reads_back_everything_it_wrote(trained, text):
    assert trained.updates_trained == 120
    metrics = trained.metrics
    assert metrics["update"].tolist() == list(range(10, 121, 10))
    assert set(metrics) == {"update", "epoch", "loss", "smooth_loss"} and metrics["smooth_loss"].dtype == float
    assert trained.validation["update"].tolist() == [0, 40, 80, 120]
    assert np.allclose(trained.validation["bits_per_char"], trained.validation["nats_per_char"] / np.log(2))
    samples = trained.samples
    assert [s.update for s in samples] == [0, 50, 100] and all(len(s.text) == 200 for s in samples)
    assert trained.summary["finished"] and trained.summary["updates"] == 120
    assert trained.best_model.update == trained.summary["best_model_update"]
    assert trained.model.update == 120
    assert isinstance(trained.plot(), Figure)
    book = open(f"{trained.dir}/book.txt", encoding="utf-8").read()
    assert book == text  # a text given as a string is kept, so that the run can be resumed
    again = fastrnn.Run(trained.dir)
    assert again.summary == trained.summary and again.updates_trained is None


def test_resume_continues_exactly(tmp_path, text):
    straight = fastrnn.train(text=text, out=tmp_path / "straight", steps=100, **QUIET)
    split = fastrnn.train(text=text, out=tmp_path / "split", steps=40, **QUIET)
    resumed = fastrnn.resume(split.dir, steps=100, progress=False)
    assert resumed.updates_trained == 60
    for name in ("W", "U", "V", "b", "c"):
        assert np.array_equal(getattr(resumed.model, name), getattr(straight.model, name))
    assert fastrnn.resume(split.dir, progress=False).updates_trained == 0  # finished: nothing to do


def test_documents_are_closed_by_end_of_text(tmp_path):
    tweets = ["Great day for a walk!", "Tax cuts are coming.", "Go team go"] * 20
    done = fastrnn.train(text=tweets, out=tmp_path / "tweets", steps=300, **QUIET)
    model = done.best_model
    assert END_OF_TEXT in model.vocab
    texts = model.sample(100, seed=1, num=4, until_end=True)
    assert all(END_OF_TEXT not in t and len(t) <= 100 for t in texts)


def test_model_parameters_are_read_only_and_it_saves(trained, tmp_path):
    model = trained.best_model
    m, K = model.hyper["hidden"], len(model.vocab)
    assert model.W.shape == (m, m) and model.U.shape == (m, K) and model.V.shape == (K, m)
    with pytest.raises(ValueError):
        model.W[0, 0] = 1.0
    model.save(tmp_path / "copy.npz")
    copy = fastrnn.load(tmp_path / "copy.npz")
    assert copy.sample(100, seed=3) == model.sample(100, seed=3)
    score = model.evaluate("the rain in spain falls mainly@")
    assert isinstance(score, fastrnn.Score) and score.unknown_chars == 1 and score.predicted > 0
    assert score.bits_per_char == pytest.approx(score.nats_per_char / np.log(2))
    assert model.evaluate("the rain", from_zero=True).bits_per_char != model.evaluate("the rain").bits_per_char


def test_progress_goes_to_a_callable(tmp_path, text):
    seen = []
    fastrnn.train(text=text, out=tmp_path / "run", steps=60, hidden=8, progress=seen.append)
    assert seen and seen[-1].update == 60 and seen[-1].total == 60
    assert all(p.seconds_per_update > 0 and p.chars_per_s > 0 for p in seen)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda tmp: fastrnn.train(text="short", out=tmp / "a", progress=False), fastrnn.FastrnnError, "characters"),
    (lambda tmp: fastrnn.train(tmp / "missing.txt", out=tmp / "b", progress=False), fastrnn.FastrnnError,
     "no such file"),
    (lambda tmp: fastrnn.train(text="x" * 100, hidden=0, progress=False), fastrnn.OptionError, "hidden"),
    (lambda tmp: fastrnn.train(text="x" * 100, dtype="float16", progress=False), fastrnn.OptionError, "dtype"),
    (lambda tmp: fastrnn.load(tmp / "none.npz"), fastrnn.FastrnnError, "no such checkpoint"),
    (lambda tmp: fastrnn.Run(tmp), fastrnn.FastrnnError, "not a fastrnn run"),
])
def test_errors_are_one_class_with_one_line(tmp_path, call, error, fragment):
    with pytest.raises(error) as caught:
        call(tmp_path)
    assert isinstance(caught.value, fastrnn.FastrnnError)
    message = str(caught.value)
    assert fragment in message and "\n" not in message


def test_a_bad_prime_names_the_option(trained):
    with pytest.raises(fastrnn.OptionError) as caught:
        fastrnn.load(trained.dir).sample(10, prime="@")
    assert caught.value.option == "prime"


def test_import_is_light():
    code = "import sys, fastrnn; print('numba' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("page,run_dir", [("README.md", "first"), ("docs/python.md", "quickstart")])
def test_the_documented_example_runs(tmp_path, monkeypatch, capsys, page, run_dir):
    # the first Python example of the README and of the guide's "From Python" page, as printed
    text = (Path(__file__).parents[1] / page).read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)
    (tmp_path / "book.txt").write_text(make_text(2000), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, page, "exec"), {})
    printed = capsys.readouterr().out
    assert len(printed) > 300  # the sample and a score (and the guide's validation curve)
    assert (tmp_path / "runs" / run_dir / "best.npz").is_file()


def test_the_quickstart_notebook_runs_in_a_jupyter_kernel(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(Path(__file__).parent / "notebooks" / "quickstart.ipynb", as_version=4)
    # a real kernel; any cell that raises fails the test (CellExecutionError)
    nbclient.NotebookClient(notebook, timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert any("image/png" in out.get("data", {}) for out in outputs), "run.plot() should show a figure"
    sample = notebook.cells[5].outputs[0]["text"]
    assert len(sample) > 250
    assert "bits_per_char" in notebook.cells[6].outputs[0]["data"]["text/plain"]


def test_gradcheck_returns_the_table_the_command_prints():
    check = fastrnn.gradcheck(seed=3)
    assert check.passed and [e.param for e in check.results["kernels"]] == ["b", "c", "U", "W", "V"]
    printed = run(["gradcheck", "--seed", "3"])
    assert printed.exit_code == 0 and printed.stdout == check.table() + "\npassed\n"


def test_docstring_examples(tmp_path, monkeypatch):
    import doctest

    import fastrnn.api
    import fastrnn.trained

    monkeypatch.chdir(tmp_path)  # the examples write runs/doc here
    # train's example makes the run the others open: run it first
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    found = [test for module in (fastrnn.api, fastrnn.trained) for test in finder.find(module, globs={"fastrnn": fastrnn})]
    tests = sorted(found, key=lambda t: t.name != "fastrnn.api.train")
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert runner.tries >= 8


def test_errors_survive_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(fastrnn.OptionError("hidden", "hidden must be a positive integer, not 0")))
    assert error.option == "hidden" and str(error) == "hidden must be a positive integer, not 0"
    stopped = pickle.loads(pickle.dumps(fastrnn.Interrupted(40, "runs/x")))
    assert (stopped.update, stopped.out_dir) == (40, "runs/x")


def shell_reply(kc, msg_id, timeout):
    """The kernel's reply to the request ``msg_id``, passing over replies to others (a late one
    to the client's kernel_info request, say)."""
    while True:
        message = kc.get_shell_msg(timeout=timeout)
        if message["parent_header"].get("msg_id") == msg_id:
            return message["content"]


def test_interrupting_a_notebook_kernel_checkpoints_the_run(tmp_path, text):
    manager = pytest.importorskip("jupyter_client.manager")
    out = tmp_path / "run"
    km, kc = manager.start_new_kernel(kernel_name="python3")
    try:
        # stop_on_error=False: the kernel would otherwise abort the next cell sent within
        # moments of the error, which is the kernel's rule, not this test's subject
        training = kc.execute(f"import fastrnn\nfastrnn.train(text={text!r}, out={str(out)!r}, steps=10**8, "
                              f"hidden=16, sample_every=0, checkpoint_every=0, log_every=10, progress=False)",
                              stop_on_error=False)
        deadline = time.monotonic() + 300
        while not ((out / "metrics.csv").exists() and len((out / "metrics.csv").read_text().splitlines()) > 3):
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.2)
        km.interrupt_kernel()  # the notebook's interrupt: SIGINT to the kernel
        reply = shell_reply(kc, training, 120)
        assert reply["status"] == "error" and reply["ename"] == "Interrupted", reply
        loading = kc.execute("fastrnn.load(" + repr(str(out / "last.npz")) + ").hyper['hidden']")  # the kernel lives on
        assert shell_reply(kc, loading, 60)["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    stopped = load_checkpoint(out / "last.npz")
    logged = np.loadtxt(out / "metrics.csv", delimiter=",", skiprows=1, ndmin=2)
    assert stopped.update >= logged[-1, 0] > 0  # the work up to the interrupt is kept
    assert json.loads((out / "summary.json").read_text())["finished"] is False
    assert fastrnn.resume(out, steps=stopped.update + 20, progress=False).updates_trained == 20
