"""Hyperparameters, the run's state and checkpoints.

The parameters live in one flat buffer laid out by ``cells.Layout`` (the classic cell's W, U,
V, b, c; a stack's arrays under PyTorch's names), so the optimizer and the gradient clip run
over one array. Checkpoints hold every array in its own orientation, so the storage order is
the buffer's business.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass, field, make_dataclass

import numpy as np

from .cells import Layout
from .errors import CheckpointError
from .export import read_model_json
from .files import atomic_write
from .formats import END_OF_TEXT
from .optimizers import optimizer_of
from .settings import STORED, hyper_problem
from .text import Vocab

PARAM_NAMES = ("W", "U", "V", "b", "c")  # the classic cell's
# 2: ``next_char`` (the input that follows the carried hidden state) added; 1 lacks it.
# 3: ``cell`` and ``layers`` in the hyperparameters; a stack's arrays under PyTorch's names,
#    its carried h (and c) of shape (layers, m). Files of formats 1 and 2 are classic models.
# 4: ``embedding`` (an input embedding's width) in the hyperparameters, and ``embedding.weight``
#    with it; files of format 3 have none.
FORMAT_VERSION = 4


def _layout(self, K: int) -> Layout:
    """The parameters' layout of this model on a vocabulary of K characters."""
    return Layout(self.hidden, K, self.cell, self.layers, self.embedding)


# The settings that define a run, stored in every checkpoint: the model's and the optimizer's
# settings of ``settings.SETTINGS``, with their defaults (what a checkpoint lacking one means).
Hyper = make_dataclass("Hyper", [(s.name, s.type, field(default=s.default)) for s in STORED], frozen=True,
                       namespace={"layout": _layout, "__module__": __name__,
                                  "__doc__": "Hyperparameters that define a run (``settings.STORED``); stored in "
                                             "every checkpoint."})


