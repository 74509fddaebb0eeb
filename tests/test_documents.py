"""Lists as documents (--format lines): reading a list, packing it in an order shuffled every
epoch, held-out lines and a held-out file, exact resume (also after kill -9) and threads,
eval over lines, sampling documents with their copies and new ones, and bad input."""
import json
import os
import shutil
import signal
import subprocess

import numpy as np
import pytest

import fastrnn
from fastrnn.documents import Documents, document_lines, document_starts
from fastrnn.engine import Trainer
from fastrnn.formats import END_OF_TEXT, load_corpus
from fastrnn.model import load_checkpoint
from fastrnn.reference import forward
from fastrnn.text import build_vocab

from helpers import assert_same_run, one_line_error, run

SYLLABLES = ["ka", "ri", "lo", "ma", "ne", "sa", "to", "vi", "el", "an", "ja", "mi", "ro", "da", "li"]


def names(count: int, seed: int = 0) -> list[str]:
    """Name-like words of 1 to 4 syllables, sorted (as lists often are)."""
    rng = np.random.default_rng(seed)
    return sorted("".join(rng.choice(SYLLABLES, size=rng.integers(1, 5))) for _ in range(count))


@pytest.fixture
def names_file(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(names(600)) + "\n", encoding="utf-8")
    return path


SMALL = ["--format", "lines", "--hidden", "12", "--seq-length", "16", "--log-every", "10", "--sample-every", "40",
         "--checkpoint-every", "30", "-q"]


