import numpy as np
import pytest

WORDS = ("the rain in spain falls mainly on the plain while a quick brown fox jumps over "
         "lazy dogs and every cat sleeps").split()


def make_text(n_words: int = 400, seed: int = 0) -> str:
    """English-like text with some structure for the model to learn."""
    rng = np.random.default_rng(seed)
    words = rng.choice(WORDS, size=n_words)
    lines = [" ".join(words[i:i + 9]).capitalize() + "." for i in range(0, n_words, 9)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def text() -> str:
    return make_text()


@pytest.fixture
def book(tmp_path, text):
    path = tmp_path / "book.txt"
    path.write_text(text, encoding="utf-8")
    return path
