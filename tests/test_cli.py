"""The command line end to end: through click's runner and through the installed command."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fastrnn.model import load_checkpoint

from helpers import one_line_error, run


def test_train_then_sample(tmp_path, book):
    out = tmp_path / "run"
    result = run(["train", str(book), "--out", str(out), "--hidden", "16", "--steps", "200",
                  "--sample-every", "100", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "chars/s" in result.stderr
    assert (out / "best.npz").is_file() and (out / "loss.png").is_file()
    first = run(["sample", "--checkpoint", str(out), "--len", "300", "--seed", "7"])
    second = run(["sample", "--checkpoint", str(out / "best.npz"), "--len", "300", "--seed", "7"])
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout
    assert len(first.stdout) == 301  # the text and a newline, nothing else on stdout
    other = run(["sample", "--checkpoint", str(out), "--len", "300", "--seed", "8"])
    assert other.stdout != first.stdout
    primed = run(["sample", "--checkpoint", str(out), "--len", "20", "--seed", "1", "--prime", "The rain"])
    assert primed.exit_code == 0 and primed.stdout.startswith("The rain") and len(primed.stdout) == 29


def test_sample_defaults_to_the_latest_run(tmp_path, book):
    for name in ("older", "newer"):
        result = run(["train", str(book), "--out", f"runs/{name}", "--hidden", "8", "--steps", "20",
                      "--seed", "1" if name == "older" else "2"], cwd=tmp_path)
        assert result.exit_code == 0, result.output
    os.utime(tmp_path / "runs/older/best.npz", (1, 1))
    latest = run(["sample", "--len", "50", "--seed", "0"], cwd=tmp_path)
    newer = run(["sample", "--checkpoint", str(tmp_path / "runs/newer"), "--len", "50", "--seed", "0"])
    assert latest.exit_code == 0, latest.output
    assert latest.stdout == newer.stdout


def test_default_run_directory_is_under_runs(tmp_path, book):
    result = run(["train", str(book), "--hidden", "8", "--steps", "5", "-q"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("book-") and (run_dir / "last.npz").is_file()


def test_epochs_and_steps(tmp_path, book, text):
    per_epoch = (len(text) - 1) // 25
    result = run(["train", str(book), "--out", str(tmp_path / "a"), "--hidden", "8", "--epochs", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path / "a/last.npz").update == per_epoch
    result = run(["train", str(book), "--out", str(tmp_path / "b"), "--hidden", "8", "--epochs", "2",
                  "--steps", "7", "-q"])
    assert load_checkpoint(tmp_path / "b/last.npz").update == 7


@pytest.mark.parametrize("content, fragment", [
    (None, "no such file"),
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not valid utf-8"),
    (b"abc\x00def" * 10, "binary"),
    (b"too short", "at least seq_length + 1 = 26"),
])
def test_bad_books(tmp_path, content, fragment):
    path = tmp_path / "book.txt"
    if content is not None:
        path.write_bytes(content)
    result = run(["train", str(path), "--out", str(tmp_path / "run")])
    one_line_error(result, 1, fragment)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, value", [
    ("--hidden", "0"), ("--seq-length", "-3"), ("--eta", "0"), ("--sigma", "-1"), ("--epochs", "0"),
    ("--steps", "-1"), ("--hidden", "abc"),
])
def test_bad_options(tmp_path, book, option, value):
    result = run(["train", str(book), "--out", str(tmp_path / "run"), option, value])
    one_line_error(result, 2, option)
    assert not (tmp_path / "run").exists()


def test_existing_run_is_not_overwritten(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--hidden", "8", "--steps", "10", "-q"]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = run(["train", str(book), "--out", str(out), "--hidden", "8", "--steps", "20", "-q"])
    one_line_error(result, 1, "--force")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    result = run(["train", str(book), "--out", str(out), "--hidden", "8", "--steps", "20", "-q", "--force"])
    assert result.exit_code == 0
    assert load_checkpoint(out / "last.npz").update == 20
    assert (out / "samples.txt").read_text().count("=== best model") == 1


def test_sample_errors(tmp_path, book):
    one_line_error(run(["sample"], cwd=tmp_path), 1, "no run found")
    one_line_error(run(["sample", "--checkpoint", str(tmp_path / "none.npz")]), 1, "no such checkpoint")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    one_line_error(run(["sample", "--checkpoint", str(junk)]), 1, "not a fastrnn checkpoint")
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--hidden", "8", "--steps", "5", "-q"]).exit_code == 0
    one_line_error(run(["sample", "--checkpoint", str(out), "--prime", "Zebra!"]), 2, "'Z'")
    one_line_error(run(["sample", "--checkpoint", str(out), "--temperature", "0"]), 2, "--temperature")


def test_checkpoint_validation_messages(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--hidden", "8", "--steps", "5", "-q"]).exit_code == 0
    with np.load(out / "best.npz") as z:
        arrays = {k: z[k] for k in z.files}
    bad_shape = dict(arrays, W=np.zeros((3, 3)))
    np.savez(tmp_path / "shape.npz", **bad_shape)
    one_line_error(run(["sample", "--checkpoint", str(tmp_path / "shape.npz")]), 1, "W has shape (3, 3)")
    np.savez(tmp_path / "pickled.npz", W=np.array([{"a": 1}], dtype=object))
    one_line_error(run(["sample", "--checkpoint", str(tmp_path / "pickled.npz")]), 1, "pickled")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((out / "best.npz").read_bytes()[:2000])
    one_line_error(run(["sample", "--checkpoint", str(truncated)]), 1, "not a fastrnn checkpoint")
    nan = dict(arrays)
    nan["V"] = arrays["V"].copy()
    nan["V"][0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **nan)
    one_line_error(run(["sample", "--checkpoint", str(tmp_path / "nan.npz")]), 1, "non-finite")


@pytest.mark.skipif(shutil.which("fastrnn") is None, reason="the fastrnn command is not installed")
def test_installed_command(tmp_path, book):
    out = tmp_path / "run"
    train = subprocess.run(["fastrnn", "train", str(book), "--out", str(out), "--hidden", "8",
                            "--steps", "50"], capture_output=True, text=True)
    assert train.returncode == 0, train.stderr
    assert "chars/s" in train.stderr and train.stdout == ""
    sample = subprocess.run(["fastrnn", "sample", "--checkpoint", str(out), "--len", "80", "--seed", "2"],
                            capture_output=True, text=True)
    assert sample.returncode == 0 and len(sample.stdout) == 81
    # same text with the JIT disabled: the same operations in the same order, only unfused there,
    # which changes a character only if a random number falls within rounding of a boundary
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    plain = subprocess.run(["fastrnn", "sample", "--checkpoint", str(out), "--len", "80", "--seed", "2"],
                           capture_output=True, text=True, env=env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == sample.stdout
    missing = subprocess.run(["fastrnn", "train", str(tmp_path / "nope.txt")], capture_output=True, text=True)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr


def test_help_does_not_import_numba():
    code = "import sys; from fastrnn.cli import cli; print('numba' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False"
