"""Odd inputs found in review: each is one line of error (or handled), never a traceback."""
import http.server
import json
import os
import threading

import numpy as np
import pytest

from fastrnn import cache, corpora
from fastrnn.corpora import Corpus
from fastrnn.rundir import corpus_sha256

from helpers import one_line_error, run

SMALL = ["--hidden", "8", "--steps", "5", "-q"]


@pytest.fixture
def trained(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out)] + SMALL).exit_code == 0
    return out


def test_npy_file_as_checkpoint(tmp_path):
    path = tmp_path / "ck.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    one_line_error(run(["sample", "--checkpoint", str(path)]), 1, "not an .npz archive")


@pytest.mark.parametrize("field, value, fragment", [
    ("hidden", -3, "hidden must be a positive integer"),
    ("hidden", "8", "hidden must be a positive integer"),
    ("seq_length", 0, "seq_length must be a positive integer"),
    ("eta", float("inf"), "eta must be a positive number"),
])
def test_hand_edited_hyperparameters(tmp_path, trained, field, value, fragment):
    with np.load(trained / "last.npz") as z:
        arrays = {k: z[k] for k in z.files}
    hyper = json.loads(str(arrays["hyper"]))
    hyper[field] = value
    arrays["hyper"] = np.array(json.dumps(hyper))
    np.savez(trained / "last.npz", **arrays)
    one_line_error(run(["sample", "--checkpoint", str(trained / "last.npz")]), 1, fragment)
    one_line_error(run(["train", "--resume", str(trained), "--steps", "10"]), 1, fragment)


def test_tweets_with_lone_surrogates_and_a_bom(tmp_path):
    path = tmp_path / "t.json"
    items = [{"text": "cut emoji \ud83d here"}] + [{"text": f"tweet number {i}"} for i in range(20)]
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(items).encode("ascii"))
    out = tmp_path / "run"
    result = run(["train", str(path), "--out", str(out)] + SMALL)
    assert result.exit_code == 0, result.output
    one_line_error(run(["train", str(path), "--out", str(tmp_path / "x"), "--encoding", "bogus"]), 1,
                   "unknown encoding")


def test_prime_with_invalid_characters(trained):
    one_line_error(run(["sample", "--checkpoint", str(trained), "--prime", "ab\udcff"]), 2, "--prime")


def test_unwritable_places(tmp_path, book, monkeypatch):
    monkeypatch.setenv("FASTRNN_DATA", "/dev/null/data")
    one_line_error(run(["train"] + SMALL), 1, "/dev/null/data")
    one_line_error(run(["train", str(book), "--out", "/dev/null/run"] + SMALL), 1, "/dev/null/run")


def test_dangling_link_in_a_directory_corpus(tmp_path):
    corpus = tmp_path / "books"
    corpus.mkdir()
    (corpus / "a.txt").write_text("some text " * 20)
    os.symlink(tmp_path / "nowhere.txt", corpus / "b.txt")
    one_line_error(run(["train", str(corpus), "--out", str(tmp_path / "run")] + SMALL), 1, "b.txt")


def test_truncated_download_and_odd_gutenberg_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTRNN_DATA", str(tmp_path / "data"))

    class Short(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            body = b"only a few bytes" if self.path == "/short" else b"*** START OF X ***"
            if self.path == "/nomarkers":
                body = b"*** START OF X *** *** END OF X ***"
                self.send_header("Content-Length", str(len(body)))
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Short)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        monkeypatch.setitem(corpora.REGISTRY, "short", Corpus("short", "x", f"{base}/short"))
        one_line_error(run(["corpus", "get", "short"]), 1, "cannot download short")
    finally:
        httpd.shutdown()
        httpd.server_close()
    with pytest.raises(corpora.CorpusError, match="nothing between"):
        corpora.strip_gutenberg("*** START OF X *** *** END OF X ***")
    assert not (tmp_path / "data" / "corpora").exists() or os.listdir(tmp_path / "data" / "corpora") == []


def test_cache_entry_with_out_of_range_index_is_a_miss(tmp_path, monkeypatch, book):
    monkeypatch.setenv("FASTRNN_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(cache, "MIN_CACHED_BYTES", 0)
    sha = corpus_sha256(str(book))
    vocab, idx = cache.load_corpus_cached(str(book), "auto", "utf-8", 26, sha)
    bad = idx.copy()
    bad[5] = vocab.size + 3
    np.save(tmp_path / "data" / "encoded" / f"{sha}-text-utf-8.indices.npy", bad)
    assert cache.load_encoded(f"{sha}-text-utf-8") is None
    again = cache.load_corpus_cached(str(book), "auto", "utf-8", 26, sha)
    assert np.array_equal(again[1], idx)


def test_directory_corpora_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTRNN_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(cache, "MIN_CACHED_BYTES", 0)
    corpus = tmp_path / "books"
    corpus.mkdir()
    (corpus / "a.txt").write_text("some text " * 20)
    cache.load_corpus_cached(str(corpus), "auto", "utf-8", 26, corpus_sha256(str(corpus)))
    assert len(os.listdir(tmp_path / "data" / "encoded")) == 2
