"""The report of a run: one self-contained HTML page (figures inline, the model and its sampler
inline, nothing fetched), or Markdown with the figure as a PNG file beside it.

It holds what a report of the DD2424 assignment shows: the book and the hyperparameters, a
gradient-check table computed when the report is made, the loss curve (epochs marked, with
validation), the texts generated during training with their smooth loss, the best model's
passage, and the speed, compile time and machine of the run.
"""
from __future__ import annotations

import html
import io
import math
import os
import re

from .errors import FastrnnError
from .files import atomic_write, write_text_atomic
from .settings import used

GRADCHECK_SEEDS = (40, 8)


def _facts(run_dir) -> dict:
    """Everything the report shows, read from the run directory (and the gradient checks)."""
    from .model import load_checkpoint
    from .rundir import RunDir, holds_run

    files = RunDir(run_dir)
    if not os.path.isdir(files.path) or not holds_run(files.path):
        raise FastrnnError(f"{files.path}: not a fastrnn run directory")
    metrics = files.metrics()
    if not len(metrics):
        raise FastrnnError(f"{files.path}: the run has no metrics yet (it logs every --log-every updates)")
    summary = files.summary()
    best = load_checkpoint(files.file("best.npz"))
    book = summary.get("book") or _config(files).get("book", "")
    text, checked_on = _book_start(files, book, best.hyper.seq_length)
    passage = files.best_passage()
    if passage and best.hyper.documents:
        passage = (passage[0] + ". " + _novelty(files.path, best.hyper.seed, passage[1].split("\n")), passage[1])
    return {"dir": files.path, "summary": summary, "metrics": metrics, "validation": files.validation(),
            "samples": files.samples(), "passage": passage, "best": best, "book": book,
            "gradchecks": _gradient_checks(text, best.hyper.seq_length, best.hyper.cell, best.hyper.layers,
                                           min(best.hyper.embedding, 4)),
            "checked_on": checked_on}


def _novelty(run_dir: str, seed: int, documents: list[str]) -> str:
    """How many of a documents run's sampled ``documents`` are new, and how many copies."""
    from .documents import novelty
    from .plan import run_documents

    try:
        counts = novelty(documents, *run_documents(run_dir, seed))
    except FastrnnError as err:
        return f"No counts of copies and new ones: {err}"
    return (f"Of these {len(documents)} documents, {counts['new']} are new, {counts['training']} copy a training "
            f"line and {counts['held_out']} a held-out line")