def hyper_from_fields(fields: dict) -> Hyper:
    """A ``Hyper`` from a checkpoint's record; ValueError saying what is wrong with it."""
    if not isinstance(fields, dict):
        raise ValueError("the hyperparameters are not a mapping")
    unknown = sorted(set(fields) - set(Hyper.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown hyperparameter {unknown[0]!r}")
    problem = hyper_problem(fields)
    if problem:
        raise ValueError(problem)
    return Hyper(**fields)


@dataclass
class State:
    """Everything a run needs to continue: parameters, AdaGrad sums, hidden state, position.

    The carried state of a stream is one flat vector (``Layout.state_views`` names its parts):
    h (m,) for the classic cell; h of every layer, then c of every layer for the LSTM."""

    vocab: Vocab
    hyper: Hyper
    params: np.ndarray  # flat (P,)
    opt_state: np.ndarray  # (k, P): the optimizer's k arrays (``optimizers.OPTIMIZERS``)
    h: np.ndarray  # (S,), the state carried into the next chunk (S = m for the classic cell)
    update: int = 0  # updates applied so far
    epoch: int = 0  # completed passes over the book
    position: int = 0  # index of the next chunk's first input character
    smooth_loss: float = float("nan")  # nan until the first chunk has been seen
    best_smooth_loss: float = float("inf")
    best_val_loss: float = float("inf")  # lowest validation loss per character seen (runs with held-out text)
    # with several streams: every stream's carried state (B, S) and next chunk start (B,);
    # h and position above are then those of stream 0
    stream_h: np.ndarray | None = None
    stream_positions: np.ndarray | None = None
    # vocabulary index of the input that follows h in the book (book[position]): h and this
    # character are the state the model was in, where text generation and scoring start.
    # None for a new model and for checkpoints of format 1, which did not record it.
    next_char: int | None = None

    @property
    def restart(self) -> int:
        """The input read from the start state (zeros) wherever it comes: a documents model's
        end marker (``formats.END_OF_TEXT``), so that each document starts afresh; -1 for a
        book's model."""
        return int(self.vocab.encode(END_OF_TEXT)[0]) if self.hyper.documents else -1

    @property
    def adagrad(self) -> np.ndarray:
        """The AdaGrad sums (P,) of a run trained with AdaGrad: its optimizer's one array."""
        return self.opt_state[0]

    @property
    def layout(self) -> Layout:
        return self.hyper.layout(self.vocab.size)

    def views(self) -> dict[str, np.ndarray]:
        return self.layout.views(self.params)

    def copy(self) -> "State":
        copy = lambda a: None if a is None else a.copy()  # noqa: E731
        return State(self.vocab, self.hyper, self.params.copy(), self.opt_state.copy(), self.h.copy(),
                     self.update, self.epoch, self.position, self.smooth_loss, self.best_smooth_loss,
                     self.best_val_loss, copy(self.stream_h), copy(self.stream_positions), self.next_char)


def init_state(vocab: Vocab, hyper: Hyper) -> State:
    """A new model: weights drawn from ``hyper.seed`` as the cell declares (``Layout.initialise``:
    the classic cell's N(0, sigma) in the order W, U, V), biases 0, the carried state 0."""
    layout = hyper.layout(vocab.size)
    dtype = np.dtype(hyper.dtype)
    params = np.zeros(layout.size, dtype=dtype)
    layout.initialise(params, np.random.default_rng(hyper.seed), hyper.sigma)
    opt_state = np.zeros((len(optimizer_of(hyper.optimizer).state), layout.size), dtype=dtype)
    return State(vocab, hyper, params, opt_state, np.zeros(layout.state_size, dtype=dtype))


def new_state(hyper: Hyper, codepoints: np.ndarray) -> State:
    """A model of ``hyper`` on the vocabulary ``codepoints`` (a JSON model's), its parameters
    zero until they are read."""
    layout = hyper.layout(codepoints.size)
    dtype = np.dtype(hyper.dtype)
    opt_state = np.zeros((len(optimizer_of(hyper.optimizer).state), layout.size), dtype=dtype)
    return State(Vocab(codepoints), hyper, np.zeros(layout.size, dtype), opt_state,
                 np.zeros(layout.state_size, dtype=dtype))


def updates_per_epoch(n_chars: int, seq_length: int) -> int:
    """Chunks that fit in one pass: starts 0, n, 2n, ... with n + 1 characters each."""
    return (n_chars - 1) // seq_length


def with_streams(state: State, n_chars: int) -> State:
    """``state`` with its B = hyper.streams streams set up, if it has none yet: stream s starts
    at s * (n_chars // B) with h = 0 (stream 0 is the classic walk)."""
    B = state.hyper.streams
    if B > 1 and state.stream_h is None:
        state.stream_h = np.zeros((B, state.layout.state_size), dtype=state.params.dtype)
        state.stream_positions = np.arange(B, dtype=np.int64) * (n_chars // B)
    return state


# ---------------------------------------------------------------------------------------------
# Checkpoints: a plain .npz (no pickle) holding named arrays; see README for the keys.

_SCALARS = ("update", "epoch", "position", "smooth_loss", "best_smooth_loss", "best_val_loss")


def save_checkpoint(path: str | os.PathLike, state: State) -> None:
    """Write ``state`` to ``path`` atomically: a crash leaves the old file or the new one."""
    layout = state.layout
    arrays = {name: np.ascontiguousarray(v) for name, v in state.views().items()}
    for prefix, flat in zip(optimizer_of(state.hyper.optimizer).state, state.opt_state):
        arrays.update({prefix + name: np.ascontiguousarray(v) for name, v in layout.views(flat).items()})
    arrays.update(layout.state_views(state.h))
    arrays["vocab"] = state.vocab.codepoints
    arrays["hyper"] = np.array(json.dumps(asdict(state.hyper), sort_keys=True))
    arrays["format_version"] = np.array(FORMAT_VERSION)
    for key in _SCALARS:
        arrays[key] = np.array(getattr(state, key))
    if state.stream_h is not None:
        arrays["stream_h"], arrays["stream_positions"] = state.stream_h, state.stream_positions
    if state.next_char is not None:
        arrays["next_char"] = np.array(state.next_char, dtype=np.int64)
    with atomic_write(path, "wb", fsync=True) as f:
        np.savez(f, **arrays)


def load_checkpoint(path: str | os.PathLike) -> State:
    """Read and validate a checkpoint (``.npz``, or a JSON model of ``export``). Any problem is a
    CheckpointError with one line."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        json_document = f.read(64).lstrip().startswith(b"{")  # an .npz starts "PK"
    if json_document:
        return read_model_json(path, hyper_from_fields, new_state)
    if open(path, "rb").read(6) == b"\x93NUMPY":
        raise CheckpointError(f"{path}: not a fastrnn checkpoint (a single array, not an .npz archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            return _state_from_arrays(path, NpzMembers(archive))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{path}: not a fastrnn checkpoint (not a readable .npz file: {err})") from None


class NpzMembers:
    """The arrays of an .npz archive, each read when asked for, after its header: a member
    whose header claims more or fewer bytes than the archive holds for it, or objects (pickles),
    is refused before anything is allocated for it, and members nobody asks for are never
    decompressed. ``header(name)`` gives (shape, dtype) without reading the data."""

    def __init__(self, archive: zipfile.ZipFile):
        self._archive = archive
        self._members = {n[:-4]: n for n in archive.namelist() if n.endswith(".npy")}

    def __contains__(self, name) -> bool:
        return name in self._members

    def __iter__(self):
        return iter(self._members)

    def get(self, name: str, default=None):
        return self[name] if name in self else default

    def _open_at_data(self, name: str):
        """(the member opened at its data, shape, dtype); ValueError for a lying header."""
        info = self._archive.getinfo(self._members[name])
        f = self._archive.open(info)
        try:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
        except ValueError:
            f.close()
            raise ValueError(f"{name} has no readable .npy header") from None
        claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if dtype.hasobject:
            f.close()
            raise ValueError(f"{name} holds pickled objects")
        if claimed != info.file_size - f.tell():
            f.close()
            raise ValueError(f"{name} claims {claimed:,} bytes of shape {shape}; the archive holds "
                             f"{info.file_size - f.tell():,}")
        return f, shape, dtype, fortran

    def header(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        f, shape, dtype, _ = self._open_at_data(name)
        f.close()
        return shape, dtype

    def __getitem__(self, name: str) -> np.ndarray:
        f, shape, dtype, fortran = self._open_at_data(name)
        with f:
            data = f.read()
        return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def _state_from_arrays(path: str, data: NpzMembers) -> State:
    def fail(why: str) -> CheckpointError:
        return CheckpointError(f"{path}: invalid checkpoint: {why}")

    # the small members, read whole: no more bytes than they can need
    limits = {"hyper": 2**20, "vocab": 8 * 0x110000, **{name: 16 for name in ("format_version", "next_char", *_SCALARS)}}
    for name, limit in limits.items():
        if name in data:
            shape, kind = data.header(name)
            if int(np.prod(shape, dtype=object)) * kind.itemsize > limit:
                raise fail(f"{name} holds more than {limit:,} bytes")

    if not ({"W", "head.weight"} & set(data)):
        found = ", ".join(sorted(data)[:5]) or "none"
        raise CheckpointError(f"{path}: not a fastrnn checkpoint (its arrays: {found})")
    version = data.get("format_version")
    if version is not None and (version.dtype.kind not in "iu" or version.size != 1):
        raise fail(f"format version {version!r} is not a number")
    if version is not None and int(version) > FORMAT_VERSION:
        raise fail(f"format version {int(version)} is newer than this fastrnn reads ({FORMAT_VERSION}): upgrade fastrnn")
    if "hyper" not in data:
        raise fail("missing hyper")
    try:
        hyper = hyper_from_fields(json.loads(str(data["hyper"])))
    except (ValueError, RecursionError) as err:
        raise fail(str(err) if type(err) is ValueError else f"unreadable hyperparameters ({err})") from None
    codepoints = data.get("vocab")
    if (codepoints is None or codepoints.ndim != 1 or codepoints.size == 0 or codepoints.dtype.kind not in "iu"
            or np.any(np.diff(codepoints.astype(np.int64)) <= 0) or codepoints.astype(np.int64).min() < 0
            or codepoints.astype(np.int64).max() > 0x10FFFF):
        raise fail("the vocabulary is not a sorted list of distinct code points")
    vocab = Vocab(codepoints.astype(np.uint32))
    stored_layers = sum(1 for key in data if key.startswith("weight_hh_l"))
    if hyper.cell != "rnn" or hyper.layers > 1:
        if hyper.layers != stored_layers:
            raise fail(f"hyper says {hyper.layers} layers, the file holds the arrays of {stored_layers}")
    layout = hyper.layout(vocab.size)
    prefixes = optimizer_of(hyper.optimizer).state
    required = set(layout.names) | {p + n for p in prefixes for n in layout.names} | set(layout.state_shapes()) | set(
        _SCALARS)
    missing = sorted(required - set(data), key=lambda k: (k.startswith("m"), k))
    if missing:
        what = f"a {hyper.layers}-layer {hyper.cell} model" if not layout.classic else "the classic rnn model"
        raise fail(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} for {what}")
    dtype = np.dtype(hyper.dtype)
    # every array's header before anything of the model's size is allocated
    expected = {p + n: shape for p in ("", *prefixes) for n, shape in layout.shapes().items()}
    expected.update(layout.state_shapes())
    for name, shape in expected.items():
        have, kind = data.header(name)
        if have != shape:
            raise fail(f"{name} has shape {have}, expected {shape} for a {hyper.layers}-layer {hyper.cell} of "
                       f"{hyper.hidden} units and {vocab.size} characters")
        if kind != dtype:
            raise fail(f"{name} has dtype {kind}, expected {dtype}")
    params, opt_state = np.empty(layout.size, dtype), np.empty((len(prefixes), layout.size), dtype)
    for flat, prefix in ((params, ""), *zip(opt_state, prefixes)):
        for name, view in layout.views(flat).items():
            arr = data[prefix + name]  # of the shape and dtype its header said
            if not np.all(np.isfinite(arr)):
                raise fail(f"{prefix + name} holds non-finite values")
            view[...] = arr
    squares = opt_state[-1]  # AdaGrad's and RMSprop's one array, Adam's second: sums of squares
    if np.any(squares < 0):
        raise fail("AdaGrad sums must not be negative" if hyper.optimizer == "adagrad"
                   else f"{hyper.optimizer}'s sums of squared gradients must not be negative")
    h = np.empty(layout.state_size, dtype)
    for name, view in layout.state_views(h).items():
        arr = data[name]
        if arr.shape != view.shape or arr.dtype != dtype or not np.all(np.isfinite(arr)):
            raise fail(f"{name} must be finite {dtype} of shape {view.shape}")
        view[...] = arr
    try:
        scalars = {k: data[k].item() for k in _SCALARS}
        state = State(vocab, hyper, params, opt_state, h,
                      int(scalars["update"]), int(scalars["epoch"]), int(scalars["position"]),
                      float(scalars["smooth_loss"]), float(scalars["best_smooth_loss"]),
                      float(scalars["best_val_loss"]))
    except (TypeError, ValueError) as err:
        raise fail(f"bad counters ({err})") from None
    if not all(0 <= count < 2**62 for count in (state.update, state.epoch, state.position)):
        raise fail("update, epoch and position must be non-negative integers below 2**62")
    if hyper.streams > 1:
        for name, shape in (("stream_h", (hyper.streams, layout.state_size)), ("stream_positions", (hyper.streams,))):
            if name in data and data.header(name)[0] != shape:
                raise fail(f"{name} must be of shape {shape}")
        sh, sp = data.get("stream_h"), data.get("stream_positions")
        if sh is None or sp is None:
            raise fail(f"{hyper.streams} streams but no stream_h / stream_positions")
        if sh.shape != (hyper.streams, layout.state_size) or sh.dtype != dtype or not np.all(np.isfinite(sh)):
            raise fail(f"stream_h must be finite {dtype} of shape ({hyper.streams}, {layout.state_size})")
        if (sp.shape != (hyper.streams,) or sp.dtype.kind not in "iu"
                or np.any(sp.astype(np.float64) < 0) or np.any(sp.astype(np.float64) >= 2.0**62)):
            raise fail(f"stream_positions must be {hyper.streams} non-negative integers below 2**62")
        state.stream_h, state.stream_positions = sh.copy(), sp.astype(np.int64)
    if "next_char" in data:
        if data.header("next_char")[0] != ():
            raise fail("next_char must be one vocabulary index")
        nc = data["next_char"]
        if nc.shape != () or nc.dtype.kind not in "iu" or not 0 <= int(nc) < vocab.size:
            raise fail(f"next_char must be one vocabulary index below {vocab.size}")
        state.next_char = int(nc)
    return state
