"""Numba kernels: the per-timestep loops of the cells, the optimizer, the training loop and
the sampler, as layers, each importing only those above it in this list:

    simd.py       explicit vector loads, stores and multiply-adds (LLVM intrinsics)
    linalg.py     matmul_add and its register tiles; copies and transposes
    mathfn.py     exp, tanh, the sigmoid and the row softmax in the workspace's precision
    workspace.py  the named buffers (Workspace, StackWorkspace, RunState) and their allocators
    dropout.py    dropout's masks, drawn from (seed, update, stream)
    embedding.py  an input embedding folded into the one-hot input weights, and its gradient
    rnn.py        the classic cell: parameter views, rnn_forward / rnn_backward,
                  chunk_loss_and_grads; and the rnn's step in a stack
    lstm.py, gru.py   each cell's step in a stack: its gates forward and backward
    stack.py      a stack of layers of any cell and the output layer over one chunk, compiled
                  per cell (``kernels_for``)
    optim.py      the clips and the optimizers (AdaGrad, RMSprop, Adam) over the flat buffer
    loop.py       the training loop over chunks, one stream or many (serial and parallel
                  builds, per cell)
    sampler.py    sampling text and scoring it

``config.py`` holds the compile options every layer uses. Kernels never raise or print: the
Python callers check shapes, dtypes and finiteness. Random numbers come in as arrays.

Arguments, everywhere: outputs, workspaces, inputs, parameters, then sizes and
hyperparameters. A NamedTuple of arrays (``Workspace``, ``RunState``) stands for its arrays in
that order.

Adding a cell (what the GRU touched, after the LSTM): ``kernels/gru.py`` (its step pair,
``gru_forward_step`` / ``gru_backward_step``), one line in ``stack.STEPS``, a ``Cell`` in
``cells.CELLS``, its step pair in ``reference.STEPS`` and in ``gradients._BATCHED_STEPS`` (the
extended-precision loss of the gradient check), and its step in ``web/sampler.js``. The
products, the layers, the loop, the sampler and the scorer are every cell's.
Adding an optimizer: ``kernels/optim.py`` gains its step (the signature of ``adagrad_step``)
and its entry in ``OPTIMIZER_STEPS``, ``optimizers.py`` the declaration of its state arrays,
``reference.py`` its NumPy step; an option of its own is a field of ``optim.OptimizerOptions``
and of ``model.Hyper``, by the same name. The loop compiles a build per optimizer
(``loop.train_loops``).
The training loop reaches the model through six hooks (``loop.py``) and the optimizer through
``step_and_keep_best``.

Compiled code is cached on disk in a directory named by a hash of this package's sources and
of the CPU compiled for (``CACHE_DIR``, under ``CACHE_ROOT``; ``paths.py`` says where): an edit
to any layer (a helper that other kernels inline included) gives a new directory, so code
compiled from other sources is never served. Where it cannot be written (a read-only home, a
full disk, a directory others can write), the kernels compile in memory (``CACHE_WRITABLE``
False), with one warning line.
"""
import sys

from numba.core import config as _numba_config

from .. import paths

CACHE_ROOT = paths.kernel_cache_root()
CACHE_DIR = paths.kernel_cache_dir()
_why = paths.kernel_cache_problem()
CACHE_WRITABLE = _why is None
if not CACHE_WRITABLE:
    print(f"warning: cannot keep compiled code in {CACHE_DIR} ({_why}): compiling in memory, again in every "
          f"process (set NUMBA_CACHE_DIR or FASTRNN_DATA to a writable directory)", file=sys.stderr, flush=True)

# Numba picks a function's cache directory when the function is decorated: set it for the
# decorators below, then give it back, so other packages' caches stay where they were.
_before = _numba_config.CACHE_DIR
_numba_config.CACHE_DIR = CACHE_DIR
from . import config  # noqa: E402

config.JIT["cache"] = CACHE_WRITABLE  # before any kernel is decorated with it
try:
    from . import (config, dropout, embedding, gru, linalg, loop, lstm, mathfn, optim, rnn, sampler,  # noqa: F401
                   simd, stack, workspace)
finally:
    _numba_config.CACHE_DIR = _before
