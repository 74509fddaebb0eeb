"""fastrnn: train a vanilla character-level RNN on a book, fast, on a CPU.

    import fastrnn
    run = fastrnn.train("book.txt", epochs=2, val_fraction=0.1)
    print(run.best_model.sample(1000, seed=1))
    run.plot()

Importing fastrnn is light (no Numba): the kernels are imported, and compiled on a first run,
when something needs them.
"""

__version__ = "0.1.0"

from .api import OptionError, Run, Sample, gradcheck, resume, train  # noqa: E402
from .errors import FastrnnError  # noqa: E402
from .sweeps import sweep  # noqa: E402
from .trained import Model, Score, load  # noqa: E402
from .trainer import Interrupted  # noqa: E402

__all__ = ["FastrnnError", "Interrupted", "Model", "OptionError", "Run", "Sample", "Score", "gradcheck", "load",
           "resume", "sweep", "train"]
