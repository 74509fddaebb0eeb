"""A run's plan, and carrying it out.

``fastrnn.train`` and ``fastrnn.resume`` (and the command line through them) check what they
are given and build one frozen ``RunPlan``: the book, the settings of a new run or the state of
a resumed one, the intervals of its files, its length or time budget, and where it goes.
``carry_out`` reads the book, holds out its validation part, settles what the book decides
(the streams of a recipe, the updates of an epoch or of a time limit, the dropout of a long
run), compiles the kernels, writes run.json and hands the run to the training loop
(``trainer.train_run``).
"""
from __future__ import annotations

import numbers
import os
import platform
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from .budget import parse_duration, updates_within, validation_interval
from .cache import load_corpus_cached
from .corpora import REGISTRY
from .corpora import get as get_corpus
from .demo import DEMO_MODULES, demo_corpus_path
from .errors import FastrnnError
from .files import write_text_atomic
from .finetune import reencode, start_from, vocab_union
from .documents import Documents
from .formats import END_OF_TEXT, detect_format, load_corpus
from .model import Hyper, State, init_state, updates_per_epoch, with_streams
from .recipes import LONG_RUN_EPOCHS, dropout_for, fitted_streams
from .rundir import clear_run, corpus_sha256, holds_run, save_run_config
from .settings import OptionError
from .text import vocab_difference
from .trainer import RunOptions, train_run

VAL_EVERY = 10_000  # updates between validations, unless told
UNTIL_LIMIT = 10 ** 12  # the updates of a time-limited run until the budget has been measured


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, before it reads a character.

    out: the run directory. book: where the run keeps its book; source: where to read it now
    (a staged copy of a ``text=`` book, moved into place when the run starts). intervals:
    sample_every, log_every, checkpoint_every and val_every (None: chosen once the run's length
    is known). A new run has ``settings`` (``Hyper``'s fields; streams None: the recipe's for
    the book) and maybe ``init``, the state it fine-tunes; a resumed one has ``resumed`` and
    ``config``, its run.json.
    """

    out: str
    book: str
    source: str
    encoding: str
    format: str
    val_fraction: float
    intervals: dict
    steps: int | None = None
    epochs: int | None = None
    settings: dict | None = None
    resumed: State | None = None
    config: dict | None = None
    init: State | None = None
    init_path: str | None = None
    time_limit: float | None = None
    planned_updates: int | None = None
    dropout_by_epochs: bool = False  # dropout not given: the recipe's for the epochs the run plans
    force: bool = False
    share_machine: bool = False  # fewer threads while other processes are busy (threads not given)
    val_file: str | None = None  # scored instead of a held-out fraction

    @property
    def seq_length(self) -> int:
        return self.resumed.hyper.seq_length if self.resumed else self.settings["seq_length"]

    @property
    def documents(self) -> bool:
        """Whether the run's book is documents (``documents.py``)."""
        return self.resumed.hyper.documents if self.resumed else self.settings["documents"]

    @property
    def seed(self) -> int:
        return self.resumed.hyper.seed if self.resumed else self.settings["seed"]


@dataclass(frozen=True)
class Book:
    """The book as the run trains on it: its vocabulary, training and held-out parts."""

    vocab: object
    train: np.ndarray
    val: np.ndarray | None
    chars: int  # before the hold-out
    sha256: str
    seq_length: int
    documents: Documents | None = None  # a documents book's training documents (``train`` packs them)
    held_documents: int = 0  # documents held out

    @property
    def per_epoch(self) -> int:
        """Chunks of one pass over the training part."""
        return updates_per_epoch(self.train.shape[0], self.seq_length)


