from fastrnn.demo import demo_corpus_path, demo_text
from fastrnn.model import load_checkpoint

from helpers import run


def test_demo_text_is_long_deterministic_prose():
    text = demo_text()
    assert len(text) > 200_000
    assert text == demo_text()
    words = text.split()
    assert sum(w.isalpha() for w in words) / len(words) > 0.6
    assert "\x00" not in text


def test_train_without_a_book_uses_the_demo_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTRNN_DATA", str(tmp_path / "data"))
    out = tmp_path / "run"
    result = run(["train", "--out", str(out), "--hidden", "8", "--steps", "30", "-q"])
    assert result.exit_code == 0, result.output
    assert "demo corpus" in result.stderr
    path = demo_corpus_path()
    assert path.startswith(str(tmp_path / "data"))
    assert load_checkpoint(out / "last.npz").vocab.chars == "".join(sorted(set(open(path, encoding="utf-8").read())))
