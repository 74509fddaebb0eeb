"""Atomic writes: an error leaves the old file and no temporary file; a written file gets the
permissions of a new file."""
import os

import pytest

from fastrnn.files import atomic_write, write_text_atomic


def test_an_error_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write("half of the new")
            raise RuntimeError("disk full")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_written_files_get_the_permissions_of_new_files(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text_atomic(tmp_path / "atomic.txt", "y\r\nz", encoding="utf-8")
    assert (tmp_path / "atomic.txt").read_bytes() == b"y\r\nz"  # written as given
    assert os.stat(tmp_path / "atomic.txt").st_mode == os.stat(plain).st_mode
