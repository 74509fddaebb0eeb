"""What fastrnn keeps on disk besides run directories, how much, and emptying it
(``fastrnn cache``): compiled kernels (one directory per version of the kernels' sources),
encoded books, downloaded corpora and the demo corpus."""
from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass

from . import paths


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


def clear(prune: bool = False, everything: bool = False) -> int:
    """Remove the compiled kernels (with ``prune``: those of other versions only) and the
    encoded books (not with ``prune``), and with ``everything`` the downloaded corpora and the
    demo corpus too; returns the bytes freed. All of it is made again when needed."""
    current = paths.kernel_cache_dir()
    doomed = [v for v in paths.kernel_cache_versions() if not (prune and v == current)]
    if not prune:
        doomed.append(paths.encoded_dir())
        if everything:
            doomed += [paths.corpora_dir()] + paths.demo_corpus_files()
    freed = 0
    for path in doomed:
        if not os.path.exists(path):
            continue
        freed += _size(path)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    return freed
