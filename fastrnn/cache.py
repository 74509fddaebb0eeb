"""Encoded books kept next to the download cache, keyed by content, so that a large text is
encoded once: a second run maps the saved index array from disk instead of reading the text."""
from __future__ import annotations

import os

import numpy as np

from .files import atomic_write
from .formats import detect_format, load_corpus, text_files
from .paths import encoded_dir
from .text import TextError, Vocab

MIN_CACHED_BYTES = 1 << 24  # smaller texts encode in well under a second


def _paths(key: str) -> tuple[str, str]:
    folder = encoded_dir()
    return os.path.join(folder, f"{key}.indices.npy"), os.path.join(folder, f"{key}.vocab.npy")


def load_encoded(key: str):
    """(vocab, indices) saved under ``key``, the indices memory-mapped; or None."""
    idx_path, vocab_path = _paths(key)
    try:
        codepoints = np.load(vocab_path, allow_pickle=False)
        # copy-on-write: writeable like a freshly encoded book, so the kernels see the same type
        indices = np.load(idx_path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError):
        return None
    # a damaged entry is a miss: the kernels do not bounds-check their indices
    if (codepoints.ndim != 1 or codepoints.size == 0 or codepoints.dtype.kind not in "iu"
            or np.any(np.diff(codepoints.astype(np.int64)) <= 0) or codepoints.astype(np.int64)[0] < 0
            or codepoints.max() >= 0x110000):
        return None
    vocab = Vocab(codepoints.astype(np.uint32))
    if indices.ndim != 1 or indices.dtype != vocab.index_dtype() or indices.size == 0 or indices.max() >= vocab.size:
        return None
    return vocab, np.asarray(indices)


def save_encoded(key: str, vocab: Vocab, indices: np.ndarray) -> None:
    """Save atomically; the vocabulary file is written last, so it marks a complete entry.
    A cache that cannot be written (read-only or full disk) is skipped."""
    idx_path, vocab_path = _paths(key)
    try:
        os.makedirs(os.path.dirname(idx_path), exist_ok=True)
        for path, array in ((idx_path, indices), (vocab_path, vocab.codepoints)):
            with atomic_write(path, "wb") as f:
                np.save(f, array, allow_pickle=False)
    except OSError:
        for path in (idx_path, vocab_path):
            if os.path.exists(path):
                os.unlink(path)


def load_corpus_cached(path: str, fmt: str, encoding: str, min_chars: int, sha256: str):
    """``formats.load_corpus`` through the cache for texts of at least MIN_CACHED_BYTES."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    files = text_files(path) if os.path.isdir(path) else [path] if os.path.isfile(path) else []
    size = sum(os.path.getsize(f) for f in files)
    key = f"{sha256}-{fmt}-{encoding.lower()}"
    if size >= MIN_CACHED_BYTES:
        hit = load_encoded(key)
        if hit is not None:
            if hit[1].shape[0] < min_chars:
                raise TextError(f"{path}: the text has {hit[1].shape[0]} characters; "
                                f"training needs at least seq_length + 1 = {min_chars}")
            return hit
    vocab, indices = load_corpus(path, fmt, encoding, min_chars)
    if size >= MIN_CACHED_BYTES:
        save_encoded(key, vocab, indices)
    return vocab, indices
