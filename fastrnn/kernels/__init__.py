"""Numba kernels: the per-timestep loops of the char-RNN, the optimizer, the training loop and
the sampler, as layers, each importing only those above it in this list:

    simd.py       explicit vector loads, stores and multiply-adds (LLVM intrinsics)
    linalg.py     matmul_add and its register tiles; copies and transposes
    mathfn.py     exp, tanh and the row softmax in the workspace's precision
    workspace.py  the named buffers (Workspace, RunState) and their one allocator (no kernels)
    rnn.py        the cell: parameter views, rnn_forward / rnn_backward, chunk_loss_and_grads
    optim.py      clip + AdaGrad over the flat parameter buffer
    loop.py       the training loop over chunks, one stream or many (serial and parallel builds)
    sampler.py    sampling text and scoring it

``config.py`` holds the compile options every layer uses. Kernels never raise or print: the
Python callers check shapes, dtypes and finiteness. Random numbers come in as arrays.

Arguments, everywhere: outputs, workspaces, inputs, parameters, then sizes and
hyperparameters. A NamedTuple of arrays (``Workspace``, ``RunState``) stands for its arrays in
that order.

Adding a cell or an optimizer (what each would touch):
- A GRU: ``kernels/gru.py`` with ``param_views``, ``transposes_into`` (or its own derived
  layouts) and ``chunk_loss_and_grads`` of the same signatures as ``rnn.py``'s; its maths in
  plain NumPy in ``reference.py``; its parameter shapes in ``model.Layout``; in ``loop.py``,
  the import that names the cell (``from .rnn import ...``) made a choice between the two;
  and in ``sampler.py`` its step, which ``sample_chars`` writes out for the RNN, and the
  forward pass ``text_loss`` imports. The workspace serves any cell whose per-timestep buffers fit (n+1, G, m) and
  (n, G, K); a GRU's gates need a (n, G, 3m) buffer, one more field in ``Workspace``.
- Adam: ``kernels/optim.py`` gains ``adam_update`` beside ``adagrad_update`` (its state, a
  second moment, is one more (2, P) array in ``RunState``), ``reference.py`` its NumPy step,
  and ``loop.step_and_keep_best`` the call that picks it.
The training loop calls the cell and the optimizer through those two names only
(``chunk_loss_and_grads``, ``step_and_keep_best``).

Compiled code is cached on disk in a directory named by a hash of this package's sources
(``CACHE_DIR``): an edit to any layer (a helper that other kernels inline included) gives a
new directory, so code compiled from other sources is never served.
"""
import hashlib
import os

from numba.core import config as _numba_config


def _sources_hash() -> str:
    """sha256 of every source file of this package, in name order, as 16 hex digits."""
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            digest.update(name.encode() + b"\0")
            with open(os.path.join(here, name), "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:16]


def _cache_dir() -> str:
    """Under NUMBA_CACHE_DIR when set, else under the data directory ($FASTRNN_DATA)."""
    from ..demo import data_dir

    root = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(data_dir(), "kernels")
    return os.path.join(root, f"fastrnn-{_sources_hash()}")


CACHE_DIR = _cache_dir()

# Numba picks a function's cache directory when the function is decorated: set it for the
# decorators below, then give it back, so other packages' caches stay where they were.
_before = _numba_config.CACHE_DIR
_numba_config.CACHE_DIR = CACHE_DIR
try:
    from . import config, linalg, loop, mathfn, optim, rnn, sampler, simd, workspace  # noqa: F401
finally:
    _numba_config.CACHE_DIR = _before
