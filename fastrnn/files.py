"""Writing files atomically: a crash or an error leaves the old file or the new one, never a
torn one, and no temporary file behind."""
from __future__ import annotations

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = None,
                 newline: str | None = None, fsync: bool = False):
    """Open a temporary file beside ``path`` for writing; when the block ends without an error it
    replaces ``path`` (with the permissions a new file would get), otherwise it is removed.
    ``fsync`` flushes it to disk first (for files a crash must not lose)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp creates 0600
        os.replace(tmp, path)
        if fsync:  # the rename itself, so that a crash cannot take it back
            sync_directory(directory)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str | None = None) -> None:
    with atomic_write(path, "w", encoding=encoding, newline="") as f:
        f.write(text)


def sync_directory(directory: str) -> None:
    """fsync a directory, so that the names it holds survive a crash (where the system can)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems and systems do not sync directories
        pass
    finally:
        os.close(fd)


def remove_leftovers(directory: str) -> None:
    """Remove the temporary files a writer killed mid-write left in ``directory`` (only ever
    called by the directory's one writer, under its lock)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(".tmp-") and os.path.isfile(os.path.join(directory, name)):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))


def _process_umask() -> int:
    """The process's umask, read without setting it (Linux: /proc); elsewhere set and restored
    once, here, while the module is imported, rather than around every write."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


UMASK = _process_umask()
