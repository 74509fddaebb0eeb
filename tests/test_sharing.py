"""Sharing the machine: a run that picks its own threads leaves cores to other busy processes,
with the same results bit for bit, and gives Numba's thread count back. (How much of the
machine runs side by side keep is measured in benchmarks/side_by_side.py.)"""
import subprocess
import sys
import time
from dataclasses import replace

import numba
import numpy as np
import pytest

from fastrnn import sharing
from fastrnn.engine import Trainer
from fastrnn.model import with_streams

from helpers import small_state


@pytest.fixture
def busy_process():
    """A process that keeps one core busy while the test runs."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.3)
    yield proc
    proc.kill()
    proc.wait()


def test_a_busy_process_is_seen_and_left_its_core(busy_process):
    if sharing.runnable_elsewhere() is None:
        pytest.skip("this system does not say how many threads are runnable")
    share = sharing.ThreadShare(threads=max(2, sharing.usable_cores()))
    counts = [share.next_count() for _ in range(sharing.LOOKS)]
    assert counts[-1] <= share.cores - 1


def test_a_neighbour_counts_once_seen_in_every_look_and_stops_counting_at_once(monkeypatch):
    seen = iter([0, 1, 1, 1, 1, 0, 3])
    monkeypatch.setattr(sharing, "runnable_elsewhere", lambda: next(seen))
    share = sharing.ThreadShare(threads=4)
    share.cores = 4
    assert [share.next_count() for _ in range(7)] == [4, 4, 4, 3, 3, 4, 4]


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two cores")
def test_sharing_changes_threads_not_results(text, busy_process):
    state, book = small_state(text * 4, hidden=8, seq_length=10)
    state.hyper = replace(state.hyper, streams=16)
    state = with_streams(state, book.shape[0])
    numba.set_num_threads(2)
    results = []
    for share in (False, True):
        trainer = Trainer(state.copy(), book, share_machine=share)
        losses = np.concatenate([trainer.run(3)[0] for _ in range(10)])  # a look before each
        results.append((losses, trainer.state().params))
        assert numba.get_num_threads() == 2
    assert np.array_equal(results[0][0], results[1][0]) and np.array_equal(results[0][1], results[1][1])
