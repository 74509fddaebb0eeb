"""Sweeps on real Dask processes: a local cluster, a scheduler and workers started here, a worker
killed in the middle of a trial, an interrupted sweep resumed, halving that ends exactly where
straight training ends."""
import csv
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("distributed")

import fastrnn  # noqa: E402
from fastrnn.sweeps import parse_grid, rungs, trial_settings  # noqa: E402

from conftest import make_text  # noqa: E402
from helpers import one_line_error, run  # noqa: E402

GRID = ["--grid", "hidden=8,12", "--grid", "eta=0.05,0.1"]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    path = tmp_path_factory.mktemp("book") / "book.txt"
    path.write_text(make_text(3000), encoding="utf-8")
    return path


def results(directory):
    with open(directory / "results.csv") as f:
        return {row["trial"]: row for row in csv.DictReader(f)}


def same_parameters(a, b):
    x, y = fastrnn.load(a / "last.npz"), fastrnn.load(b / "last.npz")
    return all(np.array_equal(getattr(x, n), getattr(y, n)) for n in ("W", "U", "V", "b", "c"))


def test_grids_and_rungs():
    assert parse_grid(["eta=0.05,0.1", "--seq-length=10,25"]) == {"eta": [0.05, 0.1], "seq_length": [10, 25]}
    trials = trial_settings({"hidden": [8, 12]}, seeds=3)
    assert [t["trial"] for t in trials] == [f"t{i:03d}" for i in range(6)]
    assert [(t["hidden"], t["seed"]) for t in trials][:4] == [(8, 0), (8, 1), (8, 2), (12, 0)]
    assert rungs(8, None) == [(1, 8)]
    assert rungs(8, 3) == [(3, 8), (1, 3)]  # 1/3 of the updates for 8 trials, then all for 3
    assert rungs(27, 3) == [(27, 27), (9, 9), (3, 3), (1, 1)]


