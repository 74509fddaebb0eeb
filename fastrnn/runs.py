"""Where runs live: default run directories and finding the most recent one."""
from __future__ import annotations

import os
import time

RUNS_ROOT = "runs"


def default_run_dir(book_path: str, root: str = RUNS_ROOT) -> str:
    """runs/<book name>-<date>-<time>, with a suffix if that name is taken."""
    stem = os.path.splitext(os.path.basename(os.path.normpath(book_path)))[0] or "run"
    base = os.path.join(root, f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    path, i = base, 1
    while os.path.exists(path):
        i += 1
        path = f"{base}-{i}"
    return path


def holds_run(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, f)) for f in ("last.npz", "best.npz", "metrics.csv"))


def latest_run(root: str = RUNS_ROOT) -> str | None:
    """The run directory under ``root`` whose best.npz was written last, or None."""
    try:
        entries = [os.path.join(root, d) for d in os.listdir(root)]
    except OSError:
        return None
    runs = [(os.path.getmtime(os.path.join(d, "best.npz")), d) for d in entries
            if os.path.isfile(os.path.join(d, "best.npz"))]
    return max(runs)[1] if runs else None


def resolve_checkpoint(path: str | None, root: str = RUNS_ROOT) -> str:
    """A checkpoint file from a file, a run directory (its best.npz), or the latest run."""
    if path is None:
        run = latest_run(root)
        if run is None:
            raise FileNotFoundError(f"no run found under {root}/; train one first or pass --checkpoint")
        return os.path.join(run, "best.npz")
    if os.path.isdir(path):
        best = os.path.join(path, "best.npz")
        if not os.path.isfile(best):
            raise FileNotFoundError(f"{path}: no best.npz in this directory")
        return best
    return path
