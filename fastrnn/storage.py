"""What fastrnn keeps on disk besides run directories, how much, and emptying it
(``fastrnn cache``): compiled kernels (one directory per version of the kernels' sources),
encoded books, downloaded corpora and the demo corpus."""
from __future__ import annotations

import contextlib
import glob
import os
import re
from dataclasses import dataclass

from . import paths
from .corpora import REGISTRY


@dataclass
class Place:
    what: str
    path: str
    count: int  # entries: kernel versions, books, corpora, files
    bytes: int
    note: str = ""


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def places() -> list[Place]:
    problem = paths.kernel_cache_problem()  # as a command that compiles would find it
    current, versions = paths.kernel_cache_dir(), paths.kernel_cache_versions()
    here = next((v for v in versions if v == current), None)
    note = f"this version {_size(here) / 1e6:.1f} MB" if here else "nothing of this version yet"
    if problem:
        note += f"; cannot be written ({problem})"
    encoded, corpora = paths.encoded_dir(), paths.corpora_dir()
    demos = paths.demo_corpus_files()
    return [
        Place("compiled kernels", paths.kernel_cache_root(), len(versions), sum(map(_size, versions)), note),
        Place("encoded books", encoded, _count(encoded, ".vocab.npy"), _size(encoded) if os.path.isdir(encoded) else 0),
        Place("downloaded corpora", corpora, _count(corpora, ".txt"), _size(corpora) if os.path.isdir(corpora) else 0),
        Place("demo corpus", paths.data_dir(), len(demos), sum(map(_size, demos))),
    ]


def _count(folder: str, ending: str) -> int:
    """Files in ``folder`` whose names end in ``ending``."""
    return len(glob.glob(os.path.join(glob.escape(folder), f"*{ending}")))


# the files fastrnn makes in each place, by name: nothing else there is ever removed
KERNEL_FILE = re.compile(r".*\.(nbi|nbc)$")  # Numba's index and compiled code
ENCODED_FILE = re.compile(r"[0-9a-f]{64}-(text|json|dir)-[^/]+\.(indices|vocab)\.npy$")  # ``cache.py``
DEMO_FILE = re.compile(r"demo-python\d+\.\d+\.\d+\.txt$")  # ``paths.demo_corpus_file``
LEFTOVER = re.compile(r"\.tmp-[A-Za-z0-9_]+$")  # ``files.atomic_write``'s, of a writer killed mid-write


def clear(prune: bool = False, everything: bool = False) -> int:
    """Remove the compiled kernels (with ``prune``: those of other versions only) and the
    encoded books (not with ``prune``), and with ``everything`` the downloaded corpora and the
    demo corpus too; returns the bytes of the files removed. All of it is made again when
    needed. Only files fastrnn made, recognised by their names, are removed, then the
    directories they leave empty; a symbolic link is never followed, nor removed."""
    current = paths.kernel_cache_dir()
    doomed = [(v, KERNEL_FILE) for v in paths.kernel_cache_versions() if not (prune and v == current)]
    if not prune:
        doomed.append((paths.encoded_dir(), ENCODED_FILE))
        if everything:
            corpora = re.compile("(" + "|".join(re.escape(name) for name in REGISTRY) + r")\.txt$")
            doomed += [(paths.corpora_dir(), corpora), (paths.data_dir(), DEMO_FILE)]
    return sum(_remove_own_files(folder, pattern, recurse=pattern is not DEMO_FILE) for folder, pattern in doomed)


def _remove_own_files(folder: str, pattern: re.Pattern, recurse: bool) -> int:
    """Remove the files under ``folder`` whose names match ``pattern`` (or are leftovers of
    fastrnn's writes), without following symbolic links; the bytes removed."""
    if os.path.islink(folder) or not os.path.isdir(folder):
        return 0
    freed = 0
    walk = os.walk(folder, topdown=False, followlinks=False) if recurse else [(folder, [], [
        entry.name for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False)])]
    for root, dirs, files in walk:
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path) or not (pattern.match(name) or LEFTOVER.match(name)):
                continue
            try:
                size = os.path.getsize(path)
                os.unlink(path)
                freed += size
            except OSError:
                pass
        for name in dirs:  # directories of fastrnn's files, now empty (a symlink is not followed)
            path = os.path.join(root, name)
            if not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.rmdir(path)
    if recurse:
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # only if empty
    return freed
