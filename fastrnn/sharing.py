"""Sharing the machine with other busy processes: fewer threads while they run.

The threading layer's workers spin for a while each time they wait, which is what makes one run
alone fast (no sleep and wake-up between the parallel parts of an update) and what starves a
second run started beside it: two runs of two threads each on two cores kept 40 % of the
machine between them (benchmarks/side_by_side.py). Sleeping at once instead (OMP_WAIT_POLICY
passive) kept the machine shared but cost a run alone 40 % of its speed in float32.

So a run that picks its own thread count looks, between blocks of updates, at how many threads
of other processes are runnable and leaves them their cores: with c cores and r such threads it
runs on max(1, min(threads, c - r)). Results never depend on the thread count, so this changes
speed only. The count is the smallest of the last few looks, so that a daemon waking up for a
moment does not take a thread from a run alone.
"""
from __future__ import annotations

import contextlib
import os

import numba

LOOKS = 3  # a neighbour counts once it has been seen runnable this many looks in a row


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def runnable_elsewhere() -> int | None:
    """Threads of other processes that are running or waiting for a core now (Linux's
    /proc/loadavg counts all runnable threads, this process's own among them), or None where
    the system does not say."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        own = 0
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    # the state follows the parenthesised name, which may hold spaces
                    own += f.read().rsplit(")", 1)[1].split()[0] == "R"
            except OSError:
                continue  # a thread that ended meanwhile
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - max(own, 1))


class ThreadShare:
    """The thread count for the next block of updates of a run that may use up to ``threads``."""

    def __init__(self, threads: int):
        self.threads = threads
        self.cores = usable_cores()
        self._seen: list[int] = []

    def next_count(self) -> int:
        others = runnable_elsewhere()
        if others is None:
            return self.threads
        self._seen = (self._seen + [others])[-LOOKS:]
        busy = min(self._seen) if len(self._seen) == LOOKS else 0
        return max(1, min(self.threads, self.cores - busy))

    @contextlib.contextmanager
    def threads_for_block(self):
        """Numba's thread count set to ``next_count()`` inside, given back after."""
        numba.set_num_threads(self.next_count())
        try:
            yield
        finally:
            numba.set_num_threads(self.threads)
