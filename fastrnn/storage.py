"""What fastrnn keeps on disk besides run directories, how much, and emptying it
(``fastrnn cache``): compiled kernels (one directory per version of the kernels' sources),
encoded books, downloaded corpora and the demo corpus."""
from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass


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


def kernel_versions() -> tuple[str, list[str]]:
    """(this version's directory, every version's directory) of compiled kernels."""
    from .kernels import CACHE_DIR, CACHE_ROOT

    return CACHE_DIR, sorted(glob.glob(os.path.join(glob.escape(CACHE_ROOT), "fastrnn-*")))


def places() -> list[Place]:
    from .demo import data_dir
    from .kernels import CACHE_ROOT

    current, versions = kernel_versions()
    here = next((v for v in versions if v == current), None)
    note = f"this version {_size(here) / 1e6:.1f} MB" if here else "nothing of this version yet"
    data = data_dir()
    encoded = os.path.join(data, "encoded")
    corpora = os.path.join(data, "corpora")
    demos = glob.glob(os.path.join(glob.escape(data), "demo-*.txt"))
    return [
        Place("compiled kernels", CACHE_ROOT, len(versions), sum(map(_size, versions)), note),
        Place("encoded books", encoded, len(glob.glob(os.path.join(glob.escape(encoded), "*.vocab.npy"))),
              _size(encoded) if os.path.isdir(encoded) else 0),
        Place("downloaded corpora", corpora, len(glob.glob(os.path.join(glob.escape(corpora), "*.txt"))),
              _size(corpora) if os.path.isdir(corpora) else 0),
        Place("demo corpus", data, len(demos), sum(map(_size, demos))),
    ]


def clear(prune: bool = False, everything: bool = False) -> int:
    """Remove the compiled kernels (with ``prune``: those of other versions only) and the
    encoded books (not with ``prune``), and with ``everything`` the downloaded corpora and the
    demo corpus too; returns the bytes freed. All of it is made again when needed."""
    from .demo import data_dir

    current, versions = kernel_versions()
    doomed = [v for v in versions if not (prune and v == current)]
    if not prune:
        data = data_dir()
        doomed.append(os.path.join(data, "encoded"))
        if everything:
            doomed += [os.path.join(data, "corpora")] + glob.glob(os.path.join(glob.escape(data), "demo-*.txt"))
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