def _config(files) -> dict:
    import json

    try:
        with open(files.file("run.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _book_start(files, book: str, seq_length: int) -> tuple[str, str]:
    """(the first 20,000 characters of the run's book, as it was trained on, and its name), or
    (the built-in text of ``fastrnn gradcheck``, a note) when the book cannot be read: moved,
    or a run directory copied elsewhere."""
    from .cache import load_corpus_cached
    from .errors import FastrnnError as Unreadable
    from .gradients import BUILTIN_TEXT
    from .rundir import corpus_sha256

    config = _config(files)
    for path in (book, files.file("book.txt")):  # a text given as a string lives in the run
        if path and os.path.exists(path):
            try:
                vocab, encoded = load_corpus_cached(path, config.get("format", "auto"), config.get("encoding", "utf-8"),
                                                    seq_length + 1, corpus_sha256(path))
            except (Unreadable, OSError):
                continue
            return vocab.decode(encoded[:20_000]), f"the first chunk of {os.path.basename(path)}"
    return BUILTIN_TEXT, "a built-in text (the run's book was not found)"


def _gradient_checks(text: str, seq_length: int, cell: str = "rnn", layers: int = 1, embedding: int = 0) -> dict:
    """Gradient checks at m = 5 of the run's cell and layers (and an ``embedding`` of that
    width) on the first chunk of ``text``, one per seed of GRADCHECK_SEEDS."""
    from .gradients import CheckSettings, gradient_check

    return {seed: gradient_check(text, CheckSettings(cell=cell, layers=layers, embedding=embedding, hidden=5,
                                                     seq_length=min(seq_length, len(text) - 1), seed=seed))
            for seed in GRADCHECK_SEEDS}


def _status(summary: dict) -> str:
    if not summary:
        return "unfinished: no summary yet (the run is in progress or stopped before its first report)"
    notes = ["finished" if summary.get("finished") else "unfinished: stopped at update "
             f"{summary.get('updates', 0):,} of its total; `fastrnn train --resume` continues it"]
    if summary.get("updates_this_run", summary.get("updates")) != summary.get("updates"):
        notes.append(f"resumed: the last session trained {summary['updates_this_run']:,} of its "
                     f"{summary['updates']:,} updates")
    return "; ".join(notes)


def _sample_title(update: int, smooth_loss: float) -> str:
    return (f"update {update:,}, smooth loss {smooth_loss:.2f}" if math.isfinite(smooth_loss)
            else f"update {update:,}, before training")


def _figure(facts, fmt: str) -> bytes:
    from .plot import loss_figure

    buf = io.BytesIO()
    loss_figure(facts["metrics"], facts["validation"]).savefig(buf, format=fmt)
    return buf.getvalue()


def _numbers(facts) -> list[tuple[str, str]]:
    s, best = facts["summary"], facts["best"]
    rows = [("updates", f"{s.get('updates', best.update):,}"),
            ("epochs", f"{s['epochs']:.2f}" if "epochs" in s else "?"),
            ("best smooth loss", f"{s['best_smooth_loss']:.3f}" if s.get("best_smooth_loss") else "?"),
            ("best model", f"update {best.update:,}")]
    if s.get("best_val_nats_per_char"):
        rows.append(("best validation", f"{s['best_val_nats_per_char'] / math.log(2):.3f} bits/char"))
    if s.get("chars_per_s"):
        rows.append(("speed", f"{s['chars_per_s']:,.0f} chars/s ({s.get('seconds', 0):.1f} s of training)"))
    if "compile_seconds" in s:
        rows.append(("compile", f"{s['compile_seconds']:.1f} s"))
    m = s.get("machine")
    rows.append(("machine", f"{m['cpu']}, {m['cores']} cores ({m['threads']} threads used); {m['system']}; "
                            f"Python {m['python']}, NumPy {m['numpy']}, Numba {m['numba']}" if m else "not recorded"))
    return rows


def _hyper_rows(facts) -> list[tuple[str, str]]:
    """The settings the run trained with, and only those (no beta1 of an AdaGrad run)."""
    hyper = facts["best"].hyper
    return [(s.name, str(getattr(hyper, s.name))) for s in used(hyper)]


def _book_rows(facts) -> list[tuple[str, str]]:
    s, vocab = facts["summary"], facts["best"].vocab
    chars = s.get("book_chars", 0) + s.get("val_chars", 0)
    return [("book", os.path.basename(facts["book"]) or "?"),
            ("characters", f"{chars:,}" + (f" ({s['val_chars']:,} held out)" if s.get("val_chars") else "")),
            ("vocabulary", f"{vocab.size} characters: " + " ".join("␣" if ch == " " else repr(ch)[1:-1]
                                                                    for ch in vocab.chars))]


def _gradcheck_rows(facts) -> list[list[str]]:
    rows = []
    for seed, check in facts["gradchecks"].items():
        for kernel, ref in zip(check.results["kernels"], check.results["reference"]):
            rows.append([f"{kernel.param} (seed {seed})", f"{kernel.max_rel:.2e}", f"{kernel.max_abs:.2e}",
                         f"{ref.max_rel:.2e}", f"{ref.max_abs:.2e}"])
    return rows


def _gradcheck_model(facts) -> str:
    hyper = facts["best"].hyper
    if facts["best"].layout.classic:
        return "The classic rnn"
    embedding = f" after an input embedding (of width {min(hyper.embedding, 4)} here)" if hyper.embedding else ""
    return f"A {hyper.layers}-layer {hyper.cell}{embedding}"


GRADCHECK_HEADER = ["parameter", "kernels, relative", "kernels, absolute", "reference, relative", "reference, absolute"]


def write_html(run_dir, path) -> None:
    """The report as one HTML file with the figure, the model and its sampler inline."""
    from .webpage import page, sampler_section

    facts = _facts(run_dir)
    esc = html.escape

    def table(rows, header=None):
        head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" if header else ""
        body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table{' class=numbers' if header else ''}>{head}{body}</table>"

    svg = _figure(facts, "svg").decode("utf-8")
    svg = svg[svg.index("<svg"):]  # the figure inline, without its XML prologue
    samples = "".join(f"<h3>{esc(_sample_title(u, s))}</h3><pre>{esc(t)}</pre>" for u, s, t in facts["samples"])
    passage = facts["passage"]
    body = f"""<h1>fastrnn run {esc(os.path.basename(os.path.normpath(facts['dir'])))}</h1>
<p>{esc(_status(facts['summary']))}</p>
<h2>Book and model</h2>{table(_book_rows(facts))}
<h2>Hyperparameters</h2>{table(_hyper_rows(facts))}
<h2>Run</h2>{table(_numbers(facts))}
<h2>Gradient check</h2>
<p class="note">{esc(_gradcheck_model(facts))}, m = 5, {esc(facts['checked_on'])}, made with this report: the
largest relative error |ga - gn| / max(1e-6, |ga| + |gn|) and the largest absolute error of the analytic
gradients against
numerical ones, for the kernels and the NumPy reference.</p>
{table(_gradcheck_rows(facts), GRADCHECK_HEADER)}
<h2>Loss</h2>{svg}
<h2>Text during training</h2>{samples or '<p>none (sample_every 0)</p>'}
<h2>The best model's passage</h2>
{f'<p class="note">{esc(passage[0])}</p><pre>{esc(passage[1])}</pre>' if passage else '<p>not written yet</p>'}
{sampler_section(facts['best'])}"""
    write_text_atomic(os.fspath(path), page(f"fastrnn run {os.path.basename(facts['dir'])}", body), encoding="utf-8")


def write_markdown(run_dir, path) -> None:
    """The report as Markdown, with the loss figure as a PNG file beside it (<name>-loss.png)."""
    facts = _facts(run_dir)
    path = os.fspath(path)
    figure = os.path.splitext(path)[0] + "-loss.png"

    def table(rows, header=("", ""), cell=lambda c: html.escape(str(c), quote=False).replace("|", "\\|")):
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])

    samples = "\n\n".join(f"**{_sample_title(u, s)}**\n\n{markdown_fence(t)}" for u, s, t in facts["samples"])
    passage = facts["passage"]
    text = f"""# fastrnn run {markdown_text(os.path.basename(os.path.normpath(facts['dir'])))}

{_status(facts['summary'])}

## Book and model

{table(_book_rows(facts), cell=markdown_text)}

## Hyperparameters

{table(_hyper_rows(facts))}

## Run

{table(_numbers(facts))}

## Gradient check

{_gradcheck_model(facts)}, m = 5, {facts['checked_on']}: the largest relative and absolute errors of the analytic
gradients against numerical ones, for the kernels and the NumPy reference.

{table(_gradcheck_rows(facts), GRADCHECK_HEADER)}

## Loss

![loss]({os.path.basename(figure)})

## Text during training

{samples or 'none'}

## The best model's passage

{(markdown_text(passage[0]) + chr(10) + chr(10) + markdown_fence(passage[1])) if passage else 'not written yet'}
"""
    with atomic_write(figure, "wb") as f:
        f.write(_figure(facts, "png"))
    write_text_atomic(path, text, encoding="utf-8")


def markdown_text(value) -> str:
    """``value`` as literal Markdown text on one line, inside a table cell or after a heading:
    HTML's special characters as entities, the punctuation that would start emphasis, code, a
    link, a cell or a strike escaped, line ends as spaces (a book's name, a vocabulary)."""
    text = html.escape(str(value), quote=False).replace("\r", " ").replace("\n", " ")
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", text)  # emphasis, code, links, cells, strikes


def markdown_fence(text: str) -> str:
    """``text`` in a fenced block no line of it can close: the fence is longer than any run of
    tildes in the text."""
    longest = max((len(run) for run in re.findall(r"~+", text)), default=0)
    fence = "~" * max(4, longest + 1)
    return f"{fence}\n{text}\n{fence}"
