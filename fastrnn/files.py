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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str | None = None) -> None:
    with atomic_write(path, "w", encoding=encoding, newline="") as f:
        f.write(text)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
