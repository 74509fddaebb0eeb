"""Run directories: ``RunDir``, the one place that knows the names and formats of a run's files;
default names, the latest run, clearing one, and run.json (what resuming needs)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time

import numpy as np

from .errors import FastrnnError
from .files import remove_leftovers, write_text_atomic
from .settings import OptionError, check

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

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


LOCK_FILE = ".lock"


class RunLock:
    """The one writer of a run directory: an OS lock (``flock``) on DIR/.lock, held from before
    the directory is checked until the run ends, in every process that trains it (train,
    resume, a sweep's trial). The system drops the lock when its process dies, so a run killed
    with ``kill -9`` resumes as ever; the temporary files such a writer left are removed when
    the next one takes the lock. A directory this lock made and nothing else used is removed
    again, so that a run refused by its checks leaves nothing behind."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self._fd = None
        self._made = False

    def __enter__(self) -> "RunLock":
        if fcntl is None:  # no flock (Windows): one writer is the user's affair
            return self
        self._made = not os.path.isdir(self.path)
        os.makedirs(self.path, exist_ok=True)
        lock = os.path.join(self.path, LOCK_FILE)
        self._fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self._fd, 32).decode("ascii", "replace").strip() or "another process"
            os.close(self._fd)
            self._fd = None
            raise RunError(f"{self.path} is being written by process {holder}: wait for it to end, or stop it "
                           f"(its run resumes from its last checkpoint)") from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode("ascii"))
        remove_leftovers(self.path)
        return self

    def __exit__(self, *exc) -> bool:
        if self._fd is not None:
            if self._made and set(os.listdir(self.path)) <= {LOCK_FILE}:
                os.unlink(os.path.join(self.path, LOCK_FILE))
                os.rmdir(self.path)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        return False


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
    except (OSError, ValueError, RecursionError) as err:
        raise RunError(f"{path}: unreadable ({type(err).__name__})") from None
    if not isinstance(config, dict):
        raise RunError(f"{path}: not a run's settings (a JSON object)")
    config.setdefault("format", "auto")
    missing = [k for k in ("book", "encoding", "total_updates", "sample_every", "log_every",
                           "checkpoint_every", "val_fraction", "val_every") if k not in config]
    if missing:
        raise RunError(f"{path}: missing {', '.join(missing)}")
    _check_run_config(path, config)
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


METRICS_HEADER = "update,epoch,loss,smooth_loss\n"
VALIDATION_HEADER = "update,val_nats_per_char,val_bits_per_char\n"
_SAMPLE_LINE = re.compile(r"^--- update (\d+), smooth loss [^\n]* ---$", re.MULTILINE)
_SAMPLE = re.compile(r"^--- update (\d+), smooth loss ([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)) ---\n"
                     r"(.*?)\n\n(?=--- update |=== best model|\Z)",
                     re.MULTILINE | re.DOTALL)
_FINAL_LINE = re.compile(r"^=== best model \(", re.MULTILINE)


