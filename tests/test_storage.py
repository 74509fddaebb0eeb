"""`fastrnn cache`: where compiled kernels, encoded books and corpora are kept, their sizes,
and emptying them; and a kernel cache that cannot be written, where every command still runs."""
import os
import subprocess
import sys

import pytest


def fastrnn(args, env, cwd=None):
    return subprocess.run([sys.executable, "-m", "fastrnn"] + args, capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


@pytest.fixture
def data(tmp_path):
    """A data directory with two old kernel versions, an encoded book and a corpus."""
    root = tmp_path / "data"
    for old in ("fastrnn-0000000000000000", "fastrnn-1111111111111111"):
        (root / "kernels" / old).mkdir(parents=True)
        (root / "kernels" / old / "loop.nbc").write_bytes(b"x" * 1_000_000)
    (root / "encoded").mkdir()
    (root / "encoded" / f"{'ab' * 32}-text-utf-8.vocab.npy").write_bytes(b"v" * 500_000)
    (root / "corpora").mkdir()
    (root / "corpora" / "alice.txt").write_text("a text")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    return root, dict(env, FASTRNN_DATA=str(root))


def test_cache_shows_what_is_kept_and_clears_it(data):
    root, env = data
    shown = fastrnn(["cache"], env)
    assert shown.returncode == 0, shown.stderr
    lines = {line.split("  ")[0].strip(): line for line in shown.stdout.splitlines()}
    # the two old versions and this one's, made (empty) when the command checked it can write there
    assert "2.0 MB  3 versions; this version 0.0 MB" in lines["compiled kernels"]
    assert str(root / "kernels") in lines["compiled kernels"]
    assert "0.5 MB  1 file" in lines["encoded books"] and "1 file" in lines["downloaded corpora"]
    pruned = fastrnn(["cache", "clear", "--prune"], env)
    assert pruned.returncode == 0 and "freed 2.0 MB" in pruned.stderr
    kept = [p.name for p in (root / "kernels").glob("fastrnn-*")]
    assert len(kept) == 1 and "0000" not in kept[0] and "1111" not in kept[0] and (root / "encoded").exists()
    assert fastrnn(["cache", "clear"], env).returncode == 0
    assert not (root / "encoded").exists() and (root / "corpora" / "alice.txt").exists()
    assert fastrnn(["cache", "clear", "--all"], env).returncode == 0
    assert not (root / "corpora").exists()
    misuse = fastrnn(["cache", "clear", "--all", "--prune"], env)
    assert misuse.returncode == 2 and len(misuse.stderr.strip().splitlines()) == 1


def test_clearing_removes_only_what_fastrnn_made_and_follows_no_link(data, tmp_path):
    root, env = data
    mine = {root / "corpora" / "notes.txt": "my notes", root / "encoded" / "important.md": "keep me",
            root / "demo-talk.txt": "a talk", root / "kernels" / "fastrnn-1111111111111111" / "README": "mine"}
    for path, text in mine.items():
        path.write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{'cd' * 32}-text-utf-8.vocab.npy").write_bytes(b"v" * 300_000)
    os.symlink(elsewhere, root / "encoded" / "linked")
    (root / "demo-python3.11.7.txt").write_text("d" * 200_000)
    cleared = fastrnn(["cache", "clear", "--all"], env)
    assert cleared.returncode == 0, cleared.stderr
    assert "freed 2.7 MB" in cleared.stderr  # the two kernels, the encoded book, the corpus, the demo
    assert all(path.read_text() == text for path, text in mine.items())
    assert (elsewhere / f"{'cd' * 32}-text-utf-8.vocab.npy").exists() and (root / "encoded" / "linked").is_symlink()
    assert not (root / "corpora" / "alice.txt").exists() and not (root / "demo-python3.11.7.txt").exists()


def test_an_unwritable_kernel_cache_compiles_in_memory_with_one_warning(tmp_path, book):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = dict(os.environ, FASTRNN_DATA=str(tmp_path / "data"), NUMBA_CACHE_DIR=str(blocker / "kernels"))
    result = fastrnn(["train", str(book), "--out", str(tmp_path / "run"), "--steps", "5", "--hidden", "8",
                      "--sample-every", "0", "-q"], env)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "cannot keep compiled code" in warnings[0] and "compiling in memory" in warnings[0]
    assert (tmp_path / "run" / "last.npz").exists() and "Traceback" not in result.stderr
    assert blocker.read_text() == "not a directory"
