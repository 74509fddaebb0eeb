"""Hostile and broken files: one line naming the file and what is wrong, nothing allocated for
what a file only claims, nothing written; one writer per run directory."""
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastrnn
from fastrnn.errors import FastrnnError
from fastrnn.model import load_checkpoint
from fastrnn.report import markdown_fence, markdown_text
from fastrnn.rundir import RunLock
from helpers import one_line_error, run

TEXT = "the rain in spain falls mainly on the plain, and so it goes on.\n" * 20


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "run"
    fastrnn.train(text=TEXT, out=out, steps=30, hidden=6, seq_length=8, sample_every=10, log_every=5,
                  val_fraction=0.1, val_every=10, progress=False)
    return out


def arrays_of(path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def refused(path, fragment):
    """``fastrnn sample`` of ``path`` fails with one line naming the file and ``fragment``."""
    result = run(["sample", "--checkpoint", str(path)])
    one_line_error(result, 1, fragment)
    assert str(path) in result.stderr


def test_a_member_whose_header_claims_more_than_the_file_holds_is_refused_unread(tmp_path, trained):
    arrays = arrays_of(trained / "last.npz")
    bad = tmp_path / "claims.npz"
    np.savez(bad, **arrays)
    with zipfile.ZipFile(bad) as z:
        members = {name: z.read(name) for name in z.namelist()}
    header = members["W.npy"]
    members["W.npy"] = header.replace(b"'shape': (6, 6)", b"'shape': (10000000000000,)".ljust(15))
    with zipfile.ZipFile(bad, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    refused(bad, "claims")


def test_hyperparameters_of_a_huge_model_are_refused_before_it_is_allocated(tmp_path, trained):
    arrays = arrays_of(trained / "last.npz")
    hyper = json.loads(str(arrays["hyper"]))
    for field, value, fragment in (("hidden", 10**6, "W has shape (6, 6), expected (1000000, 1000000)"),
                                   ("layers", 10**9, "hyper says 1000000000"),
                                   ("seq_length", "x", "seq_length must be a positive integer")):
        np.savez(tmp_path / "bad.npz", **dict(arrays, hyper=np.array(json.dumps({**hyper, field: value}))))
        refused(tmp_path / "bad.npz", fragment)


@pytest.mark.parametrize("member, value, fragment", [
    ("format_version", np.array("x"), "format version"),
    ("vocab", np.array([-1, 5, 9], dtype=np.int64), "vocabulary"),
    ("update", np.array(2**64 - 1, dtype=np.uint64), "below 2**62"),
    ("hyper", np.array("[" * 5000 + "]" * 5000), "hyperparameters"),
    ("next_char", np.zeros(10**6, dtype=np.int64), "next_char holds more than"),
])
def test_bad_members_are_one_line(tmp_path, trained, member, value, fragment):
    bad = tmp_path / "bad.npz"
    np.savez(bad, **dict(arrays_of(trained / "last.npz"), **{member: value}))
    refused(bad, fragment)


def test_members_nobody_asks_for_are_never_decompressed(tmp_path, trained):
    bad = tmp_path / "bomb.npz"
    np.savez_compressed(bad, **arrays_of(trained / "last.npz"), padding=np.zeros(50_000_000, np.uint8))
    assert os.path.getsize(bad) < 1_000_000
    code = ("import resource, fastrnn; fastrnn.load(%r); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)" % str(bad))
    peak_kb = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    baseline = ("import resource, fastrnn; fastrnn.load(%r); "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)" % str(trained / "last.npz"))
    base_kb = int(subprocess.run([sys.executable, "-c", baseline], capture_output=True, text=True, check=True).stdout)
    assert peak_kb < base_kb + 20_000  # the 50 MB member was not read


def test_json_models_that_claim_much_or_nest_deep_are_one_line(tmp_path, trained):
    model = tmp_path / "m.json"
    assert run(["export", str(trained), "-o", str(model)]).exit_code == 0
    document = json.loads(model.read_text())
    document["hyper"]["hidden"] = document["hidden"] = 4000
    (tmp_path / "big.json").write_text(json.dumps(document))
    refused(tmp_path / "big.json", "expected (4000, 4000)")
    (tmp_path / "deep.json").write_text('{"format": "fastrnn-model", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    refused(tmp_path / "deep.json", "nested too deeply")


def test_tweets_nested_too_deeply_are_one_line_and_leave_nothing(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    one_line_error(run(["train", str(path), "--out", str(tmp_path / "run"), "-q"]), 1, "nested too deeply")
    assert not (tmp_path / "run").exists()


def test_a_torn_last_log_line_is_skipped_with_a_warning_and_a_broken_summary_is_one_line(tmp_path, trained):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    with open(out / "metrics.csv", "a") as f:
        f.write("35,0,2.1")  # a crash mid-row
    result = run(["report", str(out), "--markdown"])
    assert result.exit_code == 0, result.output
    assert "skipped its torn last line" in result.stderr
    with open(out / "metrics.csv", "a") as f:
        f.write("\nnot,a,row,at all\n40,0,2,2\n")
    one_line_error(run(["report", str(out)]), 1, "metrics.csv: line")
    shutil.copy(trained / "metrics.csv", out / "metrics.csv")
    (out / "summary.json").write_text('{"updates": ')
    one_line_error(run(["report", str(out)]), 1, "summary.json: unreadable")
    (out / "run.json").write_text(json.dumps({**json.loads((trained / "run.json").read_text()), "total_updates": -3}))
    one_line_error(run(["train", "--resume", str(out)]), 1, "total_updates must be")


def test_markdown_reports_write_what_a_file_holds_as_text():
    assert markdown_text("a|b <img src=x onerror=alert(1)> [l](j) *e* book.txt") == \
        "a\\|b &lt;img src=x onerror=alert(1)&gt; \\[l\\](j) \\*e\\* book.txt"
    fenced = markdown_fence("x\n~~~~\n<b>")
    assert fenced.startswith("~~~~~\n") and fenced.endswith("\n~~~~~")


def test_one_writer_per_run_directory(tmp_path, book):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from fastrnn.rundir import RunLock\n"
                               f"with RunLock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run(["train", str(book), "--out", str(out), "--hidden", "6", "--steps", "5", "--force", "-q"])
        one_line_error(result, 1, f"being written by process {holder.pid}")
        one_line_error(run(["train", "--resume", str(out)]), 1, f"being written by process {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    # a writer killed outright leaves its lock and temporary files: neither blocks the next
    (out / ".tmp-abc123").write_text("half a checkpoint")
    result = run(["train", str(book), "--out", str(out), "--hidden", "6", "--steps", "5", "--force", "-q"])
    assert result.exit_code == 0, result.output
    assert not (out / ".tmp-abc123").exists()


def test_a_run_refused_by_its_checks_leaves_no_directory(tmp_path, book):
    out = tmp_path / "never"
    one_line_error(run(["train", str(book), "--out", str(out), "--seq-length", "100000", "-q"]), 1, "")
    assert not out.exists()
    with RunLock(str(out)):
        assert out.is_dir()
    assert not out.exists()


# -- fuzzing: mutated files are read, or refused with a FastrnnError; nothing else -------------

def mutations(data: bytes):
    """Byte flips, truncations and splices of ``data``."""
    return st.one_of(
        st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)).map(
            lambda f: data[:f[0]] + bytes([f[1]]) + data[f[0] + 1:]),
        st.integers(0, len(data)).map(lambda n: data[:n]),
        st.tuples(st.integers(0, len(data)), st.binary(max_size=64)).map(lambda s: data[:s[0]] + s[1] + data[s[0]:]),
    )


# 60 fixed examples a file in every run; FASTRNN_FUZZ_EXAMPLES=20000 for a long run by hand (random
# ones then, not derandomized)
EXAMPLES = int(os.environ.get("FASTRNN_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 60,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _fuzz_one(path, data, read):
    path.write_bytes(data)
    try:
        read(path)
    except FastrnnError as err:
        assert "\n" not in str(err)


@pytest.mark.parametrize("kind", ["checkpoint", "JSON model"])
def test_fuzzed_models_are_read_or_refused(tmp_path, trained, kind):
    path = trained / "last.npz"
    if kind == "JSON model":
        path = tmp_path / "m.json"
        assert run(["export", str(trained), "-o", str(path)]).exit_code == 0
    data = path.read_bytes()

    @FUZZ
    @given(mutations(data))
    def check(mutated):
        _fuzz_one(tmp_path / ("fuzz" + path.suffix), mutated, load_checkpoint)
    check()


@pytest.mark.parametrize("name", ["metrics.csv", "validation.csv", "summary.json", "samples.txt", "run.json"])
def test_fuzzed_run_files_are_read_or_refused(tmp_path, trained, name):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    data = (trained / name).read_bytes()

    def read(path):
        run_ = fastrnn.Run(out)
        run_.metrics, run_.validation, run_.samples, run_.summary
        from fastrnn.rundir import load_run_config
        load_run_config(str(out))

    @FUZZ
    @given(mutations(data))
    def check(mutated):
        _fuzz_one(out / name, mutated, read)
    check()
