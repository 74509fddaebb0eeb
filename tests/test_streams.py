"""Several streams per update from the command line: resume, epochs, several texts, options."""
import json

import numba
import numpy as np

from fastrnn.model import load_checkpoint

from helpers import SMALL, assert_same_run, one_line_error, run


def test_streams_through_the_command_line_resume_exactly(tmp_path, book):
    opts = ["--streams", "4", "--threads", str(min(2, numba.config.NUMBA_NUM_THREADS))] + SMALL
    full, split = tmp_path / "full", tmp_path / "split"
    assert run(["train", str(book), "--out", str(full), "--steps", "120"] + opts).exit_code == 0
    assert run(["train", str(book), "--out", str(split), "--steps", "50"] + opts).exit_code == 0
    result = run(["train", "--resume", str(split), "--steps", "120", "-q"])
    assert result.exit_code == 0, result.output
    assert_same_run(full, split)
    last = load_checkpoint(full / "last.npz")
    assert last.hyper.streams == 4 and last.stream_h.shape == (4, 12)
    one_line_error(run(["train", "--resume", str(split), "--streams", "2"]), 2, "--streams cannot change")
    with np.load(full / "last.npz") as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "bad.npz", **dict(arrays, stream_h=arrays["stream_h"][:2]))
    one_line_error(run(["sample", "--checkpoint", str(tmp_path / "bad.npz")]), 1, "stream_h")


def test_epochs_count_chunks_of_all_streams(tmp_path, book, text):
    per_epoch = (len(text) - 1) // 25
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--streams", "4", "--epochs", "2", "--hidden", "8",
                "-q"]).exit_code == 0
    assert load_checkpoint(out / "last.npz").update == -(-2 * per_epoch // 4)


def test_sample_several_texts(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--hidden", "8", "--steps", "50", "-q"]).exit_code == 0
    args = ["sample", "--checkpoint", str(out), "--num", "3", "--len", "40", "--seed", "4"]
    plain, as_json = run(args), run(args + ["--json"])
    assert plain.exit_code == 0 and as_json.exit_code == 0
    texts = json.loads(as_json.stdout)
    assert len(texts) == 3 and len(set(texts)) == 3 and all(len(t) == 40 for t in texts)
    assert plain.stdout == "\n\n".join(texts) + "\n"
    single = run(["sample", "--checkpoint", str(out), "--len", "40", "--seed", "4"]).stdout[:-1]
    assert texts[0] == single


def test_stream_options_are_checked_before_any_work(tmp_path, book, text):
    out = tmp_path / "run"
    too_many = str(numba.config.NUMBA_NUM_THREADS + 1)
    one_line_error(run(["train", str(book), "--out", str(out), "--threads", too_many]), 2, "--threads")
    per_epoch = (len(text) - 1) // 25
    one_line_error(run(["train", str(book), "--out", str(out), "--streams", str(per_epoch + 1)]), 2, "--streams")
    assert not out.exists()
