"""Compile options shared by every kernel, in one place."""

# Fused multiply-add only: no flag that assumes away NaN or infinity, and no reordering of sums.
FASTMATH = {"contract"}
JIT = dict(cache=True, error_model="numpy", fastmath=FASTMATH)
# For functions made by a factory (one per dtype): Numba's cache keeps one index per name and
# source line, which the versions would share. They are compiled into the cached kernels that
# call them.
UNCACHED = dict(JIT, cache=False)
