"""Progress of a training run, one display for the command line and the Python API.

On a terminal a bar redrawn in place; anywhere else (a log file, a Jupyter notebook's output)
a plain line every few seconds, which reads well in all of them. Each shows the update, the
epoch, the smooth loss, chars/s and the remaining time. (tqdm, the usual choice, writes
carriage returns into log files and needs ipywidgets for a bar in Jupyter; this needs
nothing.)
"""
from __future__ import annotations

import math
import sys
import time


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class ProgressDisplay:
    """A callable taking ``trainer.Progress`` reports and writing them to ``stream`` (stderr)."""

    def __init__(self, stream=None, every: float = 5.0, updates: bool = True):
        """``updates=False``: only the lines of ``say`` (quiet runs)."""
        self.show_updates = updates
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = 0.5 if self.tty else every
        self.last = -1e9

    def say(self, message: str) -> None:
        """A line of its own (what is being compiled, what is being trained)."""
        self.stream.write(message + "\n")
        self.stream.flush()

    def __call__(self, p) -> None:
        if not self.show_updates:
            return
        now = time.perf_counter()
        if now - self.last < self.every and p.update < p.total:
            return
        self.last = now
        left = (p.total - p.update) * p.seconds_per_update
        budget, val = p.budget_left, p.val_loss
        text = (f"update {p.update:,}/{p.total:,}  epoch {p.epoch}  smooth loss {p.smooth_loss:.3f}  "
                + (f"held-out {val / math.log(2):.3f} bits/char  " if val is not None else "")
                + f"{p.chars_per_s:,.0f} chars/s  {_duration(p.seconds)} elapsed, "
                + (f"{_duration(budget)} of the time limit left" if budget is not None else f"{_duration(left)} left"))
        if self.tty:
            width = 20
            fill = int(width * p.update / max(p.total, 1))
            self.stream.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {text}\x1b[K")
            if p.update >= p.total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
