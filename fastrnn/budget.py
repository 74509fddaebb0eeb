"""A time budget for training: "150s", "2.5m", "1h" read as seconds, and the number of updates
that fit in it, from the speed measured on the run's own model before the run starts.

The budget becomes a number of updates once, before the first update: a schedule that needs
the run's length (cosine) then has it from the start, the run records it, ``--resume``
continues to it exactly, and ``--steps`` of that number reproduces the run bit for bit. The
run still stops when its training time reaches the budget, should the machine slow down.
"""
from __future__ import annotations

import re
import time

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
MIN_UPDATES = 16  # one block of updates between progress reports
CALIBRATION_SECONDS = 3.0  # at most, and at most 3 % of the budget
VALIDATIONS = 10  # of a run, at least, unless told


def parse_duration(value) -> float:
    """Seconds of "150s", "2.5m", "1h", "90" (seconds) or a positive number; ValueError
    otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", str(value))
        if not match:
            raise ValueError(f"time limit {value!r}: give a duration such as 150s, 2.5m or 1h")
        seconds = float(match.group(1)) * UNITS[match.group(2) or "s"]
    if not 0 < seconds < float("inf"):
        raise ValueError(f"time limit {value!r}: must be more than zero")
    return seconds


def updates_within(trainer_factory, seconds: float) -> tuple[int, float]:
    """(updates that fit in ``seconds`` of training, seconds per update), timed on a throwaway
    trainer from ``trainer_factory()`` for up to CALIBRATION_SECONDS (3 % of short budgets);
    ValueError where fewer than MIN_UPDATES fit."""
    trainer = trainer_factory()
    trainer.run(2)  # the first call of a build pays its start-up (threads, first touches of memory)
    spent, done, count = 0.0, 0, 4
    limit = min(CALIBRATION_SECONDS, 0.03 * seconds)
    while spent < limit:
        t0 = time.perf_counter()
        trainer.run(count)
        spent += time.perf_counter() - t0
        done += count
        count = min(count * 2, 1 << 16)
    per_update = spent / done
    updates = int(seconds / per_update)
    if updates < MIN_UPDATES:
        raise ValueError(f"a time limit of {seconds:g} s fits {updates} updates of this model here "
                          f"({per_update:.3g} s each); give at least {MIN_UPDATES * per_update:.2g} s")
    return updates, per_update


def validation_interval(updates: int, per_epoch: int) -> int:
    """Updates between the validations of a run of ``updates`` updates, ``per_epoch`` to an
    epoch: a tenth of the run, or an epoch where that is fewer, so that best.npz is the best of
    ten validations at least and of one an epoch (a short text overfits within a few epochs of
    its best: 3 minutes on 114,000 characters of tweets were 68-86 epochs of the recipes'
    models, whose held-out loss was lowest after 9-14)."""
    return max(1, min(-(-updates // VALIDATIONS), per_epoch))
