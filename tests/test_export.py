"""Models as JSON: read back exactly, by fastrnn.load and by fastrnn sample."""
import json

import numpy as np
import pytest

import fastrnn

from helpers import one_line_error, run


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_json_round_trips_exactly(tmp_path, text, dtype):
    done = fastrnn.train(text=text, out=tmp_path / "run", steps=80, hidden=10, dtype=dtype, progress=False)
    result = run(["export", done.dir, "-o", str(tmp_path / "model.json")])
    assert result.exit_code == 0, result.output
    original, exported = done.best_model, fastrnn.load(tmp_path / "model.json")
    for name in ("W", "U", "V", "b", "c"):
        assert np.array_equal(getattr(original, name), getattr(exported, name))
        assert getattr(exported, name).dtype == np.dtype(dtype)
    assert exported.vocab == original.vocab and exported.hyper == original.hyper
    assert np.array_equal(exported._state.h, original._state.h)
    assert exported._state.next_char == original._state.next_char is not None
    from_json = run(["sample", "--checkpoint", str(tmp_path / "model.json"), "--len", "200", "--seed", "5"])
    assert from_json.stdout == run(["sample", "--checkpoint", done.dir, "--len", "200", "--seed", "5"]).stdout
    document = json.loads((tmp_path / "model.json").read_text(encoding="utf-8"))
    assert document["format"] == "fastrnn-model" and document["format_version"] == 1
    assert len(document["W"]) == 10 and isinstance(document["vocab"], str)


def test_bad_json_models_are_one_line(tmp_path, text):
    done = fastrnn.train(text=text, out=tmp_path / "run", steps=20, hidden=6, progress=False)
    done.best_model.export(tmp_path / "good.json")
    document = json.loads((tmp_path / "good.json").read_text())
    cases = {"torn.json": (tmp_path / "good.json").read_text()[:500], "foreign.json": '{"weights": [1, 2]}',
             "shape.json": json.dumps(dict(document, W=[[0.0]])),
             "vocab.json": json.dumps(dict(document, vocab=document["vocab"][::-1])),
             "next.json": json.dumps(dict(document, next_char=10_000))}
    for name, content in cases.items():
        (tmp_path / name).write_text(content)
        one_line_error(run(["sample", "--checkpoint", str(tmp_path / name)]), 1, "not a fastrnn JSON model")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a directory should be")
    one_line_error(run(["export", done.dir, "-o", str(blocked / "model.json")]), 1, "blocked")
    assert not (tmp_path / "model.json").exists()


def test_a_json_model_is_known_by_its_contents_not_its_name(tmp_path, text):
    done = fastrnn.train(text=text, out=tmp_path / "run", steps=20, hidden=6, progress=False)
    done.best_model.export(tmp_path / "model")  # no .json
    assert fastrnn.load(tmp_path / "model").sample(50, seed=1) == done.best_model.sample(50, seed=1)
