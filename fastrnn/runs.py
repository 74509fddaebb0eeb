"""Run directories: default names, the latest run, clearing one, and run.json (what --resume needs)."""
from __future__ import annotations

import hashlib
import json
import os
import time

from .errors import FastrnnError
from .files import write_text_atomic

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


RUN_FILES = ("last.npz", "best.npz", "metrics.csv", "validation.csv", "samples.txt", "summary.json",
             "loss.png", "run.json")


def holds_run(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, f)) for f in RUN_FILES)


def clear_run(path: str) -> None:
    """Remove the files of a run (``--force``), so that nothing of it can mix with a new one."""
    for name in RUN_FILES:
        target = os.path.join(path, name)
        if os.path.exists(target):
            os.unlink(target)


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


RUN_CONFIG = "run.json"


class RunError(FastrnnError, ValueError):
    """A run directory that cannot be resumed; the message is meant for the user."""


def save_run_config(run_dir: str, config: dict) -> None:
    os.makedirs(run_dir, exist_ok=True)
    write_text_atomic(os.path.join(run_dir, RUN_CONFIG), json.dumps(config, indent=2) + "\n")


def load_run_config(run_dir: str) -> dict:
    """The settings a run was started with (book, totals, intervals, validation split)."""
    if not os.path.isdir(run_dir):
        raise RunError(f"{run_dir}: no such run directory")
    path = os.path.join(run_dir, RUN_CONFIG)
    try:
        with open(path) as f:
            config = json.load(f)
    except FileNotFoundError:
        raise RunError(f"{run_dir}: not a fastrnn run (no {RUN_CONFIG})") from None
    except (OSError, ValueError) as err:
        raise RunError(f"{path}: unreadable ({err})") from None
    config.setdefault("format", "auto")
    missing = [k for k in ("book", "encoding", "total_updates", "sample_every", "log_every",
                           "checkpoint_every", "val_fraction", "val_every") if k not in config]
    if missing:
        raise RunError(f"{path}: missing {', '.join(missing)}")
    if not os.path.isfile(os.path.join(run_dir, "last.npz")):
        raise RunError(f"{run_dir}: no last.npz to resume from")
    return config


def corpus_sha256(path: str) -> str:
    """sha256 of a file, or of a directory's .txt files (their relative names and contents)."""
    digest = hashlib.sha256()
    if os.path.isdir(path):
        from .formats import text_files

        files = text_files(path)
        for name in files:
            digest.update(os.path.relpath(name, path).encode("utf-8") + b"\0")
    else:
        files = [path]
    for name in files:
        with open(name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