class RunDir:
    """The files of one run directory.

    Writers append a record at a time and close the file again, so nothing holds a file open
    between updates, and a crash leaves at most one torn last line (dropped on resume).

        last.npz, best.npz   checkpoints (``model.save_checkpoint``)
        metrics.csv          update,epoch,loss,smooth_loss
        validation.csv       update,val_nats_per_char,val_bits_per_char
        samples.txt          "--- update U, smooth loss S ---" and a text, then a blank line;
                             at the end "=== best model (...) ===" and its passage
        summary.json, loss.png, run.json
    """

    def __init__(self, path):
        self.path = os.fspath(path)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # -- writing --------------------------------------------------------------------------------

    def begin(self, validation: bool) -> None:
        """Empty logs with their headers, for a new run."""
        os.makedirs(self.path, exist_ok=True)
        write_text_atomic(self.file("metrics.csv"), METRICS_HEADER)
        write_text_atomic(self.file("samples.txt"), "", encoding="utf-8")
        if validation:
            write_text_atomic(self.file("validation.csv"), VALIDATION_HEADER)

    def truncate(self, update: int) -> None:
        """Drop what a run wrote after the checkpoint it resumes from (update ``update``):
        metrics and validation rows, samples, and the end-of-run passage. A row cut short by a
        crash (no line end) or one that does not parse is dropped too."""
        for name in ("metrics.csv", "validation.csv"):
            path = self.file(name)
            if os.path.exists(path):
                with open(path) as f:
                    lines = f.read().splitlines(keepends=True)
                keep = lines[:1] + [ln for ln in lines[1:] if _row_update(ln) is not None and _row_update(ln) <= update]
                write_text_atomic(path, "".join(keep))
        path = self.file("samples.txt")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            cut = len(text)
            final = _FINAL_LINE.search(text)
            if final:
                cut = final.start()
            for header in _SAMPLE_LINE.finditer(text, 0, cut):
                if int(header.group(1)) > update:
                    cut = header.start()
                    break
            write_text_atomic(path, text[:cut], encoding="utf-8")

    def _append(self, name: str, text: str) -> None:
        with open(self.file(name), "a", encoding="utf-8") as f:
            f.write(text)

    def append_metrics(self, rows: np.ndarray) -> None:
        """Rows of (update, epoch, loss, smooth_loss)."""
        self._append("metrics.csv", "".join(f"{int(u)},{int(e)},{loss:.6f},{s:.6f}\n" for u, e, loss, s in rows))

    def append_validation(self, update: int, nats_per_char: float) -> None:
        self._append("validation.csv", f"{update},{nats_per_char:.6f},{nats_per_char / np.log(2):.6f}\n")

    def append_sample(self, update: int, smooth_loss: float, text: str) -> None:
        self._append("samples.txt", f"--- update {update}, smooth loss {smooth_loss:.4f} ---\n{text}\n\n")

    def append_best_passage(self, update: int, what: str, value: float, start: str, passage: str) -> None:
        """The best model's passage at the end of samples.txt; ``start`` says where it started."""
        self._append("samples.txt", f"=== best model (update {update}, {what} {value:.4f}): "
                                    f"{len(passage)} characters {start} ===\n{passage}\n")

    def write_summary(self, summary: dict) -> None:
        """summary.json, and loss.png from the logs as they stand."""
        from .plot import plot_loss

        write_text_atomic(self.file("summary.json"), json.dumps(summary, indent=2) + "\n")
        plot_loss(self.metrics(), self.file("loss.png"), self.validation())

    # -- reading --------------------------------------------------------------------------------

    def _rows(self, name: str, columns: int) -> np.ndarray:
        """The numbers of a CSV log; a torn last line (what a crash leaves) is skipped with a
        warning, any other line that is not ``columns`` numbers is a RunError."""
        path = self.file(name)
        if not os.path.exists(path):
            return np.empty((0, columns))
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines(keepends=True)[1:]
        except (OSError, UnicodeDecodeError) as err:
            raise RunError(f"{path}: unreadable ({err})") from None
        rows = []
        for number, line in enumerate(lines, start=2):
            values = _numbers(line, columns)
            if values is None and number == len(lines) + 1 and not line.endswith("\n"):
                sys.stderr.write(f"warning: {path}: skipped its torn last line {line[:40]!r}\n")
                continue
            if values is None:
                raise RunError(f"{path}: line {number} is not {columns} numbers: {line[:40]!r}")
            rows.append(values)
        return np.array(rows, dtype=np.float64).reshape(-1, columns)

    def metrics(self) -> np.ndarray:
        """metrics.csv as a (rows, 4) float array: update, epoch, loss, smooth_loss."""
        return self._rows("metrics.csv", 4)

    def validation(self) -> np.ndarray:
        """validation.csv as a (rows, 3) float array (empty without one)."""
        return self._rows("validation.csv", 3)

    def _text(self, name: str) -> str | None:
        """A text file of the run, or None without one; RunError if it is not UTF-8."""
        path = self.file(name)
        if not os.path.exists(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except (OSError, UnicodeDecodeError) as err:
            raise RunError(f"{path}: unreadable ({err})") from None

    def samples(self) -> list[tuple[int, float, str]]:
        """(update, smooth loss, text) of each periodic sample, in order."""
        text = self._text("samples.txt")
        if text is None:
            return []
        return [(int(m.group(1)), float(m.group(2)), m.group(3)) for m in _SAMPLE.finditer(text)]

    def best_passage(self) -> tuple[str, str] | None:
        """(header, text) of the best model's passage at the end of samples.txt, or None."""
        text = self._text("samples.txt")
        if text is None:
            return None
        found = re.search(r"^=== (best model .*?) ===\n(.*)\n\Z", text, re.MULTILINE | re.DOTALL)
        return (found.group(1), found.group(2)) if found else None

    def summary(self) -> dict:
        """summary.json, or {} while the run has not written one."""
        path = self.file("summary.json")
        if not os.path.exists(path):
            return {}
        try:
            with open(path, encoding="utf-8") as f:
                summary = json.load(f)
        except (OSError, ValueError, RecursionError) as err:
            raise RunError(f"{path}: unreadable ({type(err).__name__})") from None
        if not isinstance(summary, dict):
            raise RunError(f"{path}: not a run's summary (a JSON object)")
        return summary


def _check_run_config(path: str, config: dict) -> None:
    """RunError naming what in run.json is not what fastrnn writes there."""
    if not isinstance(config["book"], str) or not isinstance(config.get("book_sha256", ""), str):
        raise RunError(f"{path}: book must be a path")
    total = config["total_updates"]
    if isinstance(total, bool) or not isinstance(total, int) or not 0 <= total < 2**62:
        raise RunError(f"{path}: total_updates must be a non-negative integer below 2**62, not {total!r}")
    try:
        for name in ("encoding", "format", "val_fraction", "sample_every", "sample_length", "log_every",
                     "checkpoint_every", "val_every", "planned_updates"):
            check(name, config.get(name))
        if config.get("time_limit") is not None:
            check("time_limit", str(config["time_limit"]))
            if isinstance(config["time_limit"], bool) or not isinstance(config["time_limit"], (int, float)) or \
                    not 0 < config["time_limit"] < float("inf"):
                raise OptionError("time_limit", f"time_limit must be a positive number, not {config['time_limit']!r}")
    except OptionError as err:
        raise RunError(f"{path}: {err}") from None


def _numbers(line: str, columns: int) -> list[float] | None:
    """The ``columns`` numbers of a CSV row, or None."""
    fields = line.strip().split(",")
    if len(fields) != columns:
        return None
    try:
        return [float(field) for field in fields]
    except ValueError:
        return None


def _row_update(line: str) -> int | None:
    if not line.endswith("\n"):
        return None
    try:
        return int(line.split(",", 1)[0])
    except ValueError:
        return None
