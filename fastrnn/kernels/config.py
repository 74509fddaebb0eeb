"""Compile options shared by every kernel, in one place."""

# Fused multiply-add only: no flag that assumes away NaN or infinity, and no reordering of sums.
FASTMATH = {"contract"}
JIT = dict(cache=True, error_model="numpy", fastmath=FASTMATH)
# For functions made by a factory (one per dtype): Numba's cache keeps one index per name and
# source line, which the versions would share. They are compiled into the cached kernels that
# call them.
UNCACHED = dict(JIT, cache=False)


def compiled_as(func, name, namespace=None, **options):
    """``func`` compiled under its own name, its globals looked up in ``namespace`` (default:
    its module's): Numba's cache keeps one entry per name and source line, which two builds of
    one function with different options or callees would share."""
    import types

    from numba import njit
    from numba.core import config as numba_config

    from . import CACHE_DIR

    copy = types.FunctionType(func.__code__, func.__globals__ if namespace is None else namespace, name,
                              func.__defaults__, func.__closure__)
    copy.__qualname__ = name
    copy.__doc__ = func.__doc__
    # Numba picks the cache directory at decoration: this package's, named by its sources'
    # hash (copies made after the import would otherwise be cached beside the source, keyed on
    # their own file's stamp alone, and served stale after an edit of a function they call)
    before = numba_config.CACHE_DIR
    numba_config.CACHE_DIR = CACHE_DIR
    try:
        return njit(**options)(copy)
    finally:
        numba_config.CACHE_DIR = before


def compiled_copies(funcs, suffix, module_globals, overrides, inline=()):
    """Each of ``funcs`` compiled as ``<name>_<suffix>`` (its leading underscore dropped), each
    looking up globals in ``module_globals`` updated with ``overrides`` and with the copies
    made before it under their names: one body, one build per cell. Those named in ``inline``
    are inlined where other kernels call them (small ones: less to compile). Returns
    {name: copy}."""
    namespace = dict(module_globals)
    namespace.update(overrides)
    built = {}
    for func in funcs:
        public = func.__name__.lstrip("_")
        options = dict(inline="always") if func.__name__ in inline else JIT
        namespace[public] = built[public] = compiled_as(func, f"{public}_{suffix}", namespace, **options)
    return built