def test_a_list_is_its_non_empty_lines_without_blanks_or_line_breaks(tmp_path):
    path = tmp_path / "list.txt"
    path.write_bytes("\ufeff  emma \r\nolivia\r\n\r\n\tava\n   \nmia".encode("utf-8"))
    vocab, encoded = load_corpus(str(path), "lines")
    assert vocab.decode(encoded) == "emma\x03olivia\x03ava\x03mia\x03"
    assert document_lines("a\n\n b \n") == ["a", "b"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\r\n", encoding="utf-8")
    one_line_error(run(["train", str(empty), "--format", "lines"]), 1, "no line with anything on it")


def test_each_epoch_packs_every_document_once_in_its_own_order():
    text = "".join(n + END_OF_TEXT for n in names(50))
    chars = build_vocab(text)
    marker = int(chars.encode(END_OF_TEXT)[0])
    encoded = chars.encode(text)
    docs = Documents(encoded, marker)
    assert len(docs) == 50 and docs.chars == encoded.shape[0]
    first, again, second = docs.packed_for_epoch(7, 0), docs.packed_for_epoch(7, 0), docs.packed_for_epoch(7, 1)
    assert np.array_equal(first, again) and not np.array_equal(first, second)
    for packed in (first, second):
        assert packed[0] == marker and packed.shape[0] == encoded.shape[0] + 1
        split = Documents(packed[1:], marker)
        assert sorted(split.texts(chars)) == sorted(docs.texts(chars))
    assert document_starts(first, marker, np.array([0, 5, 40])).tolist() == [
        int(np.flatnonzero(first[:p + 1] == marker)[-1]) for p in (0, 5, 40)]


def test_streams_restart_at_document_starts_and_the_order_changes_every_epoch(tmp_path, names_file):
    run_dir = tmp_path / "run"
    result = run(["train", str(names_file), "--out", str(run_dir), "--steps", "1", "--streams", "3"] + SMALL)
    assert result.exit_code == 0, result.output
    state = load_checkpoint(run_dir / "last.npz")
    vocab, encoded = load_corpus(str(names_file), "lines")
    docs = Documents(encoded, state.restart)
    trainer = Trainer(load_checkpoint(run_dir / "best.npz"), docs.packed_for_epoch(0, 0), documents=docs)
    trainer.run(1)
    starts = trainer.run_state.positions - state.hyper.seq_length
    assert np.all(trainer.book[starts] == state.restart)  # each stream began at a document's marker
    epoch0 = trainer.book.copy()
    trainer.run(trainer.per_epoch // 3 + 1)
    assert trainer.epoch_of(trainer.update) == 1 and not np.array_equal(trainer.book, epoch0)


@pytest.mark.parametrize("streams", ["1", "3"])
def test_a_resumed_lines_run_equals_an_uninterrupted_one(tmp_path, names_file, streams):
    # 130 updates pass several epochs; the split run stops inside one and at an epoch's end
    full, split = tmp_path / "full", tmp_path / "split"
    args = SMALL + ["--streams", streams, "--val-fraction", "0.1", "--val-every", "25"]
    assert run(["train", str(names_file), "--out", str(full), "--steps", "130"] + args).exit_code == 0
    assert run(["train", str(names_file), "--out", str(split), "--steps", "61"] + args).exit_code == 0
    result = run(["train", "--resume", str(split), "--steps", "130", "-q"])
    assert result.exit_code == 0, result.output
    assert_same_run(full, split)
    assert (full / "validation.csv").read_text() == (split / "validation.csv").read_text()


def test_threads_change_nothing_in_lines_mode(tmp_path, names_file):
    one, two = tmp_path / "one", tmp_path / "two"
    args = SMALL + ["--streams", "20", "--steps", "40"]
    assert run(["train", str(names_file), "--out", str(one), "--threads", "1"] + args).exit_code == 0
    assert run(["train", str(names_file), "--out", str(two), "--threads", "2"] + args).exit_code == 0
    assert_same_run(one, two)


@pytest.mark.skipif(shutil.which("fastrnn") is None, reason="the fastrnn command is not installed")
def test_a_killed_lines_run_resumes_to_the_same_result(tmp_path):
    book = tmp_path / "many.txt"
    book.write_text("\n".join(names(20_000, seed=1)), encoding="utf-8")
    args = ["--format", "lines", "--hidden", "16", "--streams", "2", "--checkpoint-every", "300",
            "--sample-every", "1000", "--log-every", "50", "-q"]
    out, total = tmp_path / "run", "100000"
    proc = subprocess.Popen(["fastrnn", "train", str(book), "--out", str(out), "--steps", total] + args,
                            stderr=subprocess.PIPE, text=True)
    for _ in range(1200):  # its first checkpoint after the start
        if (out / "last.npz").exists() and load_checkpoint(out / "last.npz").update > 0:
            break
        proc.wait(timeout=0.1) if proc.poll() is not None else __import__("time").sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    stopped = load_checkpoint(out / "last.npz").update
    assert 0 < stopped < int(total)
    resumed = subprocess.run(["fastrnn", "train", "--resume", str(out), "--steps", str(stopped + 700), "-q"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    reference = tmp_path / "uninterrupted"
    full = subprocess.run(["fastrnn", "train", str(book), "--out", str(reference), "--steps", str(stopped + 700)]
                          + args, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    for name in ("last.npz", "best.npz"):
        a, b = load_checkpoint(out / name), load_checkpoint(reference / name)
        assert np.array_equal(a.params, b.params) and a.update == b.update


def test_validation_holds_out_random_whole_lines_or_a_file(tmp_path, names_file):
    out = tmp_path / "run"
    result = run(["train", str(names_file), "--out", str(out), "--steps", "20", "--val-fraction", "0.1"]
                 + SMALL[:-1])
    assert result.exit_code == 0, result.output
    assert "(600 documents, 60 held out for validation)" in result.stderr
    # a held-out file: scored as eval scores it, each line from the start state
    held = tmp_path / "held.txt"
    held.write_text("karima\nlorena\nzed\n", encoding="utf-8")  # z, e, d: characters the list lacks
    out2 = tmp_path / "run2"
    result = run(["train", str(names_file), "--out", str(out2), "--steps", "20", "--val-file", str(held),
                  "--val-every", "10"] + SMALL[:-1])
    assert result.exit_code == 0, result.output
    assert "characters outside the model's vocabulary left out" in result.stderr
    assert json.loads((out2 / "run.json").read_text())["val_file"] == str(held)
    rows = (out2 / "validation.csv").read_text().splitlines()[1:]
    assert len(rows) == 3 and all(np.isfinite(float(row.split(",")[1])) for row in rows)


def test_eval_of_a_list_is_the_mean_over_its_lines_each_from_the_start(tmp_path, names_file):
    out = tmp_path / "run"
    assert run(["train", str(names_file), "--out", str(out), "--steps", "30"] + SMALL).exit_code == 0
    listed = tmp_path / "few.txt"
    listed.write_text("kari\n\n  malo  \nne\n", encoding="utf-8")
    result = run(["eval", str(out / "last.npz"), str(listed), "--format", "lines", "--json"])
    assert result.exit_code == 0, result.output
    score = json.loads(result.stdout)
    state = load_checkpoint(out / "last.npz")
    params = {k: v.astype(np.float64) for k, v in state.views().items()}
    total, count = 0.0, 0
    for line in ("kari", "malo", "ne"):  # each from h = 0, its end marker counted
        x = state.vocab.encode(END_OF_TEXT + line)
        y = state.vocab.encode(line + END_OF_TEXT)
        total += forward(params, x, y, np.zeros(state.hyper.hidden))[0]
        count += len(y)
    assert score["predicted"] == count == 4 + 4 + 2 + 3
    assert score["nats_per_char"] == pytest.approx(total / count, rel=1e-10)
    # a documents model scores a list by default
    assert json.loads(run(["eval", str(out / "last.npz"), str(listed), "--json"]).stdout) == score


def test_samples_are_documents_with_their_copies_and_new_ones_counted(tmp_path, names_file):
    out = tmp_path / "run"
    assert run(["train", str(names_file), "--out", str(out), "--steps", "200", "--val-fraction", "0.2"]
               + SMALL).exit_code == 0
    result = run(["sample", "--checkpoint", str(out), "--num", "20", "--seed", "3"])
    assert result.exit_code == 0, result.output
    documents = result.stdout.split("\n")[:-1]
    assert len(documents) == 20 and all(END_OF_TEXT not in d for d in documents)
    counted = result.stderr.strip().splitlines()[-1]
    model = fastrnn.load(out)
    drawn = model.sample_documents(20, seed=3)
    assert drawn.documents == documents and drawn.drawn == 20
    c = drawn.counts
    assert counted == (f"20 documents drawn: {c['new']} new, {c['training']} copies of a training line, "
                       f"{c['held_out']} copies of a held-out line")
    train_lines = set(names(600))
    assert c["new"] == sum(d not in train_lines for d in documents)
    new = run(["sample", "--checkpoint", str(out), "--num", "5", "--seed", "4", "--new-only", "--json"])
    assert new.exit_code == 0, new.output
    assert not set(json.loads(new.stdout)) & train_lines
    # the model alone, without its run: the documents, and why no counts
    alone = tmp_path / "alone.npz"
    shutil.copy(out / "best.npz", alone)
    result = run(["sample", "--checkpoint", str(alone), "--num", "3", "--seed", "1"])
    assert result.exit_code == 0 and len(result.stdout.split("\n")[:-1]) == 3
    assert "no counts of copies and new ones: the model has no run directory" in result.stderr
    one_line_error(run(["sample", "--checkpoint", str(alone), "--num", "3", "--new-only"]), 1,
                   "needs the run's documents")


def test_bad_input_of_lines_runs(tmp_path, names_file, book):
    out = tmp_path / "run"
    assert run(["train", str(names_file), "--out", str(out), "--steps", "10"] + SMALL).exit_code == 0
    before = (out / "last.npz").read_bytes()
    one_line_error(run(["train", "--resume", str(out), "--format", "text", "--steps", "20"]), 2,
                   "cannot resume on --format text")
    assert (out / "last.npz").read_bytes() == before
    book_run = tmp_path / "book"
    assert run(["train", str(book), "--out", str(book_run), "--steps", "10", "--hidden", "8", "-q"]).exit_code == 0
    one_line_error(run(["train", "--resume", str(book_run), str(names_file), "--format", "lines"]), 2,
                   "cannot resume on --format lines")
    tweets = tmp_path / "t.json"
    tweets.write_text(json.dumps([{"text": "hi"}]), encoding="utf-8")
    one_line_error(run(["train", str(names_file), "--out", str(tmp_path / "x"), "--val-file", str(tweets)]
                       + SMALL), 2, "its held-out file must be a text file", alone=False)
    one_line_error(run(["train", str(names_file), "--out", str(tmp_path / "y"), "--val-fraction", "0.0001"]
                       + SMALL), 1, "leaves none to validate on", alone=False)
    one_line_error(run(["train", str(names_file), "--out", str(tmp_path / "z"), "--val-fraction", "0.1",
                        "--val-file", str(names_file)] + SMALL), 2, "not both")
    assert not any((tmp_path / d).exists() and os.listdir(tmp_path / d) for d in ("x", "y", "z"))
    # a book model fine-tuned on a list: its weights, the list's end marker added
    tuned = tmp_path / "tuned"
    result = run(["train", str(names_file), "--init", str(book_run), "--out", str(tuned), "--steps", "10",
                  "--format", "lines", "--seq-length", "16"])
    assert result.exit_code == 0, result.output
    assert "from now on it reads documents, each from the start state" in result.stderr
    assert load_checkpoint(tuned / "last.npz").hyper.documents
    one_line_error(run(["train", str(book), "--init", str(tuned), "--out", str(tmp_path / "w"), "--steps", "5"]), 2,
                   "fine-tune it on documents")


def test_the_report_of_a_lines_run_counts_the_new_documents_its_best_model_writes(tmp_path, names_file):
    out = tmp_path / "run"
    assert run(["train", str(names_file), "--out", str(out), "--steps", "60", "--val-fraction", "0.2"]
               + SMALL).exit_code == 0
    result = run(["report", str(out), "--markdown"])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text(encoding="utf-8")
    passage = (out / "samples.txt").read_text(encoding="utf-8").split("in 20 documents, each from the start "
                                                                      "state ===\n")[1].split("\n")[:20]
    train_lines = set(names(600))
    new = sum(d not in train_lines for d in passage)
    assert f"Of these 20 documents, {new} are new, " in report


def test_a_book_run_validates_on_a_val_file(tmp_path, book, text):
    held = tmp_path / "held.txt"
    held.write_text(text[:3000][::-1] + "§", encoding="utf-8")  # § is not in the book
    out = tmp_path / "run"
    result = run(["train", str(book), "--out", str(out), "--steps", "30", "--hidden", "8", "--val-file", str(held),
                  "--val-every", "10"])
    assert result.exit_code == 0, result.output
    assert "1 characters outside the model's vocabulary left out ('§')" in result.stderr
    rows = (out / "validation.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "10", "20", "30"]
    model = fastrnn.load(out / "best.npz")
    # validation scores the file as eval does, from the model's carried state
    score = model.evaluate(held.read_text(encoding="utf-8"))
    best = min(float(row.split(",")[1]) for row in rows)
    assert score.nats_per_char == pytest.approx(best, rel=1e-6)