def carry_out(plan: RunPlan, tell, say, should_stop) -> dict:
    """Train as ``plan`` says; the run's summary, or that of a finished run resumed (with
    ``updates_this_run`` 0). ``tell`` is given progress, ``say`` lines of text."""
    book = read_book(plan, say)
    streams = plan.resumed.hyper.streams if plan.resumed else plan.settings["streams"]
    if streams is None:  # not given: the cell's, at most the book's chunks
        streams = fitted_streams(plan.settings["cell"], book.per_epoch)
        plan = replace(plan, settings=dict(plan.settings, streams=streams))
    if streams > book.per_epoch:
        raise OptionError("streams", f"{plan.book} has only {book.per_epoch} chunks of {plan.seq_length} characters "
                                     f"to spread {streams} streams over")
    # a time limit's updates are counted once the model is compiled
    total = UNTIL_LIMIT if plan.time_limit is not None else total_updates(plan.steps, plan.epochs, book.per_epoch,
                                                                          streams)
    planned = total if plan.planned_updates is None else plan.planned_updates
    if not plan.resumed:
        if planned < total:
            raise OptionError("planned_updates", f"the run's {total:,} updates are more than the {planned:,} planned")
        _check_warmup(plan.settings["warmup"], total, "the run's")
    done = plan.resumed.update if plan.resumed else 0
    if plan.resumed and total <= done:
        say(f"{plan.out} already has {done:,} updates (total {total:,}): nothing to do; "
            f"pass a larger --steps or --epochs to train further")
        return {"updates_this_run": 0}
    os.makedirs(plan.out, exist_ok=True)  # an unusable directory fails here, before any work
    _say_book(plan, book, streams, done, total, say)
    state = new_state(plan, book, planned, say) if not plan.resumed else resumed_state(plan, total, say)
    compile_seconds = compile_for(state, book, say)
    if plan.time_limit is not None:
        total = _fit_time_limit(plan, state, book, say)
    intervals = plan.intervals
    if intervals["val_every"] is None:  # a new run's, not given
        intervals = dict(intervals, val_every=VAL_EVERY if plan.time_limit is None else
                         validation_interval(total, -(-book.per_epoch // streams)))
    if plan.force and not plan.resumed and holds_run(plan.out):
        clear_run(plan.out)
    if plan.source != plan.book:
        os.replace(plan.source, plan.book)
    save_run_config(plan.out, run_config(plan, book, total, planned, intervals))
    init_from = plan.config.get("init") if plan.resumed else plan.init_path
    opts = RunOptions(total_updates=total, **intervals, on_progress=tell, should_stop=should_stop,
                      share_machine=plan.share_machine, time_limit=plan.time_limit,
                      extra_summary={"compile_seconds": compile_seconds, "book": os.path.abspath(plan.book),
                                     "machine": machine(), **({"init": init_from} if init_from else {})})
    return train_run(state, book.train, plan.out, opts, resume=plan.resumed is not None, val_book=book.val,
                     documents=book.documents)


def read_book(plan: RunPlan, say) -> Book:
    """The book of ``plan``, encoded in the run's vocabulary (a resumed run's, or the union of
    an init model's and the book's), its end held out."""
    sha256 = corpus_sha256(plan.source) if os.path.exists(plan.source) else ""
    vocab, encoded = load_corpus_cached(plan.source, plan.format, plan.encoding, plan.seq_length + 1, sha256)
    if plan.resumed:
        have = plan.resumed.vocab
        if np.setdiff1d(vocab.codepoints, have.codepoints).size:
            raise FastrnnError(f"{plan.book}: its characters differ from the run's ({vocab_difference(have, vocab)})"
                               f"; cannot resume on it")
        if vocab.size != have.size:  # a text of fewer characters (a fine-tuned run's, say)
            encoded, vocab = reencode(encoded, vocab, have), have
        if sha256 != plan.config.get("book_sha256"):
            say(f"warning: {plan.book} is not the file this run started with; resuming on it anyway")
    if plan.init is not None:
        wider = vocab_union(plan.init.vocab, vocab)
        if wider.size > vocab.size:
            encoded = reencode(encoded, vocab, wider)
        vocab = wider
    if plan.documents:
        return _documents_book(plan, vocab, encoded, sha256, say)
    if plan.val_file:
        train_part, val_part = encoded, held_out_file(plan, vocab, say)
    else:
        train_part, val_part = held_out(encoded, plan.val_fraction, plan.seq_length, plan.book)
    return Book(vocab, train_part, val_part, encoded.shape[0], sha256, plan.seq_length)


def _documents_book(plan: RunPlan, vocab, encoded: np.ndarray, sha256: str, say) -> Book:
    """A documents book: its documents, a random fraction of them (or those of the val file)
    held out."""
    marker = int(vocab.encode(END_OF_TEXT)[0])
    documents, held = Documents(encoded, marker), None
    if plan.val_file:
        held = Documents(held_out_file(plan, vocab, say), marker)
    elif plan.val_fraction:
        documents, held = documents.split(plan.val_fraction, plan.seed)
    train = documents.packed_for_epoch(plan.seed, 0)
    if train.shape[0] < plan.seq_length + 1:
        raise FastrnnError(f"{plan.book}: {len(documents):,} documents of {train.shape[0]:,} characters in all; "
                           f"training needs at least {plan.seq_length + 1} (one chunk and its last target)")
    return Book(vocab, train, None if held is None else held.packed(), encoded.shape[0], sha256, plan.seq_length,
                documents, len(held) if held is not None else 0)


# which files a book's --val-file may be, by the book's format
VAL_FORMATS = {"text": ("text",), "lines": ("text",), "json": ("json",), "dir": ("text",)}


def held_out_file(plan: RunPlan, vocab, say) -> np.ndarray:
    """The run's val file, read in the book's format and encoded in ``vocab``: characters
    outside it are left out (and counted, as ``fastrnn eval`` does)."""
    path = plan.val_file
    fmt = detect_format(plan.book) if plan.format == "auto" else plan.format
    if not os.path.exists(path):
        raise FastrnnError(f"{path}: no such file (--val-file)")
    found = detect_format(path)
    if found not in VAL_FORMATS[fmt]:
        what = {"dir": "a directory", "json": "JSON", "text": "a text file"}[found]
        raise OptionError("val_file", f"--val-file {path} is {what}, but the book is {fmt}: its held-out file must "
                                      f"be {'JSON tweets' if fmt == 'json' else 'a text file'}")
    # a documents run on a text (fastrnn.train(text=[...])) holds out a list
    read_as = "lines" if plan.documents and fmt == "text" else "text" if fmt == "dir" else fmt
    val_vocab, encoded = load_corpus(path, read_as, plan.encoding, 2)
    points = val_vocab.codepoints[encoded]
    indices, known = vocab.lookup(points)
    if not np.all(known):
        unknown = "".join(map(chr, np.unique(points[~known]).tolist()))
        say(f"{path}: {int(np.sum(~known)):,} characters outside the model's vocabulary left out ({unknown!r})")
    if int(np.sum(known)) < 2:
        raise FastrnnError(f"{path}: nothing to validate on in the model's vocabulary")
    return indices[known]


def _say_book(plan: RunPlan, book: Book, streams: int, done: int, total: int, say) -> None:
    if book.documents is not None:
        count, kept = len(book.documents), book.held_documents if plan.val_fraction else 0
        held = f" ({count + kept:,} documents" + (f", {kept:,} held out for validation)" if kept else ")")
    else:
        held = f", {book.val.shape[0]:,} held out for validation" if book.val is not None else ""
    if plan.val_file:
        held += f"; validation on {plan.val_file}"
    per_update = f"{streams} streams, " if streams > 1 else ""
    say(f"book {plan.book}: {book.chars:,} characters{held}, {book.vocab.size} distinct; {per_update}"
        f"{-(-book.per_epoch // streams):,} updates per epoch; "
        + (f"resuming at update {done:,} of {total:,}" if plan.resumed
           else f"training for {plan.time_limit:g} s" if plan.time_limit is not None
           else f"training {total:,} updates")
        + f" -> {plan.out}")


def _planned_dropout(plan: RunPlan, book: Book, updates: int, say) -> float:
    """The recipe's dropout for a run of ``updates`` updates (``recipes.dropout_for``)."""
    settings = plan.settings
    epochs = updates * settings["streams"] / book.per_epoch
    dropout = dropout_for(settings["cell"], epochs)
    if dropout != settings["dropout"]:
        say(f"dropout {dropout:g}: the {settings['cell']} recipe's for a run of more than {LONG_RUN_EPOCHS} "
            f"epochs (this one: {epochs:.1f})")
    return dropout


def new_state(plan: RunPlan, book: Book, planned: int, say) -> State:
    """The model a new run starts from: drawn from the seed, or the init model's."""
    settings = dict(plan.settings)
    if settings["schedule"] == "cosine":
        settings["schedule_updates"] = planned
    if plan.dropout_by_epochs and plan.time_limit is None:
        settings["dropout"] = _planned_dropout(plan, book, planned, say)
    hyper = Hyper(**settings)
    init = plan.init
    state = init_state(book.vocab, hyper) if init is None else start_from(init, book.vocab, hyper)
    state = with_streams(state, book.train.shape[0])
    if init is not None:
        say(f"fine-tuning the {init.vocab.size}-character model of update {init.update:,} on {book.vocab.size} "
            f"characters ({book.vocab.size - init.vocab.size} new)")
        if hyper.documents and not init.hyper.documents:
            say("the model was trained on a book: from now on it reads documents, each from the start state, "
                "and learns to predict their end marker")
    return state


def resumed_state(plan: RunPlan, total: int, say) -> State:
    state = plan.resumed
    if state.hyper.schedule == "cosine" and total > state.hyper.schedule_updates:
        say(f"the cosine schedule of this run ends at update {state.hyper.schedule_updates:,}, where it started: "
            f"updates after it train at min_eta ({state.hyper.min_eta:g})")
    return state


def compile_for(state: State, book: Book, say) -> float:
    """Compile (or load) the kernels of the run; the seconds it took."""
    h = state.hyper
    if not state.layout.classic:
        say(f"model: {f'an embedding of {h.embedding}, ' if h.embedding else ''}"
            f"{h.layers} layer{'s' if h.layers > 1 else ''} of {h.cell} ({h.hidden} units), "
            f"{state.layout.size:,} parameters, {h.dtype}")
    from .build import CACHE_WRITABLE, KernelSet, compile_kernels  # Numba: not while ``import fastrnn``

    seconds = compile_kernels(KernelSet.of(h, book.train.dtype, streams=h.streams, sampler=True,
                                           scorer=book.val is not None),
                              on_compile=lambda what: say(f"compiling {what}..."))
    if seconds > 1.5:
        say(f"compiled in {seconds:.1f}s" + (" (cached for later runs)" if CACHE_WRITABLE else ""))
    return seconds


def _fit_time_limit(plan: RunPlan, state: State, book: Book, say) -> int:
    """The updates that fit in the plan's time limit, measured on the run's own model; the
    schedule and the recipe's dropout follow them (``state.hyper`` is set anew)."""
    from .engine import Trainer  # Numba: not while ``import fastrnn``

    try:
        total, per_update = updates_within(
            lambda: Trainer(state.copy(), book.train, share_machine=plan.share_machine, documents=book.documents),
            plan.time_limit)
    except ValueError as err:
        raise OptionError("time_limit", str(err)) from None
    _check_warmup(state.hyper.warmup, total, "the time limit's")
    if state.hyper.schedule == "cosine":
        state.hyper = replace(state.hyper, schedule_updates=total)
    if plan.dropout_by_epochs:
        state.hyper = replace(state.hyper, dropout=_planned_dropout(plan, book, total, say))
    say(f"time limit {plan.time_limit:g} s: {total:,} updates of {per_update * 1e3:.3g} ms measured here")
    return total


def _check_warmup(warmup: int, total: int, whose: str) -> None:
    # a run of 0 updates (a model at update 0) has no warm-up to end
    if warmup and warmup >= total:
        raise OptionError("warmup", f"warmup ({warmup:,} updates) must end before {whose} {total:,} updates do")


def run_config(plan: RunPlan, book: Book, total: int, planned: int, intervals: dict) -> dict:
    """run.json: what resuming needs, and how a new run was planned (kept by its resumed
    sessions)."""
    if plan.resumed:
        kept = {name: plan.config[name] for name in ("time_limit", "planned_updates", "init") if name in plan.config}
    else:
        kept = {**({"time_limit": plan.time_limit} if plan.time_limit is not None else {}),
                **({"planned_updates": planned} if plan.planned_updates is not None else {}),
                **({"init": plan.init_path} if plan.init_path else {})}
    return {"book": os.path.abspath(plan.book), "book_sha256": book.sha256, "encoding": plan.encoding,
            "format": plan.format, "total_updates": total, "val_fraction": plan.val_fraction,
            **({"val_file": os.path.abspath(plan.val_file)} if plan.val_file else {}), **intervals, **kept}


def machine() -> dict:
    """What ran the training, for the summary and the report."""
    import numba  # the run has compiled its kernels: Numba is loaded already

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": numba.get_num_threads(), "system": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__}


def held_out(encoded, val_fraction: float, seq_length: int, book):
    """(training part, validation part or None): the last ``val_fraction`` of the encoded book
    is held out for validation."""
    val_chars = int(round(val_fraction * encoded.shape[0]))
    train_part = encoded[:encoded.shape[0] - val_chars]
    if val_fraction and (val_chars < 2 or train_part.shape[0] < seq_length + 1):
        raise FastrnnError(f"{book}: too short to hold out {val_fraction:g} of it and still train on "
                           f"chunks of {seq_length + 1} characters")
    return train_part, (encoded[encoded.shape[0] - val_chars:] if val_chars else None)


def run_documents(run_dir: str, seed: int) -> tuple[set, set]:
    """(training documents, held-out documents) of the documents run in ``run_dir`` (of the
    ``seed``), as strings: its book split as the run split it. FastrnnError where the run's
    files cannot give them (a moved or changed book)."""
    from .rundir import load_run_config

    config = load_run_config(run_dir)
    book = config["book"]
    if not os.path.exists(book) or corpus_sha256(book) != config.get("book_sha256"):
        raise FastrnnError(f"the run's book {book} is gone or changed")
    vocab, encoded = load_corpus(book, config["format"], config["encoding"], 2)
    if END_OF_TEXT not in vocab.chars:
        raise FastrnnError(f"the run's book {book} holds no documents")
    documents, held = Documents(encoded, int(vocab.encode(END_OF_TEXT)[0])), []
    if config.get("val_file"):
        val_vocab, val = load_corpus(config["val_file"], "json" if config["format"] == "json" else "lines",
                                     config["encoding"], 2)
        held = Documents(val, int(val_vocab.encode(END_OF_TEXT)[0])).texts(val_vocab)
    elif config.get("val_fraction"):
        documents, held_documents = documents.split(config["val_fraction"], seed)
        held = held_documents.texts(vocab)
    return set(documents.texts(vocab)), set(held)


def reads_documents(fmt: str, book) -> bool:
    """Whether a book read in format ``fmt`` is documents: a list's lines, tweets."""
    return (detect_format(os.fspath(book)) if fmt == "auto" else fmt) in ("lines", "json")


def total_updates(steps: int | None, epochs: int | None, per_epoch: int, streams: int) -> int:
    """Updates of a run of ``steps`` updates and/or ``epochs`` passes (the fewer wins; 5 epochs
    without either); an update takes ``streams`` of the ``per_epoch`` chunks of a pass."""
    if epochs is None and steps is None:
        epochs = 5
    by_epochs = -(-epochs * per_epoch // streams) if epochs else None
    return min(x for x in (steps, by_epochs) if x is not None)


INTERVALS = ("sample_every", "sample_length", "log_every", "checkpoint_every", "val_every")


def parse_time_limit(time_limit, steps, epochs, planned_updates) -> float:
    """Seconds of a time limit given to a new run, which then has neither steps, epochs nor
    planned updates."""
    if steps is not None or epochs is not None:
        raise OptionError("time_limit", "a time limit sets the run's number of updates: give it or "
                                        "steps/epochs, not both")
    if planned_updates is not None:
        raise OptionError("planned_updates", "a time limit plans the run's updates: give it or "
                                             "planned_updates, not both")
    try:
        return parse_duration(time_limit)
    except ValueError as err:
        raise OptionError("time_limit", str(err)) from None


def use_threads(threads) -> None:
    """The cores Numba's parallel loops may use (None: all)."""
    import numba  # here, not at the top: ``import fastrnn`` stays free of Numba

    most = numba.config.NUMBA_NUM_THREADS
    ok = threads is None or (isinstance(threads, numbers.Integral) and not isinstance(threads, bool)
                             and 1 <= threads <= most)
    if not ok:
        raise OptionError("threads", f"threads must be a number of cores from 1 to {most} on this machine, "
                                     f"not {threads!r}")
    numba.set_num_threads(most if threads is None else int(threads))


def named_corpus(book) -> str:
    """BOOK as given, or the local path of the registered corpus it names (downloaded once)."""
    book = os.fspath(book)
    if os.path.exists(book):
        return book
    return get_corpus(book) if book in REGISTRY else book  # not a file either: reading it reports that


def demo_corpus(say) -> str:
    book = demo_corpus_path()
    say(f"no BOOK given: training on the built-in demo corpus, the docstrings of "
        f"{len(DEMO_MODULES)} Python standard-library modules ({book})")
    return book


@dataclass(frozen=True)
class StagedText:
    book: str  # where the run keeps it
    source: str  # where it is read from until the run starts


@contextmanager
def staged_text(text, out: str, seq_length: int):
    """A ``text=`` book written to ``out``/book.txt.new, moved to book.txt when the run starts,
    so that a run that fails its checks leaves the book of the run it would have replaced as it
    was; None for no text."""
    if text is None:
        yield None
        return
    documents = [text] if isinstance(text, str) else list(text)
    if sum(map(len, documents)) + (0 if isinstance(text, str) else len(documents)) < seq_length + 1:
        raise FastrnnError(f"the text has {sum(map(len, documents))} characters; training needs at least "
                           f"{seq_length + 1} (one chunk and its last target)")
    os.makedirs(out, exist_ok=True)
    book = os.path.join(out, "book.txt")
    write_text_atomic(book + ".new", documents[0] if isinstance(text, str)
                      else "".join(doc + END_OF_TEXT for doc in documents), encoding="utf-8")
    try:
        yield StagedText(book, book + ".new")
    finally:
        if os.path.exists(book + ".new"):
            os.unlink(book + ".new")
