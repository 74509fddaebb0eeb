"""Every setting of a run, declared once.

A ``Setting`` holds a setting's name, type, default (per cell where the cell's recipe differs),
range, help text, its group (``model``, ``optimizer`` or ``run``), whether a resumed run may
change it and whether a sweep may vary it, and where it applies (the optimizers and schedules
that take it, or a condition on the other settings). From ``SETTINGS`` come:

- the options of ``fastrnn train`` (``cli.py``), their help and the bracketed cell defaults;
- the checks of ``fastrnn.train``'s keyword arguments (``check``), one message for each kind of
  value, the same at the command line and in Python;
- ``model.Hyper``, the record every checkpoint keeps (the ``model`` and ``optimizer`` groups),
  and the checks of a checkpoint's or JSON model's record (``hyper_problem``);
- the cells' recipes (``recipes.RECIPES``) and the settings a sweep may vary (``SWEEPABLE``);
- the rows of a report, which name only the settings a run uses (``applies``).

Adding a setting: one entry here, plus the code that uses it. The public functions
(``fastrnn.train``) keep explicit, documented signatures; a test holds them to this list.
"""
from __future__ import annotations

import math
import numbers
import textwrap
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .cells import CELLS
from .errors import FastrnnError
from .formats import FORMATS
from .optimizers import OPTIMIZERS, SCHEDULES

MODEL, OPTIMIZER, RUN = "model", "optimizer", "run"
GROUPS = (MODEL, OPTIMIZER, RUN)
DTYPES = ("float64", "float32")