def test_a_local_cluster_sweep_and_halving_that_ends_where_straight_training_ends(tmp_path, book):
    out = tmp_path / "sweep"
    result = run(["sweep", str(book), *GRID, "--grid", "schedule=cosine", "--steps", "600", "--halving", "2", "--out",
                  str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output
    rows = results(out)
    assert len(rows) == 4 and (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    # rungs of 150, 300 and 600 updates for 4, 2 and 1 trials
    statuses = sorted(row["status"] for row in rows.values())
    assert statuses == ["finished", "stopped at rung 1", "stopped at rung 1", "stopped at rung 2"]
    finished = [t for t, row in rows.items() if row["status"] == "finished"]
    assert rows[finished[0]]["updates"] == "600" and list(rows)[0] == finished[0]
    # the trial of the last rung, trained in three sessions, equals the same configuration trained
    # straight: its cosine schedule spanned all 600 updates from the first rung
    trial = rows[finished[0]]
    straight = fastrnn.train(book, out=tmp_path / "straight", steps=600, hidden=int(trial["hidden"]),
                             eta=float(trial["eta"]), schedule="cosine", seed=0, val_fraction=0.1, progress=False)
    assert same_parameters(out / finished[0], tmp_path / "straight")
    assert trial["trial"] + "," in (out / "results.csv").read_text() and straight.updates_trained == 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """A `dask scheduler` and two `dask worker` processes on 127.0.0.1."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen(dask + ["--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    for _ in range(2):
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                       "--no-dashboard"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
    yield address
    for proc in procs:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_sweep_on_a_running_scheduler_survives_a_killed_worker(tmp_path, book, cluster):
    from distributed import Client

    grid = ["--grid", "hidden=24,32"]
    steps = ["--steps", "3000"]
    calm = tmp_path / "calm"
    assert run(["sweep", str(book), *grid, *steps, "--out", str(calm), "--scheduler", cluster]).exit_code == 0
    disturbed = tmp_path / "disturbed"
    sweeper = subprocess.Popen([sys.executable, "-m", "fastrnn", "sweep", str(book), *grid, *steps, "--out",
                                str(disturbed), "--scheduler", cluster], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    # kill -9 a worker once a trial has a checkpoint past its start and has not finished
    deadline = time.time() + 120
    killed = False
    while not killed and time.time() < deadline and sweeper.poll() is None:
        for trial in ("t000", "t001"):
            last = disturbed / trial / "last.npz"
            if last.exists() and not (disturbed / trial / "summary.json").exists():
                try:
                    if fastrnn.load(last).update > 0:
                        with Client(cluster) as client:
                            pids = client.run(os.getpid)
                        os.kill(next(iter(pids.values())), signal.SIGKILL)
                        killed = True
                        break
                except fastrnn.FastrnnError:
                    pass  # being written
        time.sleep(0.05)
    stdout, stderr = sweeper.communicate(timeout=300)
    assert killed, "no trial was caught in the middle"
    assert sweeper.returncode == 0, stderr
    calm_rows, disturbed_rows = results(calm), results(disturbed)
    assert calm_rows.keys() == disturbed_rows.keys()
    for trial in calm_rows:
        assert disturbed_rows[trial]["best_val_bits_per_char"] == calm_rows[trial]["best_val_bits_per_char"]
        assert same_parameters(calm / trial, disturbed / trial)


def test_an_interrupted_sweep_resumes_and_skips_finished_trials(tmp_path, book):
    out = tmp_path / "sweep"
    args = [sys.executable, "-m", "fastrnn", "sweep", str(book), "--grid", "hidden=8,12,16", "--steps", "2000",
            "--out", str(out), "--workers", "1"]
    sweeper = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while not (out / "t000" / "summary.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(sweeper.pid, signal.SIGKILL)  # the sweep and its local cluster
    sweeper.wait()
    assert not (out / "results.csv").exists()
    first = (out / "t000" / "summary.json").stat().st_mtime_ns
    result = run(["sweep", "--resume", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    rows = results(out)
    assert all(row["status"] == "finished" and row["updates"] == "2000" for row in rows.values())
    assert (out / "t000" / "summary.json").stat().st_mtime_ns == first  # finished: not trained again
    straight = fastrnn.train(book, out=tmp_path / "straight", steps=2000, hidden=16, val_fraction=0.1,
                             progress=False)
    assert straight.updates_trained == 2000 and same_parameters(out / "t002", tmp_path / "straight")


def test_bad_sweeps_are_one_line_and_lose_nothing(tmp_path, book):
    out = tmp_path / "sweep"
    one_line_error(run(["sweep", str(book), "--grid", "colour=red", "--steps", "10", "--out", str(out)]), 2,
                   "cannot be swept")
    one_line_error(run(["sweep", str(book), "--grid", "hidden=8,big", "--steps", "10", "--out", str(out)]), 2,
                   "must be a int")
    one_line_error(run(["sweep", str(book), "--grid", "hidden=8", "--out", str(out)]), 2, "--steps")
    port = free_port()
    one_line_error(run(["sweep", str(book), "--grid", "hidden=8", "--steps", "10", "--out", str(out),
                        "--scheduler", f"tcp://127.0.0.1:{port}"]), 1, "cannot reach the Dask scheduler")
    one_line_error(run(["sweep", str(book), "--grid", "hidden=8", "--steps", "10", "--out", str(out),
                        "--scheduler", "host:notaport"]), 1, "cannot reach the Dask scheduler")
    one_line_error(run(["sweep", str(book), "--grid", "hidden=8", "--steps", "10", "--out", str(out),
                        "--scheduler-file", str(tmp_path / "none.json")]), 1, "no such scheduler file")
    with pytest.raises(fastrnn.OptionError, match="planned_updates is set by the sweep"):
        fastrnn.sweep(book, grid=["hidden=8"], steps=10, out=out, planned_updates=20)
    assert not out.exists()  # nothing was started, so nothing was written
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    one_line_error(run(["sweep", str(book), "--grid", "hidden=8", "--steps", "10", "--out", str(other)]), 1,
                   "not a sweep")
    assert (other / "notes.txt").read_text() == "mine" and sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    one_line_error(run(["sweep", "--resume", str(other)]), 1, "not a sweep")
    one_line_error(run(["sweep", "--resume", str(other), "--steps", "20"]), 2, "leave out --steps")


def test_without_dask_the_sweep_says_how_to_install_it(tmp_path, book):
    code = ("import sys; sys.modules['distributed'] = None\n"  # as if Dask were not installed
            "from fastrnn.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code, "sweep", str(book), "--grid", "hidden=8", "--steps", "10",
                             "--out", str(tmp_path / "sweep")], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        'Error: sweeps run on Dask, which is not installed: pip install "fastrnn[sweep]"']


def test_epochs_count_each_trials_own_chunks(tmp_path, book):
    rows = fastrnn.sweep(book, grid=["seq_length=10,25"], epochs=1, out=tmp_path / "sweep", workers=1)
    chars = len(make_text(3000)) - round(0.1 * len(make_text(3000)))  # the training part
    assert {row["seq_length"]: row["updates"] for row in rows} == {10: (chars - 1) // 10, 25: (chars - 1) // 25}


def test_a_failing_trial_is_recorded_last_and_the_others_go_on(tmp_path, book):
    chars = len(make_text(3000)) - round(0.1 * len(make_text(3000)))
    streams = (chars - 1) // 25 + 1  # one more than the book has chunks at seq_length 25; fine at 10
    rows = fastrnn.sweep(book, grid=["seq_length=10,25"], steps=5, streams=streams, hidden=8, out=tmp_path / "sweep",
                         workers=1)
    assert [row["seq_length"] for row in rows] == [10, 25]
    assert rows[0]["status"] == "finished" and rows[1]["status"].startswith("failed: ")
    assert "streams" in rows[1]["status"]
    with pytest.raises(fastrnn.OptionError):
        fastrnn.sweep(book, grid=["hidden=8"], steps=10, seed=3, out=tmp_path / "other")


def test_a_local_cluster_starts_on_a_busy_machine(tmp_path, book):
    # three busy processes per core: Dask's own start-up of its event loop's thread gives up after
    # 10 s, which a machine this loaded missed now and then
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3 * (os.cpu_count() or 1))]
    try:
        rows = fastrnn.sweep(book, grid=["hidden=8,12"], steps=10, out=tmp_path / "sweep", workers=2)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert [row["status"] for row in rows] == ["finished", "finished"]
