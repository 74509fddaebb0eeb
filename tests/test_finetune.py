"""Fine-tuning (``--init``): a new run from a trained model on a new text, its vocabulary the
union of both, starting ahead of a fresh model; and its bad input."""
import json

import numpy as np

import fastrnn
from fastrnn.model import load_checkpoint

from conftest import make_text
from helpers import one_line_error, run


def test_a_fine_tuned_model_keeps_what_it_knew_and_starts_ahead(tmp_path):
    base = fastrnn.train(text=make_text(seed=1), out=tmp_path / "base", steps=600, cell="lstm", hidden=12,
                         seq_length=10, progress=False, sample_every=0)
    new_text = make_text(seed=2).replace("q", "Q") + "Zebras!\n"  # new characters: Q, Z, b... some
    book = tmp_path / "new.txt"
    book.write_text(new_text, encoding="utf-8")
    settings = dict(steps=100, seq_length=10, val_fraction=0.2, val_every=50, progress=False, sample_every=0)
    tuned = fastrnn.train(book, out=tmp_path / "tuned", init=base.dir, **settings)
    fresh = fastrnn.train(book, out=tmp_path / "fresh", cell="lstm", hidden=12, **settings)
    old = base.best_model
    assert load_checkpoint(tmp_path / "tuned" / "last.npz").update == 100 and tuned.summary["init"].endswith("best.npz")
    assert json.loads((tmp_path / "tuned" / "run.json").read_text())["init"] == tuned.summary["init"]
    vocab = tuned.model.vocab
    assert set(vocab) == set(old.vocab) | set(new_text) and (tuned.model.cell, tuned.model.hyper["hidden"]) == (
        "lstm", 12)
    # validation at update 0 is the initial model's: the fine-tuned one predicts the new text better
    tuned_val, fresh_val = tuned.validation["nats_per_char"], fresh.validation["nats_per_char"]
    assert tuned_val[0] < fresh_val[0] - 0.5 and tuned_val[-1] < fresh_val[-1]


def test_the_starting_point_holds_the_old_rows_and_fresh_new_ones(tmp_path):
    from fastrnn.finetune import start_from, vocab_union
    from fastrnn.model import Hyper, init_state
    from fastrnn.text import build_vocab

    for cell, layers in (("rnn", 1), ("gru", 2)):
        old = init_state(build_vocab("abcdef"), Hyper(hidden=6, cell=cell, layers=layers, seed=1))
        vocab = vocab_union(old.vocab, build_vocab("aceXYZ"))
        hyper = Hyper(hidden=6, cell=cell, layers=layers, seed=5)
        new, fresh = start_from(old, vocab, hyper), init_state(vocab, hyper)
        where = [vocab.chars.index(ch) for ch in old.vocab.chars]
        others = [i for i in range(vocab.size) if i not in where]
        for name, array in new.views().items():
            before = old.views()[name]
            axis = [a for a in range(array.ndim) if array.shape[a] == vocab.size and before.shape[a] == old.vocab.size]
            if not axis:
                assert np.array_equal(array, before), name
                continue
            assert np.array_equal(np.take(array, where, axis[0]), before), name
            assert np.array_equal(np.take(array, others, axis[0]), np.take(fresh.views()[name], others, axis[0]))
        assert not new.opt_state.any() and not new.h.any() and new.update == 0


def test_bad_init_is_one_line(tmp_path, book):
    out = tmp_path / "run"
    one_line_error(run(["train", str(book), "--init", str(tmp_path / "nothere"), "--out", str(out)]), 1,
                   "no such checkpoint file")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a checkpoint")
    one_line_error(run(["train", str(book), "--init", str(garbage), "--out", str(out)]), 1, "not a fastrnn checkpoint")
    assert not out.exists()
    base = tmp_path / "base"
    assert run(["train", str(book), "--out", str(base), "--steps", "10", "--hidden", "8", "-q"]).exit_code == 0
    one_line_error(run(["train", str(book), "--init", str(base), "--hidden", "9", "--out", str(out)]), 2,
                   "--hidden comes from the --init model")
    one_line_error(run(["train", "--resume", str(base), "--init", str(base)]), 2, "do not go with --resume")