class OptionError(FastrnnError, ValueError):
    """An option (a keyword argument; a command-line option) with a value that cannot be used.
    ``option`` is its name."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option

    def __reduce__(self):  # pickled whole: raised on a Dask worker, it reaches the sweep intact
        return type(self), (self.option, str(self))


@dataclass(frozen=True)
class Setting:
    """One setting. ``default`` is what a run takes where nothing else decides (and what a
    checkpoint that lacks the setting means); ``by_cell`` the cells' recipes where they take it
    (``recipes.py``). A number's range is ``low``..``high``, each end open or closed."""

    name: str
    type: type
    default: object
    help: str
    group: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = True
    by_cell: dict = field(default_factory=dict)
    resumable: bool = False  # a resumed run may be given it anew
    sweepable: bool = False  # a sweep's grid may vary it
    option: bool = True  # a train option (else only kept in the record: eps, schedule_updates)
    schedules: tuple = ()  # it belongs to these schedules only (empty: to every one)
    when: Callable | None = None  # applies only where this is true of the run's settings
    default_text: str = ""  # the bracketed default of --help, where the defaults need words
    metavar: str | None = None

    @property
    def optimizers(self) -> tuple[str, ...]:
        """The optimizers that take it; empty where it is not an optimizer's own option."""
        return tuple(name for name, opt in OPTIMIZERS.items() if self.name in opt.options)

    @property
    def stored(self) -> bool:
        """Kept in every checkpoint's ``Hyper``."""
        return self.group in (MODEL, OPTIMIZER)

    def applies(self, run) -> bool:
        """Whether a run with these settings (attributes: a ``Hyper``) uses this one."""
        if self.optimizers and run.optimizer not in self.optimizers:
            return False
        if self.schedules and run.schedule not in self.schedules:
            return False
        return self.when is None or bool(self.when(run))

    def what(self) -> str:
        """The values it takes, as the end of "NAME must be ..."."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.type is bool:
            return "true or false"
        if self.type is int:
            return "a positive integer" if self.low == 1 else "a non-negative integer"
        if self.high is None or self.high == math.inf:
            return "a positive number" if self.low_open else "a non-negative number"
        return (f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}")

    def valid(self, value) -> bool:
        """Whether ``value`` is one this setting takes (its type and range)."""
        if self.choices:
            return isinstance(value, str) and value in self.choices
        if self.type is str:
            return isinstance(value, str)
        if self.type is bool:
            return isinstance(value, (bool, np.bool_))
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.type is int and not isinstance(value, numbers.Integral):
            return False
        if not math.isfinite(value) and not (value == math.inf and self.high == math.inf and not self.high_open):
            return False
        if self.low is not None and not (value > self.low if self.low_open else value >= self.low):
            return False
        if self.high is not None and not (value < self.high if self.high_open else value <= self.high):
            return False
        return True

    def help_with_defaults(self) -> str:
        """The help text and, where the cells' recipes differ or the default needs words, the
        defaults in brackets [rnn's; gru's and lstm's] (``fastrnn train --help``)."""
        if self.default_text:
            return f"{self.help} [{self.default_text}]"
        if self.by_cell:
            values = list(dict.fromkeys("none" if v is None else f"{v:g}" if isinstance(v, float) else str(v)
                                        for v in self.by_cell.values()))
            return f"{self.help} [{'; '.join(values)}]"
        if self.optimizers:
            return f"{self.help} [{self.default:g}]"
        return self.help

    def cell_default(self, cell: str):
        """The default a run of ``cell`` takes where it is not given."""
        return self.by_cell.get(cell, self.default)


def _gated(rnn, gated, lstm=None) -> dict:
    """A recipe's values: the rnn cell's (the assignment's) and the gated cells'."""
    return {"rnn": rnn, "gru": gated, "lstm": gated if lstm is None else lstm}


def _int(name, default, help, group, low=1, **more) -> Setting:
    return Setting(name, int, default, help, group, low=low, **more)


def _positive(name, default, help, group, **more) -> Setting:
    return Setting(name, float, default, help, group, low=0.0, low_open=True, high=math.inf, **more)


SETTINGS: tuple[Setting, ...] = (
    # the model
    Setting("cell", str, "rnn", "The recurrent cell: rnn (with one layer, the assignment's model), gru or lstm "
            "(PyTorch's maths). Options not given take the cell's defaults, in brackets [rnn; gru, lstm].", MODEL,
            choices=tuple(CELLS), sweepable=True),
    _int("layers", 1, "Layers of the cell, each of --hidden units, each fed by the h of the one below.", MODEL,
         sweepable=True),
    _int("hidden", 100, "Hidden size m.", MODEL, by_cell=_gated(100, 384), sweepable=True),
    _int("seq_length", 25, "Characters per chunk.", MODEL, by_cell=_gated(25, 64), sweepable=True),
    _int("embedding", 0, "Width of an input embedding before the first layer (PyTorch's nn.Embedding; 0: one-hot "
         "inputs).", MODEL, low=0, by_cell=_gated(0, 256), sweepable=True, metavar="D"),
    Setting("dropout", float, 0.0, "Probability of zeroing each unit of a layer's output on its way to the layer "
            "above and the output layer (not the recurrent connections); off when sampling and scoring.", MODEL,
            low=0.0, high=1.0, by_cell=_gated(0.0, 0.0, 0.1), sweepable=True,
            default_text="0; gru 0, lstm 0.1, or 0.2 for a run of more than 12 epochs"),
    _positive("sigma", 0.01, "Standard deviation of the rnn cell's initial weights (gru, lstm: PyTorch's "
              "U(-1/sqrt(m), 1/sqrt(m))).", MODEL, sweepable=True, when=lambda run: CELLS[run.cell].init == "normal"),
    _int("seed", 0, "Random seed.", MODEL, low=0, sweepable=True),
    Setting("dtype", str, "float64", "Numbers of the model and its arithmetic; float32 is faster.", MODEL,
            choices=DTYPES, by_cell=_gated("float64", "float32"), sweepable=True),
    _int("streams", 1, "Chunks per update, from positions spread evenly through the book; their gradients are "
         "averaged (1: the classic algorithm).", MODEL, by_cell=_gated(1, 32), sweepable=True),
    Setting("documents", bool, False, "The book is documents (the lines of a list, tweets): each is read from the "
            "start state and followed by an end marker the model learns to predict, in an order shuffled every "
            "epoch (set by the format).", MODEL, option=False),
    _int("restart_every", 0, "Every this many updates, start each stream afresh (h = 0) at a random place, so that "
         "h = 0 is not only the book's start to the model (0: never, the classic walk).", MODEL, low=0,
         sweepable=True),
    # the optimizer, its schedule and its clip
    Setting("optimizer", str, "adagrad", "AdaGrad (the assignment's), or PyTorch's RMSprop or Adam.", OPTIMIZER,
            choices=tuple(OPTIMIZERS), by_cell=_gated("adagrad", "adam"), sweepable=True),
    _positive("eta", 0.1, "Learning rate of every optimizer, the schedule's peak.", OPTIMIZER,
              by_cell=_gated(0.1, 0.004), sweepable=True,
              default_text="0.1; 0.004; with another optimizer than the cell's: AdaGrad 0.1, RMSprop and Adam 0.002"),
    Setting("beta1", float, 0.9, "Adam's first-moment decay.", OPTIMIZER, low=0.0, high=1.0),
    Setting("beta2", float, 0.999, "Adam's second-moment decay.", OPTIMIZER, low=0.0, high=1.0),
    Setting("alpha", float, 0.99, "RMSprop's smoothing constant.", OPTIMIZER, low=0.0, high=1.0),
    Setting("weight_decay", float, 0.0, "Decoupled weight decay of Adam and RMSprop (AdamW's).", OPTIMIZER, low=0.0,
            high=math.inf, by_cell=_gated(None, 0.0, 0.1), sweepable=True,
            default_text="none; gru 0, lstm 0.1 with Adam, else 0"),
    Setting("schedule", str, "constant", "The learning rate by update: constant, cosine to --min-eta over the run, "
            "or times --decay every --decay-every updates.", OPTIMIZER, choices=SCHEDULES,
            by_cell=_gated("constant", "cosine"), sweepable=True),
    Setting("min_eta", float, 0.0, "Where the cosine schedule ends.", OPTIMIZER, low=0.0, high=math.inf,
            schedules=("cosine",), default_text="eta / 10"),
    _int("warmup", 0, "Updates of linear warm-up to eta, before any schedule.", OPTIMIZER, low=0, sweepable=True),
    Setting("decay", float, 1.0, "The step schedule's factor.", OPTIMIZER, low=0.0, high=1.0, low_open=True,
            high_open=False, schedules=("step",), default_text="0.5"),
    _int("decay_every", 0, "Updates between the step schedule's factors.", OPTIMIZER, schedules=("step",)),
    _positive("clip", 5.0, "Clip each gradient element to [-clip, clip].", OPTIMIZER,
              when=lambda run: not run.clip_norm, default_text="5; none"),
    Setting("clip_norm", float, 0.0, "Clip the gradient's global norm instead.", OPTIMIZER, low=0.0, low_open=True,
            high=math.inf, by_cell=_gated(None, 5.0), sweepable=True, when=lambda run: run.clip_norm,
            default_text="none; 5"),
    _positive("eps", 1e-8, "The optimizers' epsilon.", OPTIMIZER, option=False),
    _int("schedule_updates", 0, "The update the cosine schedule reaches min_eta at, fixed when the run starts.",
         OPTIMIZER, low=0, option=False, schedules=("cosine",)),
    # the run: its length, its files, its book
    _int("epochs", None, "Total passes over the book.", RUN, resumable=True, default_text="default: 5 unless --steps"),
    _int("steps", None, "Total number of updates (with --epochs: whichever is fewer).", RUN, low=0, resumable=True),
    Setting("time_limit", str, None, "Train for this long instead of --steps/--epochs (150s, 2.5m, 1h; compilation "
            "and validation not counted): the updates that fit, measured here before the run starts, become its "
            "length.", RUN, metavar="DURATION"),
    _int("planned_updates", None, "Train the first --steps updates of a run planned for this many (a cosine "
         "schedule spans them; the recipe's dropout follows their epochs).", RUN),
    _int("threads", None, "Cores for the streams; results do not depend on it.", RUN, resumable=True,
         default_text="default: all"),
    _int("sample_every", 10_000, "Updates between samples in samples.txt (0: none).", RUN, low=0, resumable=True),
    _int("sample_length", 200, "Characters of each sample in samples.txt.", RUN, resumable=True),
    _int("log_every", 100, "Updates between rows of metrics.csv.", RUN, resumable=True),
    _int("checkpoint_every", 10_000, "Updates between checkpoints (0: only at the end).", RUN, low=0,
         resumable=True),
    Setting("val_fraction", float, 0.0, "Fraction at the end of the book held out for validation (best.npz is then "
            "best on it).", RUN, low=0.0, high=0.5),
    _int("val_every", None, "Updates between validation losses.", RUN, resumable=True,
         default_text="10000; with --time-limit, a tenth of the run, at most an epoch"),
    Setting("encoding", str, "utf-8", "Text encoding of BOOK.", RUN, resumable=True),
    Setting("val_file", str, None, "Score this held-out file instead of a fraction of the book (in the book's "
            "format; characters the model lacks are skipped).", RUN, metavar="FILE"),
    Setting("format", str, "auto", "BOOK is a text file, a list (lines: each non-empty line one document, read "
            "from the start state), tweets in JSON, or a directory of .txt files (auto: by what BOOK is and its "
            "name).", RUN, choices=FORMATS, resumable=True),
)
BY_NAME = {s.name: s for s in SETTINGS}
STORED = tuple(s for s in SETTINGS if s.stored)  # ``model.Hyper``'s fields
OPTIONS = tuple(s for s in SETTINGS if s.option)  # ``fastrnn.train``'s keyword arguments of settings
SWEEPABLE = {s.name: s.type for s in SETTINGS if s.sweepable}
# fixed for the life of a run: what ``--resume`` refuses
FIXED_ON_RESUME = tuple(s.name for s in OPTIONS if not s.resumable)


def setting(name: str) -> Setting:
    return BY_NAME[name]


def check(name: str, value) -> None:
    """OptionError unless ``value`` is one the setting ``name`` takes; None (not given) passes."""
    s = BY_NAME[name]
    if value is not None and not s.valid(value):
        raise OptionError(name, f"{name} must be {s.what()}, not {value!r}")


def check_all(values: dict) -> None:
    """``check`` of every setting in ``values`` (name -> value or None)."""
    for name, value in values.items():
        check(name, value)


def check_applies(values: dict) -> None:
    """OptionError for an option given (not None) to an optimizer or schedule that does not take
    it: ``values`` holds the run's ``optimizer`` and ``schedule``."""
    for name, value in values.items():
        s = BY_NAME.get(name)
        if s is None or value is None:
            continue
        if s.optimizers and values["optimizer"] not in s.optimizers:
            raise OptionError(name, f"{name} is an option of {' and '.join(s.optimizers)}, "
                                    f"not of {values['optimizer']}")
        if s.schedules and values["schedule"] not in s.schedules:
            raise OptionError(name, f"{name} belongs to the {' and '.join(s.schedules)} schedule, "
                                    f"not to {values['schedule']}")


def hyper_problem(fields: dict) -> str | None:
    """What is wrong with a checkpoint's record of its settings (``Hyper``'s fields), or None."""
    for s in STORED:
        value = fields.get(s.name, s.default)
        off = type(value) is type(s.default) and value == s.default  # e.g. clip_norm 0: no norm clip
        if off or s.valid(value):
            continue
        if s.choices:
            return f"unknown {s.name} {value!r} (this fastrnn has {', '.join(s.choices)})"
        if not (off or s.valid(value)):
            return f"hyperparameter {s.name} must be {s.what()}, not {value!r}"
    return None


def used(hyper) -> list[Setting]:
    """The stored settings a run with ``hyper`` uses, in declaration order (a report's rows)."""
    return [s for s in STORED if s.applies(hyper)]


def check_count(name: str, value, least: int = 1) -> None:
    """OptionError unless ``value`` is an integer of at least ``least`` (1 or 0); None passes.
    For the options of commands that are not settings (``--num``, ``--chunks``)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least
    if value is not None and not ok:
        raise OptionError(name, f"{name} must be {'a positive' if least else 'a non-negative'} integer, not {value!r}")


def check_positive(name: str, value) -> None:
    """OptionError unless ``value`` is a finite number above 0; None passes."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value < math.inf
    if value is not None and not ok:
        raise OptionError(name, f"{name} must be a positive number, not {value!r}")


def parameter_docs(names, indent: str = "    ") -> str:
    """numpydoc entries of the settings ``names`` (a public function's parameters), written from
    the declaration, so that a setting's help is written once."""
    lines = []
    for name in names:
        s = BY_NAME[name]
        kind = f"{{{', '.join(repr(c) for c in s.choices)}}}" if s.choices else s.type.__name__
        lines += [f"{indent}{name} : {kind}, optional",
                  textwrap.fill(s.help_with_defaults(), 96, initial_indent=indent + "    ",
                                subsequent_indent=indent + "    ")]
    return "\n".join(lines) + "\n"
