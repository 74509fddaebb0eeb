"""An input embedding (``--embedding D``): sampling and scoring fold it as training does, fine-tuning
keeps it, an exported model samples as its checkpoint, the gradient check, and bad input. Its
updates against the reference are in kernels/test_stack.py, its exact resume in test_cells.py,
the page's sampler in test_webpage.py."""
import json

import numpy as np
import pytest

import fastrnn
from fastrnn.engine import Trainer
from fastrnn.finetune import start_from
from fastrnn.model import Hyper, init_state, load_checkpoint
from fastrnn.text import build_vocab

from conftest import make_text
from helpers import SMALL, npz_arrays, one_line_error, run

EMBEDDED = ["--cell", "lstm", "--embedding", "6", "--streams", "2"]


def test_sampling_and_scoring_read_the_fold_training_computes(text):
    vocab = build_vocab(text)
    state = init_state(vocab, Hyper(hidden=8, seq_length=9, cell="gru", embedding=5, dtype="float32", streams=3))
    trainer = Trainer(state, vocab.encode(text))
    trainer.run(1)  # folds the model it starts from into work.folded
    folded = state.layout.fold(state.params)
    assert folded.size == state.layout.folded_size == trainer.work.folded.size
    assert np.array_equal(folded, trainer.work.folded)
    E, W_ih = state.views()["embedding.weight"], state.views()["weight_ih_l0"]
    np.testing.assert_allclose(folded[:E.shape[0] * W_ih.shape[0]].reshape(E.shape[0], -1), E @ W_ih.T, rtol=1e-5)


def test_a_model_with_an_embedding_trains_samples_scores_and_exports(tmp_path, book):
    out = tmp_path / "run"
    result = run(["train", str(book), "--out", str(out), "--steps", "60", "--val-fraction", "0.1"] + EMBEDDED + SMALL)
    assert result.exit_code == 0, result.output
    arrays = npz_arrays(out / "best.npz")
    K = arrays["vocab"].size
    assert arrays["embedding.weight"].shape == (K, 6) and arrays["weight_ih_l0"].shape == (48, 6)
    assert json.loads(str(arrays["hyper"]))["embedding"] == 6
    model = fastrnn.load(out / "best.npz")
    assert model.params["embedding.weight"].shape == (K, 6)
    assert run(["export", str(out), "-o", str(tmp_path / "model.json")]).exit_code == 0
    document = json.loads((tmp_path / "model.json").read_text())
    assert document["format_version"] == 3 and np.array_equal(document["params"]["embedding.weight"],
                                                              arrays["embedding.weight"])
    exported = fastrnn.load(tmp_path / "model.json")
    assert exported.sample(200, seed=3) == model.sample(200, seed=3)
    held = tmp_path / "held.txt"
    held.write_text(book.read_text()[:400], encoding="utf-8")
    scores = [json.loads(run(["eval", str(path), str(held), "--json"]).stdout)["nats_per_char"]
              for path in (out / "best.npz", tmp_path / "model.json")]
    assert scores[0] == pytest.approx(scores[1], rel=1e-6) and 0 < scores[0] < 5


def test_fine_tuning_keeps_the_embedding_and_its_rows(tmp_path):
    base = fastrnn.train(text=make_text(seed=1), out=tmp_path / "base", steps=40, cell="lstm", hidden=8,
                         embedding=4, seq_length=10, progress=False, sample_every=0)
    book = tmp_path / "new.txt"
    book.write_text(make_text(seed=2) + "Zebras!\n", encoding="utf-8")
    tuned = fastrnn.train(book, out=tmp_path / "tuned", init=base.dir, steps=1, seq_length=10, progress=False)
    new = load_checkpoint(tmp_path / "tuned" / "last.npz")
    assert new.hyper.embedding == 4 and tuned.model.params["embedding.weight"].shape == (new.vocab.size, 4)
    old = load_checkpoint(tmp_path / "base" / "best.npz")
    start = start_from(old, new.vocab, new.hyper)  # where the tuned run started
    rows = np.searchsorted(new.vocab.codepoints, old.vocab.codepoints)
    assert len(rows) < new.vocab.size
    assert np.array_equal(start.views()["embedding.weight"][rows], old.views()["embedding.weight"])
    assert np.array_equal(start.views()["weight_ih_l0"], old.views()["weight_ih_l0"])
    with pytest.raises(fastrnn.FastrnnError, match="embedding comes from the init model"):
        fastrnn.train(book, out=tmp_path / "other", init=base.dir, embedding=8, steps=1, progress=False)


def test_bad_embeddings_are_one_line(tmp_path, book):
    one_line_error(run(["train", str(book), "--embedding", "-1", "--out", str(tmp_path / "a")]), 2, "--embedding")
    with pytest.raises(fastrnn.FastrnnError, match="embedding"):
        fastrnn.train(book, out=tmp_path / "b", cell="lstm", embedding=2.5, steps=1, progress=False)
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--steps", "20"] + EMBEDDED + SMALL).exit_code == 0
    one_line_error(run(["train", "--resume", str(out), "--embedding", "3"]), 2, "--embedding cannot change")


def test_the_gradient_check_covers_the_embedding():
    result = run(["gradcheck", "--cell", "gru", "--layers", "2", "--embedding", "3", "--chunks", "1"])
    assert result.exit_code == 0, result.output
    assert "embedding 3, 2-layer gru" in result.stdout and result.stdout.rstrip().endswith("passed")
    assert result.stdout.splitlines()[2].split()[0] == "embedding.weight"
