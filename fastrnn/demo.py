"""The built-in demo corpus: English prose assembled from the standard library's docstrings.

Every Python installation carries it, so ``fastrnn train`` without a book works offline and the
repository ships no text. The text depends on the Python version, which its name records.
"""
from __future__ import annotations

import importlib
import inspect
import os
import warnings

from .files import write_text_atomic
from .paths import demo_corpus_file

# Modules with long, prose-like docstrings that import without side effects or a display.
DEMO_MODULES = (
    "argparse", "ast", "asyncio", "base64", "bisect", "calendar", "collections", "configparser",
    "contextlib", "csv", "dataclasses", "datetime", "decimal", "difflib", "email.message", "enum",
    "fractions", "functools", "gettext", "glob", "heapq", "html.parser", "http.client", "http.server",
    "imaplib", "inspect", "ipaddress", "json", "logging", "mailbox", "operator", "optparse", "pathlib",
    "pickle", "pprint", "queue", "random", "re", "sched", "shlex", "shutil", "smtplib", "socket",
    "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "tokenize",
    "typing", "unittest", "urllib.parse", "uuid", "warnings", "zipfile",
)


def demo_text() -> str:
    """Docstrings of the modules above and of their public classes, functions and methods, in a
    fixed order, each once, separated by blank lines."""
    seen, parts = set(), []

    def add(obj):
        doc = inspect.getdoc(obj)
        if doc and len(doc) > 80 and doc not in seen:
            seen.add(doc)
            parts.append(doc.strip())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some deprecated names warn when their docstring is read
        for name in DEMO_MODULES:
            _add_module(name, add)
    return "\n\n".join(parts) + "\n"


def _add_module(name: str, add) -> None:
    """Pass the docstrings of module ``name`` and of its public members to ``add``."""
    try:
        module = importlib.import_module(name)
    except ImportError:  # a trimmed installation: use what is there
        return
    add(module)
    for attr in sorted(vars(module)):
        obj = vars(module)[attr]
        if attr.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        add(obj)
        if inspect.isclass(obj):
            for method in sorted(vars(obj)):
                if not method.startswith("_"):
                    add(vars(obj)[method])


def demo_corpus_path() -> str:
    """The demo corpus as a file in the data directory, written on first use."""
    path = demo_corpus_file()
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_text_atomic(path, demo_text(), encoding="utf-8")
    return path
