"""Reading a book and turning it into integers.

The vocabulary is the sorted set of distinct Unicode code points of the text. The book is
encoded once into a compact integer array (uint8 when K <= 256), never into one-hot rows.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import FastrnnError


class TextError(FastrnnError, ValueError):
    """A text that cannot be used for training; the message is meant for the user."""


@dataclass(frozen=True)
class Vocab:
    """Sorted distinct code points of a text. ``codepoints`` is uint32 of shape (K,)."""

    codepoints: np.ndarray

    @property
    def size(self) -> int:
        return int(self.codepoints.shape[0])

    @property
    def chars(self) -> str:
        return "".join(map(chr, self.codepoints.tolist()))

    def index_dtype(self) -> np.dtype:
        """Smallest unsigned integer type that holds every character index."""
        return np.dtype(np.uint8 if self.size <= 256 else np.uint16 if self.size <= 65536 else np.uint32)

    def missing(self, text: str) -> str:
        """Distinct characters of ``text`` that are not in the vocabulary, in sorted order."""
        points = codepoints(text)
        absent = np.setdiff1d(np.unique(points), self.codepoints)
        return "".join(map(chr, absent.tolist()))

    def lookup(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Code points -> (indices, known): indices are valid only where ``known`` is True."""
        idx = np.minimum(np.searchsorted(self.codepoints, points), self.size - 1)
        return idx.astype(self.index_dtype()), self.codepoints[idx] == points

    def encode(self, text: str) -> np.ndarray:
        """Text -> index array. Raises TextError naming characters outside the vocabulary."""
        idx, known = self.lookup(codepoints(text))
        if not np.all(known):
            raise TextError(f"characters not in the model's vocabulary: {_show(self.missing(text))}")
        return idx

    def lookup_table(self) -> np.ndarray:
        """(0x110000,) array: code point -> index (0 for code points outside the vocabulary)."""
        table = np.zeros(N_CODEPOINTS, dtype=self.index_dtype())
        table[self.codepoints] = np.arange(self.size)
        return table

    def decode(self, indices) -> str:
        return "".join(map(chr, self.codepoints[np.asarray(indices, dtype=np.int64)].tolist()))


def vocab_difference(old: Vocab, new: Vocab) -> str:
    """'' when equal, else a one-line description of which characters differ."""
    added = np.setdiff1d(new.codepoints, old.codepoints)
    removed = np.setdiff1d(old.codepoints, new.codepoints)
    parts = []
    if added.size:
        parts.append("not in the run's vocabulary: " + _show("".join(map(chr, added.tolist()))))
    if removed.size:
        parts.append("in the run's vocabulary but not in this text: " + _show("".join(map(chr, removed.tolist()))))
    return "; ".join(parts)


def codepoints(text: str) -> np.ndarray:
    # UTF-32 gives one fixed-width word per code point, so NumPy sees the text without a Python loop.
    try:
        return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    except UnicodeEncodeError as err:
        raise TextError(f"the text holds a character that is not valid Unicode "
                        f"({text[err.start]!r} at character {err.start})") from None


def _show(chars: str) -> str:
    return " ".join(repr(ch) for ch in chars)


N_CODEPOINTS = 0x110000
BLOCK_BYTES = 1 << 22  # files are decoded and encoded 4 MiB at a time (temporaries ~16x that)


def build_vocab(text: str) -> Vocab:
    return _vocab_from_counts(np.bincount(codepoints(text), minlength=N_CODEPOINTS))


def _vocab_from_counts(counts: np.ndarray) -> Vocab:
    return Vocab(np.flatnonzero(counts).astype(np.uint32))


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """Read a whole text file (for small and held-out texts; books go through ``load_book``).
    Every failure becomes a TextError with a one-line message."""
    path = os.fspath(path)
    check_file(path)
    blocks = list(decoded_blocks(path, encoding))
    points = np.concatenate(blocks) if blocks else np.zeros(0, np.uint32)
    if np.any(points == 0):
        raise TextError(f"{path}: looks like a binary file (it contains NUL characters), not text")
    return points.astype("<u4").tobytes().decode("utf-32-le")


def decoded_blocks(path: str, encoding: str):
    """Yield the text of ``path`` as code-point arrays, one block at a time, without ever holding
    the whole text; a byte-order mark at the start is dropped. Failures are TextErrors."""
    import codecs

    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise TextError(f"unknown encoding {encoding!r}") from None
    # utf-8-sig's decoder drops the byte-order mark itself and then counts error positions
    # without it; plain utf-8 keeps it, and it is dropped below
    decoder = codecs.getincrementaldecoder("utf-8" if name == "utf-8-sig" else encoding)(errors="strict")
    offset = 0
    first = True
    try:
        with open(path, "rb") as f:
            while True:
                raw = f.read(BLOCK_BYTES)
                # the decoder holds back the bytes of a character cut by the block's end; an error's
                # position counts from the first of them
                held = len(decoder.getstate()[0])
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as err:
                    byte = offset - held + err.start
                    raise TextError(f"{path}: not valid {encoding} (byte {byte}: {err.reason}); "
                                    f"pass --encoding if the file uses another encoding") from None
                offset += len(raw)
                if first and text:
                    first = False
                    if text.startswith("\ufeff"):
                        text = text[1:]  # a byte-order mark is not part of the book
                if text:
                    yield codepoints(text)
                if not raw:
                    return
    except OSError as err:
        raise TextError(f"{path}: cannot read: {err.strerror}") from None


def check_file(path: str) -> None:
    if not os.path.exists(path):
        raise TextError(f"{path}: no such file")
    if os.path.isdir(path):
        raise TextError(f"{path}: is a directory, not a text file")
    if os.path.getsize(path) == 0:
        raise TextError(f"{path}: the file is empty")


def load_book(path: str | os.PathLike, encoding: str = "utf-8", min_chars: int = 2):
    """Read and encode a book: returns (vocab, indices). The book must hold ``min_chars``."""
    path = os.fspath(path)
    check_file(path)
    return encode_blocks(lambda: decoded_blocks(path, encoding), path, min_chars)


def encode_blocks(blocks, name: str, min_chars: int = 2):
    """Encode the text that ``blocks()`` yields as code-point arrays: returns (vocab, indices).

    Two streaming passes: the first counts code points (the vocabulary), the second maps each
    block through a lookup table into the compact index array. Peak memory is the index array
    (1 byte per character when K <= 256) plus a few blocks, never the whole text.
    """
    counts = np.zeros(N_CODEPOINTS, dtype=np.int64)
    for points in blocks():
        counts += np.bincount(points, minlength=N_CODEPOINTS)
    n_chars = int(counts.sum())
    if counts[0]:
        raise TextError(f"{name}: looks like a binary file (it contains NUL characters), not text")
    if n_chars == 0:
        raise TextError(f"{name}: the text is empty")
    if n_chars < min_chars:
        raise TextError(f"{name}: the text has {n_chars} characters; "
                        f"training needs at least seq_length + 1 = {min_chars}")
    vocab = _vocab_from_counts(counts)
    table = vocab.lookup_table()
    indices = np.empty(n_chars, dtype=vocab.index_dtype())
    pos = 0
    for points in blocks():
        if pos + points.size > n_chars:
            break
        indices[pos:pos + points.size] = table[points]
        pos += points.size
    if pos != n_chars:
        raise TextError(f"{name}: the text changed while it was being read")
    return vocab, indices
