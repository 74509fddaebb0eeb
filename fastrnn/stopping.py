"""Stopping a training run on request: a signal asks the loop to stop after the current kernel
call, where it writes a checkpoint; a second one stops at once."""
from __future__ import annotations

import signal
import sys
import threading


class StopRequest:
    """A context in which ``signals`` (SIGINT by default: Ctrl-C, a notebook's interrupt) ask a
    run to stop: calling the object says whether one came. A second SIGINT raises
    KeyboardInterrupt at once. Outside the main thread, where Python delivers no signals, it
    installs nothing and never asks."""

    def __init__(self, signals=(signal.SIGINT,), say=None):
        self.signals = signals
        self.say = say or (lambda message: print(message, file=sys.stderr, flush=True))
        self.signum = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        return self

    def _handle(self, signum, frame):
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        self.say("\nstopping after the current step (interrupt again to abort)...")

    def __call__(self) -> bool:
        return self.signum is not None

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False
