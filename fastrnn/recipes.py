"""What a run trains with where it is not told: per cell, a recipe of defaults.

The rnn cell keeps the assignment's rule (100 units, 25-character chunks, one stream, float64,
AdaGrad at 0.1, each gradient element clipped to 5): its runs stay what they were, bit for bit.
The gated cells default to the best of the settings measured for 150 s of training on a
2-core machine (README, "Time to quality"): a few, one run each, then a sweep. The
input embedding of 256 took the LSTM from 1.546 to 1.495 nats/char held out on tiny
Shakespeare in 150 s (the GRU from 1.547 to 1.504), dropout 0.1 the LSTM to 1.487, and 384
units in place of 256 (at half the characters a second) the LSTM to 1.468-1.474 and the GRU to
1.482. Then ``fastrnn sweep`` with halving around the LSTM's recipe (eta 0.004 / 0.006, weight
decay 0 / 0.1, norm clip 1 / 5; 3,400 updates a trial) put Adam's weight decay of 0.1 at eta
0.004 first on both books (tiny Shakespeare with clip 1, the novel with clip 5; clip 1 and 5
within 0.008 of each other), and in 150 s it took the LSTM from 1.471 to 1.452 on tiny
Shakespeare and from 1.173 to 1.151 on the novel. The GRU's weight decay was not swept. An
option given always wins; a learning rate and a weight decay not given follow the
optimizer: the recipe's for the recipe's optimizer, else that optimizer's own defaults.

Dropout depends on how often the run will see its text (``dropout_for``): over 10 minutes,
about 25 epochs of tiny Shakespeare, every model overfitted it, and the LSTM with dropout 0.2
reached 1.467 nats/char where 0.1 reached 1.481 (one run each, one after the other). Where
0.1 was chosen, 150 s made about 7 epochs. Where between 7 and 25 epochs 0.2 starts to pay
was not measured: the switch is put at 12. The GRU takes none: with dropout 0.2 over those 10
minutes its training loss rose from 1.54 to 2.06 nats/char after the first 3,000 updates, and
its best held-out loss was 1.637, against 1.511 without dropout in an earlier session.
"""
from __future__ import annotations

from .cells import CELLS
from .settings import SETTINGS, STORED, OptionError, check_all, check_applies

# the settings a recipe gives, and each cell's values of them (``settings.Setting.by_cell``); a
# cell whose settings do not all name it has no recipe
RECIPE_SETTINGS = tuple(s for s in SETTINGS if s.by_cell)
RECIPES = {cell: {s.name: s.by_cell[cell] for s in RECIPE_SETTINGS} for cell in CELLS
           if all(cell in s.by_cell for s in RECIPE_SETTINGS)}
CLASSIC = RECIPES["rnn"]
# a run planning more epochs than this takes its cell's dropout for long runs, where it has one
LONG_RUN_EPOCHS = 12
LONG_RUN_DROPOUT = {"lstm": 0.2}
# the rate where the optimizer is given but not the rate: AdaGrad's is the assignment's; Adam's
# and RMSprop's are where the classic cell's sweeps found them best (README)
OPTIMIZER_ETA = {"adagrad": 0.1, "rmsprop": 0.002, "adam": 0.002}


def recipe_of(cell: str) -> dict:
    """The recipe of ``cell``; KeyError for a cell declared without one."""
    try:
        return RECIPES[cell]
    except KeyError:
        raise KeyError(f"the {cell} cell has no recipe: give it a value in every recipe setting's by_cell "
                       f"({', '.join(s.name for s in RECIPE_SETTINGS)})") from None


def with_defaults(cell: str, options: dict) -> dict:
    """``options`` (name -> value, None where not given) with the cell's recipe filled in for
    those of ``RECIPES[cell]`` that were not given, but for ``streams``: those not given stay
    None until the book's chunks are known (``fitted_streams``). A given ``clip`` keeps
    ``clip_norm`` off."""
    recipe = recipe_of(cell)
    out = dict(options)
    for name, value in recipe.items():
        if out.get(name) is None and name not in ("eta", "streams", "weight_decay"):
            out[name] = value
    if options.get("clip") is not None and options.get("clip_norm") is None:
        out["clip_norm"] = None
    same = out["optimizer"] == recipe["optimizer"]
    if out.get("eta") is None:
        out["eta"] = recipe["eta"] if same else OPTIMIZER_ETA.get(out["optimizer"], recipe["eta"])
    if out.get("weight_decay") is None and same:  # another optimizer's is its own default
        out["weight_decay"] = recipe["weight_decay"]
    return out


def fitted_streams(cell: str, chunks: int) -> int:
    """The cell's streams where none were given, for a book of ``chunks`` chunks: a short text
    gets as many streams as it has chunks."""
    return min(recipe_of(cell)["streams"], chunks)


def dropout_for(cell: str, epochs: float) -> float:
    """The cell's dropout where none was given, for a run of ``epochs`` passes over its text."""
    if epochs > LONG_RUN_EPOCHS and cell in LONG_RUN_DROPOUT:
        return LONG_RUN_DROPOUT[cell]
    return recipe_of(cell)["dropout"]


def run_settings(given: dict) -> dict:
    """``model.Hyper``'s fields of a new run from the options given (name -> value, None where
    not given): each checked against its declaration (``settings.check``), the cell's recipe
    and the defaults filling in the rest; OptionError naming the first option that cannot be
    used. ``streams`` not given stays None (``fitted_streams``)."""
    check_all(given)
    cell = "rnn" if given.get("cell") is None else given["cell"]
    picked = with_defaults(cell, dict(given, cell=cell))
    check_applies({**{k: v for k, v in picked.items() if k not in ("optimizer", "schedule")},
                   "optimizer": picked["optimizer"], "schedule": picked["schedule"]})
    if picked.get("clip") is not None and picked.get("clip_norm") is not None:
        raise OptionError("clip_norm", "clip each element (clip) or the global norm (clip_norm), not both")
    if picked["schedule"] == "cosine":
        eta = picked["eta"]
        picked["min_eta"] = eta / 10 if picked.get("min_eta") is None else picked["min_eta"]
        if not picked["min_eta"] <= eta:
            raise OptionError("min_eta", f"min_eta must be a number from 0 to eta ({eta:g}), not {picked['min_eta']!r}")
    if picked["schedule"] == "step":
        if picked.get("decay_every") is None:
            raise OptionError("decay_every", "the step schedule needs decay_every, the updates between its steps")
        picked["decay"] = 0.5 if picked.get("decay") is None else picked["decay"]
    out = {}
    for s in STORED:
        value = picked.get(s.name)
        if s.name == "streams" or value is not None:
            out[s.name] = value if value is None else s.type(value)
    return out
