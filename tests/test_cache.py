import numpy as np

from fastrnn import cache
from fastrnn.model import load_checkpoint
from fastrnn.rundir import corpus_sha256

from helpers import run


def test_encoded_book_is_cached_by_content(tmp_path, monkeypatch, book):
    monkeypatch.setenv("FASTRNN_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(cache, "MIN_CACHED_BYTES", 0)
    sha = corpus_sha256(str(book))
    first = cache.load_corpus_cached(str(book), "auto", "utf-8", 26, sha)
    entries = sorted(p.name for p in (tmp_path / "data" / "encoded").iterdir())
    assert entries == [f"{sha}-text-utf-8.indices.npy", f"{sha}-text-utf-8.vocab.npy"]
    book.write_text("changed " * 10)  # the cache must not be consulted by name: the key is the content
    second = cache.load_corpus_cached(str(book), "auto", "utf-8", 26, sha)
    assert np.array_equal(first[0].codepoints, second[0].codepoints)
    assert np.array_equal(first[1], second[1]) and second[1].flags.writeable


def test_broken_cache_entry_is_rebuilt(tmp_path, monkeypatch, book):
    monkeypatch.setenv("FASTRNN_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(cache, "MIN_CACHED_BYTES", 0)
    sha = corpus_sha256(str(book))
    expected = cache.load_corpus_cached(str(book), "auto", "utf-8", 26, sha)
    idx = tmp_path / "data" / "encoded" / f"{sha}-text-utf-8.indices.npy"
    idx.write_bytes(idx.read_bytes()[:100])
    again = cache.load_corpus_cached(str(book), "auto", "utf-8", 26, sha)
    assert np.array_equal(expected[1], again[1])
    assert idx.stat().st_size > 100


def test_training_twice_on_a_cached_book(tmp_path, monkeypatch, book):
    monkeypatch.setenv("FASTRNN_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(cache, "MIN_CACHED_BYTES", 0)
    for name in ("a", "b"):
        result = run(["train", str(book), "--out", str(tmp_path / name), "--hidden", "8", "--steps", "20", "-q"])
        assert result.exit_code == 0, result.output
    a, b = (load_checkpoint(tmp_path / name / "last.npz") for name in ("a", "b"))
    assert np.array_equal(a.params, b.params)
