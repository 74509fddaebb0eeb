"""Where fastrnn keeps things besides run directories: the data directory and, in it, the
compiled kernels, downloaded corpora, encoded books and the demo corpus. Every module that reads
or writes one of them asks here; ``storage.py`` shows and empties them (``fastrnn cache``).
"""
from __future__ import annotations

import functools
import glob
import hashlib
import os
import shutil
import sys
import tempfile

import platformdirs

KERNELS_PACKAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")


def data_dir() -> str:
    """Where fastrnn keeps generated and downloaded texts, encoded books and compiled kernels:
    $FASTRNN_DATA, else the platform's user cache directory (platformdirs: ~/.cache/fastrnn on
    Linux, or $XDG_CACHE_HOME/fastrnn; ~/Library/Caches/fastrnn on macOS; the local app data
    folder on Windows)."""
    return os.environ.get("FASTRNN_DATA") or platformdirs.user_cache_dir("fastrnn", appauthor=False)


def kernel_cache_root() -> str:
    """Where compiled kernels are kept, one directory per version of their sources:
    $NUMBA_CACHE_DIR when set, else ``kernels`` in the data directory."""
    return os.environ.get("NUMBA_CACHE_DIR") or os.path.join(data_dir(), "kernels")


@functools.lru_cache(maxsize=1)
def kernel_sources_hash() -> str:
    """sha256 of every source file of the kernels package, in name order, and of the CPU that
    Numba compiles for (the kernels' vector width follows it: a home shared by two machines
    keeps a build for each), as 16 hex digits."""
    from llvmlite import binding  # Numba's: only where kernels are compiled or their cache shown
    from numba.core import config

    digest = hashlib.sha256()
    digest.update(f"{config.CPU_NAME or binding.get_host_cpu_name()}\0"
                  f"{config.CPU_FEATURES or binding.get_host_cpu_features().flatten()}\0".encode())
    for name in sorted(os.listdir(KERNELS_PACKAGE)):
        if name.endswith(".py"):
            digest.update(name.encode() + b"\0")
            with open(os.path.join(KERNELS_PACKAGE, name), "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:16]


def kernel_cache_dir() -> str:
    """This version's directory of compiled kernels, named by a hash of the kernels' sources: an
    edit to any of them (a helper that other kernels inline included) gives a new directory."""
    return os.path.join(kernel_cache_root(), f"fastrnn-{kernel_sources_hash()}")


MIN_FREE_BYTES = 200 << 20  # a command's compiled code takes 5-30 MB


def kernel_cache_problem() -> str | None:
    """Why compiled code cannot be kept in ``kernel_cache_dir()`` (which this makes where it
    can), or None if it can."""
    path = kernel_cache_dir()
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        free = shutil.disk_usage(path).free
        unsafe = _not_private(path) or _not_private(kernel_cache_root())
    except OSError as err:
        return err.strerror or str(err)
    if unsafe:  # compiled code is machine code this process would run: only its owner may write it
        return unsafe
    return f"{free >> 20} MB free" if free < MIN_FREE_BYTES else None


def _not_private(path: str) -> str | None:
    """Why others than this user could write into ``path`` (a directory), or None."""
    if not hasattr(os, "getuid"):  # Windows: the user's profile is private
        return None
    status = os.stat(path)
    if status.st_uid != os.getuid():
        return f"{path} belongs to another user"
    if status.st_mode & 0o022:
        return f"{path} is writable by others than its owner"
    return None


def kernel_cache_versions() -> list[str]:
    """Every version's directory of compiled kernels."""
    return sorted(glob.glob(os.path.join(glob.escape(kernel_cache_root()), "fastrnn-*")))


def corpora_dir() -> str:
    """Downloaded corpora (``corpora.py``)."""
    return os.path.join(data_dir(), "corpora")


def corpus_path(name: str) -> str:
    """The stored text of the registry's corpus ``name``."""
    return os.path.join(corpora_dir(), f"{name}.txt")


def encoded_dir() -> str:
    """Encoded books, keyed by content (``cache.py``)."""
    return os.path.join(data_dir(), "encoded")


def demo_corpus_file() -> str:
    """The demo corpus of this Python version (``demo.py`` writes it on first use)."""
    version = "{}.{}.{}".format(*sys.version_info[:3])
    return os.path.join(data_dir(), f"demo-python{version}.txt")


def demo_corpus_files() -> list[str]:
    """The demo corpora of every Python version that wrote one."""
    return glob.glob(os.path.join(glob.escape(data_dir()), "demo-*.txt"))
