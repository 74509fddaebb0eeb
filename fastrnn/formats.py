"""Corpus formats: a plain text file, a list (one document per line), a directory of .txt
files, or tweets in JSON.

The documents of a list (its non-empty lines, ``documents.document_lines``) and tweets (a JSON
array of objects with a ``text`` field, or JSON lines of such objects, HTML entities decoded)
are each closed by an end-of-text character, so that a model learns where one ends
(``documents.py``).
"""
from __future__ import annotations

import html
import json
import os
import re

import numpy as np

from .documents import document_lines
from .text import TextError, check_file, codepoints, decoded_blocks, encode_blocks, read_text

END_OF_TEXT = "\x03"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
FORMATS = ("auto", "text", "lines", "json", "dir")


def detect_format(path: str) -> str:
    """'dir' for a directory, 'json' for .json / .jsonl files, else 'text'."""
    if os.path.isdir(path):
        return "dir"
    return "json" if path.lower().endswith((".json", ".jsonl")) else "text"


def text_files(directory: str) -> list[str]:
    """The .txt files under ``directory`` (recursively), in sorted order."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(".txt")]
    return found


def tweet_texts(path: str, encoding: str = "utf-8") -> list[str]:
    """The ``text`` fields of a JSON array of objects or of JSON lines, HTML entities decoded."""
    check_file(path)
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # a byte-order mark is not part of the JSON
    try:
        with open(path, encoding=encoding) as f:
            raw = f.read()
    except LookupError:
        raise TextError(f"unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as err:
        raise TextError(f"{path}: not valid {encoding} (byte {err.start}: {err.reason})") from None
    except OSError as err:
        raise TextError(f"{path}: cannot read: {err.strerror}") from None
    try:
        items = json.loads(raw)
        if isinstance(items, dict):
            items = [items]
    except RecursionError:
        raise TextError(f"{path}: JSON nested too deeply") from None
    except json.JSONDecodeError:
        try:
            items = [json.loads(line) for line in raw.splitlines() if line.strip()]
        except RecursionError:
            raise TextError(f"{path}: JSON nested too deeply") from None
        except json.JSONDecodeError as err:
            raise TextError(f"{path}: neither a JSON array nor JSON lines (line {err.lineno}: {err.msg})") from None
    if not isinstance(items, list):
        raise TextError(f"{path}: expected a JSON array of objects with a 'text' field")
    # lone UTF-16 surrogates (tweets cut in the middle of an emoji) become U+FFFD
    texts = [_LONE_SURROGATE.sub("\ufffd", html.unescape(item["text"])) for item in items
             if isinstance(item, dict) and isinstance(item.get("text"), str)]
    if not texts:
        raise TextError(f"{path}: no objects with a 'text' field")
    return texts


def load_corpus(path: str, fmt: str = "auto", encoding: str = "utf-8", min_chars: int = 2):
    """Read and encode a corpus in any supported format: returns (vocab, indices)."""
    path = os.fspath(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "dir":
        if not os.path.isdir(path):
            raise TextError(f"{path}: not a directory")
        files = text_files(path)
        if not files:
            raise TextError(f"{path}: no .txt files in this directory")
        newline = np.array([ord("\n")], dtype=np.uint32)

        def blocks():
            for i, name in enumerate(files):
                if i:
                    yield newline  # files are joined by a line break
                if os.path.getsize(name):
                    yield from decoded_blocks(name, encoding)

        return encode_blocks(blocks, path, min_chars)
    if fmt == "json":
        text = "".join(t + END_OF_TEXT for t in tweet_texts(path, encoding))
        return encode_blocks(lambda: iter([codepoints(text)]), path, min_chars)
    if fmt == "lines":
        # an end marker inside a line would end its document there: not a character of it
        lines = document_lines(read_text(path, encoding).replace(END_OF_TEXT, ""))
        if not lines:
            raise TextError(f"{path}: no line with anything on it (a list holds one document per line)")
        text = "".join(line + END_OF_TEXT for line in lines)
        return encode_blocks(lambda: iter([codepoints(text)]), path, min_chars)
    from .text import load_book

    return load_book(path, encoding, min_chars)
