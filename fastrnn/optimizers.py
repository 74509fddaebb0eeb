"""The optimizers and the learning-rate schedules, declared once: each optimizer's state arrays
(checkpoints hold them under ``prefix + parameter name``) and the options it takes; the
learning rate as a function of the update number alone, so that a resumed run continues its
schedule exactly. The steps themselves are ``kernels/optim.py``'s.

Adding an optimizer: its step in ``kernels/optim.py`` (and ``OPTIMIZER_STEPS`` there), its
``Optimizer`` here, its NumPy step in ``reference.py``; its options, if new, in ``model.Hyper``
and the command line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Optimizer:
    name: str
    state: tuple[str, ...]  # checkpoint key prefixes of its arrays, each shaped like the parameters
    options: tuple[str, ...]  # the ``Hyper`` fields it takes besides eta and eps


OPTIMIZERS = {
    "adagrad": Optimizer("adagrad", ("m",), ()),  # "m" + name: the AdaGrad sums, as in every format
    "rmsprop": Optimizer("rmsprop", ("rmsprop_sq.",), ("alpha", "weight_decay")),
    "adam": Optimizer("adam", ("adam_m.", "adam_v."), ("beta1", "beta2", "weight_decay")),
}
# the defaults of the options some optimizers take (PyTorch's): giving one to an optimizer
# that does not take it is an error
OPTION_DEFAULTS = {"beta1": 0.9, "beta2": 0.999, "alpha": 0.99, "weight_decay": 0.0}
SCHEDULES = ("constant", "cosine", "step")


def optimizer_of(name: str) -> Optimizer:
    return OPTIMIZERS[name]


def learning_rates(hyper, first: int, count: int) -> np.ndarray:
    """The learning rates of updates first, first + 1, ..., first + count - 1 (counted from 0)
    under ``hyper``'s schedule, in float64:

    constant  eta (after ``warmup`` updates of linear warm-up from eta / (warmup + 1))
    cosine    after the warm-up, from eta down to min_eta along half a cosine over the updates
              up to ``schedule_updates``, then min_eta (nanoGPT's ``get_lr``)
    step      eta times decay for every ``decay_every`` updates done (char-rnn's)
    """
    u = np.arange(first, first + count, dtype=np.float64)
    eta, warmup = hyper.eta, hyper.warmup
    if hyper.schedule == "cosine":
        span = max(1, hyper.schedule_updates - warmup)
        ratio = np.clip((u - warmup) / span, 0.0, 1.0)
        rates = hyper.min_eta + 0.5 * (1.0 + np.cos(math.pi * ratio)) * (eta - hyper.min_eta)
    elif hyper.schedule == "step":
        rates = eta * hyper.decay ** np.floor(u / max(1, hyper.decay_every))
    else:
        rates = np.full(count, eta)
    if warmup:
        rates = np.where(u < warmup, eta * (u + 1) / (warmup + 1), rates)
    return rates
