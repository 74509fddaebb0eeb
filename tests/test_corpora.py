"""Corpus downloads against a real HTTP server on 127.0.0.1 serving files the tests make."""
import hashlib
import http.server
import os
import threading
from functools import partial

import pytest

from fastrnn import corpora
from fastrnn.corpora import Corpus, CorpusError, strip_gutenberg
from fastrnn.model import load_checkpoint

from conftest import make_text
from helpers import one_line_error, run

BOOK = make_text(n_words=300, seed=2)
GUTENBERG = ("The Project Gutenberg eBook of A Test\n\nThis ebook is for the use of anyone...\n\n"
             "*** START OF THE PROJECT GUTENBERG EBOOK A TEST ***\n\n" + BOOK +
             "\n*** END OF THE PROJECT GUTENBERG EBOOK A TEST ***\n\nSection 1. General Terms of Use\n")


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base_url, served_dir, hits)."""
    www = tmp_path / "www"
    www.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www, hits
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTRNN_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def register(monkeypatch, corpus):
    monkeypatch.setitem(corpora.REGISTRY, corpus.name, corpus)


def leftovers(data):
    folder = data / "corpora"
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_gutenberg_book_is_downloaded_once_and_stripped(server, data, monkeypatch):
    base, www, hits = server
    (www / "pg1.txt").write_text(GUTENBERG, encoding="utf-8")
    register(monkeypatch, Corpus("testbook", "A Test", f"{base}/pg1.txt", gutenberg=True))
    result = run(["corpus", "get", "testbook"])
    assert result.exit_code == 0, result.output
    path = result.stdout.strip()
    assert open(path, encoding="utf-8").read() == BOOK.strip() + "\n"
    assert run(["corpus", "get", "testbook"]).stdout.strip() == path
    assert hits == ["/pg1.txt"]
    listing = run(["corpus", "list"]).stdout
    assert "testbook" in listing and "downloaded" in listing


def test_pinned_hash_and_size_are_verified(server, data, monkeypatch):
    base, www, _ = server
    (www / "ok.txt").write_text(BOOK, encoding="utf-8")
    raw = (www / "ok.txt").read_bytes()
    register(monkeypatch, Corpus("good", "ok", f"{base}/ok.txt", len(raw), hashlib.sha256(raw).hexdigest()))
    assert run(["corpus", "get", "good"]).exit_code == 0
    register(monkeypatch, Corpus("badhash", "x", f"{base}/ok.txt", len(raw), "0" * 64))
    one_line_error(run(["corpus", "get", "badhash"]), 1, "sha256 mismatch")
    register(monkeypatch, Corpus("badsize", "x", f"{base}/ok.txt", len(raw) + 1))
    one_line_error(run(["corpus", "get", "badsize"]), 1, "corrupt")
    assert leftovers(data) == ["good.txt"]


@pytest.mark.parametrize("served, fragment", [
    (None, "cannot download"),
    (b"\xff\xfe binary \x00", "not UTF-8"),
    (b"a plain text without the markers", "no '*** START OF'"),
])
def test_failed_or_corrupt_downloads_leave_nothing(server, data, monkeypatch, served, fragment):
    base, www, _ = server
    if served is not None:
        (www / "f.txt").write_bytes(served)
    register(monkeypatch, Corpus("broken", "x", f"{base}/f.txt", gutenberg=True))
    result = run(["corpus", "get", "broken"])
    one_line_error(result, 1, fragment)
    if served is None:
        assert "curl -L -o broken.txt" in result.stderr
    assert leftovers(data) == []


def test_no_server_at_all(data, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    register(monkeypatch, Corpus("offline", "x", f"http://127.0.0.1:{port}/x.txt"))
    with pytest.raises(CorpusError, match="download it by hand"):
        corpora.get("offline")


def test_train_accepts_a_corpus_name(server, data, monkeypatch, tmp_path):
    base, www, _ = server
    (www / "pg2.txt").write_text(GUTENBERG, encoding="utf-8")
    register(monkeypatch, Corpus("trainme", "A Test", f"{base}/pg2.txt", gutenberg=True))
    out = tmp_path / "run"
    result = run(["train", "trainme", "--out", str(out), "--hidden", "8", "--steps", "10", "-q"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out / "last.npz").vocab.chars == "".join(sorted(set(BOOK.strip() + "\n")))


def test_strip_gutenberg_requires_markers():
    assert strip_gutenberg(GUTENBERG) == BOOK.strip() + "\n"
    with pytest.raises(CorpusError):
        strip_gutenberg("no markers here")


def test_a_download_larger_than_the_cap_is_refused_and_nothing_saved(server, data, monkeypatch):
    base, www, _ = server
    (www / "big.txt").write_text("x" * 5000)
    monkeypatch.setattr(corpora, "MAX_DOWNLOAD_BYTES", 4096)
    register(monkeypatch, Corpus("big", "Too big", f"{base}/big.txt"))
    with pytest.raises(CorpusError, match="larger than 4,096 bytes"):
        corpora.get("big")
    assert leftovers(data) == []


def test_a_redirect_from_https_to_plain_http_is_refused():
    import urllib.error
    import urllib.request

    handler = next(h for h in corpora.opener().handlers if isinstance(h, urllib.request.HTTPRedirectHandler))
    request = urllib.request.Request("https://www.gutenberg.org/cache/epub/11/pg11.txt")
    with pytest.raises(urllib.error.URLError, match="refused a redirect"):
        handler.redirect_request(request, None, 302, "Found", {}, "http://example.org/pg11.txt")
    assert handler.redirect_request(request, None, 302, "Found", {}, "https://example.org/pg11.txt") is not None
