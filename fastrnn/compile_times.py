"""How long each kernel build took to compile on this machine, so that the message shown while
one compiles can say how long to expect. Kept beside the compiled code, across versions (a new
version compiles about as long as the one before); a cache that cannot be written keeps none."""
from __future__ import annotations

import json
import os

FILE = "compile_seconds.json"


class CompileTimes:
    def __init__(self):
        from .kernels import CACHE_ROOT

        self.path = os.path.join(CACHE_ROOT, FILE)
        try:
            with open(self.path) as f:
                self.seconds = {k: float(v) for k, v in json.load(f).items()}
        except (OSError, ValueError, AttributeError, TypeError):
            self.seconds = {}

    def hint(self, key: str) -> str:
        """"; about N s on this machine" after a compilation of ``key`` measured here before, else ""."""
        seconds = self.seconds.get(key)
        return f"; about {seconds:.0f} s on this machine" if seconds else ""

    def record(self, key: str, seconds: float) -> None:
        from .files import atomic_write

        self.seconds[key] = round(seconds, 1)
        try:
            with atomic_write(self.path, "w") as f:
                json.dump(self.seconds, f, indent=1, sort_keys=True)
        except OSError:
            pass
