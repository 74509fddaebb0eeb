"""A registry of public-domain texts and their download cache.

``fastrnn corpus get NAME`` downloads a text once into the data directory ($FASTRNN_DATA),
checks it (size and sha256 where the registry pins them; Project Gutenberg files, which the
site regenerates from time to time, are checked for their start and end markers instead),
strips the Project Gutenberg licence header and footer, and stores it. A failed or corrupt
download leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from .errors import FastrnnError
from .files import write_text_atomic
from .paths import corpus_path


class CorpusError(FastrnnError, RuntimeError):
    """A corpus that cannot be had; the message is meant for the user."""


@dataclass(frozen=True)
class Corpus:
    name: str
    title: str
    url: str
    size: int | None = None  # bytes of the download, where fixed
    sha256: str | None = None  # of the download, where fixed
    gutenberg: bool = False  # strip the Project Gutenberg header and footer


def _gutenberg(name: str, number: int, title: str) -> Corpus:
    return Corpus(name, title, f"https://www.gutenberg.org/cache/epub/{number}/pg{number}.txt", gutenberg=True)


REGISTRY = {c.name: c for c in (
    Corpus("shakespeare", "tiny shakespeare: 40,000 lines of the plays (the char-rnn benchmark text)",
           "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
           size=1_115_394, sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
    _gutenberg("alice", 11, "Lewis Carroll, Alice's Adventures in Wonderland"),
    _gutenberg("pride", 1342, "Jane Austen, Pride and Prejudice"),
    _gutenberg("frankenstein", 84, "Mary Shelley, Frankenstein"),
    _gutenberg("holmes", 1661, "Arthur Conan Doyle, The Adventures of Sherlock Holmes"),
    _gutenberg("mobydick", 2701, "Herman Melville, Moby Dick"),
    _gutenberg("twocities", 98, "Charles Dickens, A Tale of Two Cities"),
)}


def strip_gutenberg(text: str) -> str:
    """The book between the '*** START OF ...' and '*** END OF ...' marker lines."""
    start = text.find("*** START OF")
    end = text.find("*** END OF", start + 1)
    if start < 0 or end < 0:
        raise CorpusError("not a Project Gutenberg text: no '*** START OF' / '*** END OF' markers")
    body = text.find("\n", start) + 1
    if body == 0 or body > end:
        raise CorpusError("not a Project Gutenberg text: nothing between its '*** START OF' and '*** END OF' lines")
    return text[body:end].strip() + "\n"


MAX_DOWNLOAD_BYTES = 64 << 20  # a corpus of unknown size: more than any book of the registry


def opener():
    """urllib's opener, following redirects but never from https to plain http. urllib is
    imported here, not with the module: with http.client and email it is about a tenth of a
    second of every command's start, and only a download needs it."""
    import urllib.error
    import urllib.request

    class NoDowngrade(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            if req.full_url.startswith("https:") and not newurl.startswith("https:"):
                raise urllib.error.URLError(f"refused a redirect from https to {newurl}")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return urllib.request.build_opener(NoDowngrade)


def fetch(corpus: Corpus, timeout: float = 30.0) -> str:
    """Download ``corpus`` unless it is cached; returns the path of the stored text."""
    path = corpus_path(corpus.name)
    if os.path.isfile(path):
        return path
    hint = (f"download it by hand with: curl -L -o {corpus.name}.txt {corpus.url} "
            f"and train on that file")
    import http.client  # with urllib: only a download needs them (``opener``)
    import urllib.error

    limit = corpus.size if corpus.size is not None else MAX_DOWNLOAD_BYTES
    try:
        with opener().open(corpus.url, timeout=timeout) as response:
            raw = response.read(limit + 1)
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and len(raw) < int(length) <= limit:  # read(amount) does not raise it
                raise http.client.IncompleteRead(raw, int(length) - len(raw))
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise CorpusError(f"cannot download {corpus.name} from {corpus.url} ({reason}); {hint}") from None
    if len(raw) > limit:
        raise CorpusError(f"the download of {corpus.name} is larger than {limit:,} bytes; nothing was saved")
    if corpus.size is not None and len(raw) != corpus.size:
        raise CorpusError(f"the download of {corpus.name} is corrupt ({len(raw):,} bytes, expected "
                          f"{corpus.size:,}); nothing was saved")
    if corpus.sha256 is not None and hashlib.sha256(raw).hexdigest() != corpus.sha256:
        raise CorpusError(f"the download of {corpus.name} is corrupt (sha256 mismatch); nothing was saved")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CorpusError(f"the download of {corpus.name} is not UTF-8 text; nothing was saved") from None
    if corpus.gutenberg:
        try:
            text = strip_gutenberg(text)
        except CorpusError as err:
            raise CorpusError(f"the download of {corpus.name} is corrupt ({err}); nothing was saved") from None
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_text_atomic(path, text, encoding="utf-8")
    return path


def get(name: str) -> str:
    if name not in REGISTRY:
        raise CorpusError(f"no corpus named {name!r}; `fastrnn corpus list` shows them")
    return fetch(REGISTRY[name])
