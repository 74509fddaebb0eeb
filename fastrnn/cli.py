"""The ``fastrnn`` command. The only module that imports click; heavy imports happen inside
commands so that ``fastrnn --help`` stays fast."""
from __future__ import annotations

import functools
import math
import os
import sys

import click

from . import settings

POSITIVE = click.IntRange(min=1)
POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)


class _OneLineErrors(click.Group):
    """Every error is one line on stderr and a non-zero exit: 1 for failures, 2 for misuse."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as err:
            hint = f" (see '{err.ctx.command_path} --help')" if err.ctx else ""
            click.echo(f"Error: {err.format_message()}{hint}", err=True)
            sys.exit(err.exit_code)
        except click.ClickException as err:
            click.echo(f"Error: {err.format_message()}", err=True)
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fastrnn")
def cli():
    """Train a character-level RNN on a book and generate text from it, fast, on a CPU."""


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


def _errors(command):
    """The library's errors as one line each: a bad option is a usage error (exit 2), any
    other ``FastrnnError`` a failure (exit 1), and so is a file that cannot be read or written
    (permissions, a full disk, a path through a file)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from .api import OptionError
        from .errors import FastrnnError

        try:
            return command(*args, **kwargs)
        except OptionError as err:
            raise click.BadParameter(str(err), ctx=click.get_current_context(),
                                     param_hint=f"'--{err.option.replace('_', '-')}'") from None
        except FastrnnError as err:
            raise _fail(str(err)) from None
        except OSError as err:
            where = f"{err.filename}: " if err.filename else ""
            raise _fail(f"{where}{err.strerror or err}") from None

    return wrapper


def setting_option(name: str, **overrides):
    """The click option of the setting ``name`` (``settings.py``): its type (ranges are checked
    by the API, with one message for every caller), help and default; a setting whose default
    depends on the cell or on other settings is None (not given) until the API decides."""
    setting = settings.setting(name)
    kind = click.Choice(list(setting.choices)) if setting.choices else setting.type
    # not given: None, for the API to decide (the recipe, the init model, an optimizer's own)
    decided_later = bool(setting.by_cell or setting.default_text or setting.default is None or setting.optimizers
                         or setting.schedules)
    default = None if decided_later else setting.default
    # a command of its own default (gradcheck's) shows the setting's help without the recipes'
    attrs = dict(type=kind, default=default, show_default=default is not None, metavar=setting.metavar,
                 help=setting.help if "default" in overrides else setting.help_with_defaults())
    attrs.update(overrides)
    flag = "--" + name.replace("_", "-")
    return click.option(flag, *(["fmt"] if name == "format" else []), **attrs)


def setting_options(names):
    """``setting_option`` of each of ``names``, in order."""
    def decorate(command):
        for name in reversed(names):
            command = setting_option(name)(command)
        return command
    return decorate


# the options of ``fastrnn train`` that are settings, in --help's order
TRAIN_SETTINGS = [s.name for s in settings.OPTIONS if s.name != "planned_updates"]


@cli.command()
@click.argument("book", required=False, type=click.Path())
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="Continue the run in this directory exactly where its last checkpoint left it.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Run directory [default: runs/<book>-<date>-<time>].")
@click.option("--force", is_flag=True, help="Overwrite a run already in --out.")
@click.option("--init", "init", type=click.Path(),
              help="Fine-tune: start from this trained model (a checkpoint or a run directory) on BOOK.")
@setting_options(TRAIN_SETTINGS)
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@_errors
def train(book, resume_dir, out_dir, force, init, quiet, fmt, **options):
    """Train on BOOK (a UTF-8 text file, a directory of .txt files, tweets in JSON, or the name of
    a corpus from `fastrnn corpus list`), streaming chunks through a carried hidden state.

    Without BOOK it trains on a demo corpus built from the Python standard library's
    docstrings (no network, no download).

    Writes last.npz, best.npz, metrics.csv, samples.txt, loss.png and summary.json to the run
    directory and reports chars/s (compilation excluded). Ctrl-C or SIGTERM writes a
    checkpoint and stops; --resume continues from it exactly.
    """
    import signal

    from click.core import ParameterSource

    from . import api
    from .progress import ProgressDisplay
    from .stopping import StopRequest
    from .trainer import Interrupted

    ctx = click.get_current_context()
    options["format"] = fmt
    given = lambda name: ctx.get_parameter_source("fmt" if name == "format" else name) == (  # noqa: E731
        ParameterSource.COMMANDLINE)
    display = ProgressDisplay(updates=not quiet)
    with StopRequest((signal.SIGINT, signal.SIGTERM), say=lambda message: click.echo(message, err=True)) as stop:
        try:
            if resume_dir:
                fixed = [name for name in settings.FIXED_ON_RESUME if given(name)]
                if fixed:
                    raise click.UsageError(f"--{fixed[0].replace('_', '-')} cannot change when resuming: "
                                           f"a resumed run keeps its settings")
                if out_dir or force or init:
                    raise click.UsageError("--out, --force and --init do not go with --resume")
                # what is not given again is the run's own
                again = {name: options[name] for name in settings.BY_NAME if name in options and given(name)}
                run = api.resume(resume_dir, book=book, steps=options["steps"], epochs=options["epochs"],
                                 threads=options["threads"], progress=display, should_stop=stop,
                                 **{k: v for k, v in again.items() if k not in ("steps", "epochs", "threads")})
            else:
                if init:
                    fixed = [name for name in ("cell", "layers", "hidden", "sigma", "dtype", "embedding")
                             if given(name)]
                    if fixed:
                        raise click.UsageError(f"--{fixed[0]} comes from the --init model")
                    options = {k: v for k, v in options.items()
                               if k not in ("cell", "layers", "hidden", "sigma", "dtype", "embedding")}
                run = api.train(book, out=out_dir, init=init, force=force, progress=display, should_stop=stop,
                                **options)
        except Interrupted as err:
            click.echo(f"stopped at update {err.update:,}; checkpoint written. Continue with:\n"
                       f"  fastrnn train --resume {err.out_dir}", err=True)
            sys.exit(143 if stop.signum == signal.SIGTERM else 130)
    if not (resume_dir and run.updates_trained == 0):  # a finished run resumed has said so
        _report_done(run.summary, run.dir)


def _report_done(summary, out_dir) -> None:
    speed = f"{summary['chars_per_s']:,.0f} chars/s" if summary["chars_per_s"] else "no updates"
    best = summary["best_smooth_loss"]
    val = summary["best_val_nats_per_char"]
    limit = summary.get("time_limit")
    budget = f" in {summary['seconds']:.1f} s of training (time limit {limit:g} s)" if limit else ""
    click.echo(f"done: {summary['updates']:,} updates{budget}, {speed}, best smooth loss "
               f"{best if best is None else round(best, 3)}"
               + (f", best validation {val / math.log(2):.3f} bits/char" if val else "")
               + f"; results in {out_dir}", err=True)


@cli.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The file to write [default: report.html, or report.md with --markdown, in RUN_DIR].")
@click.option("--markdown", is_flag=True, help="Markdown, with the loss figure as a PNG file beside it.")
@_errors
def report(run_dir, output, markdown):
    """Write a report of a run: the book, the hyperparameters, a gradient check, the loss curve,
    the texts generated during training and the best passage, speed and machine. The HTML page
    needs no network and carries the model with a sampler to generate more text."""
    from .api import Run

    output = output or os.path.join(run_dir, "report.md" if markdown else "report.html")
    Run(run_dir).report(output, markdown=markdown)
    click.echo(f"wrote {output}", err=True)


@cli.command()
@click.argument("checkpoint", metavar="RUN_OR_CHECKPOINT", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The file to write (model.json; with --html, a page).")
@click.option("--html", is_flag=True, help="A self-contained web page that samples text from the model.")
@_errors
def export(checkpoint, output, html):
    """Write a model (a checkpoint, or a run directory's best.npz) as JSON that any language can
    read, or as a web page that generates text from it. `fastrnn sample --checkpoint model.json`
    and fastrnn.load read the JSON back."""
    from .trained import load

    load(checkpoint).export(output, html=html)
    click.echo(f"wrote {output}", err=True)


@cli.command(name="eval")
@click.argument("checkpoint", type=click.Path())
@click.argument("text_file", metavar="TEXT", type=click.Path(dir_okay=False))
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of TEXT.")
@click.option("--from-zero", is_flag=True,
              help="Score from h = 0 instead of the checkpoint's carried hidden state.")
@click.option("--format", "fmt", type=click.Choice(["text", "lines"]),
              help="TEXT is a text, or a list: each non-empty line a document scored from the start state, its "
                   "end counted (makemore's count) [default: lines for a model trained on documents, else text].")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@_errors
def evaluate(checkpoint, text_file, encoding, from_zero, fmt, as_json):
    """Bits per character and perplexity of a model (a checkpoint or a run directory's
    best.npz) on TEXT, scored from the model's carried hidden state (TEXT's first character is
    fed to it), or, for a list, each line from the start state. Characters outside the
    model's vocabulary are counted and skipped."""
    import json
    from dataclasses import asdict

    from .trained import load
    from .errors import FastrnnError
    from .text import read_text

    model = load(checkpoint)
    text = read_text(text_file, encoding)
    try:
        score = model.evaluate(text, from_zero=from_zero, format=fmt or ("lines" if model.documents else "text"))
    except FastrnnError as err:
        raise _fail(f"{text_file}: {err}") from None
    if as_json:
        click.echo(json.dumps(asdict(score), indent=2))
        return
    click.echo(f"{score.bits_per_char:.4f} bits/char, perplexity {score.perplexity:.3f}, "
               f"{score.nats_per_char:.4f} nats/char over {score.predicted:,} predictions")
    if score.unknown_chars:
        click.echo(f"{score.unknown_chars:,} characters outside the vocabulary were skipped: "
                   f"{' '.join(repr(c) for c in score.unknown_distinct)}", err=True)


@cli.command()
@click.option("--checkpoint", type=click.Path(),
              help="A checkpoint file or a run directory (its best.npz) [default: the latest run].")
@click.option("--len", "length", default=1000, show_default=True, type=click.IntRange(min=0),
              help="Characters to generate (of a documents model: at most, per document).")
@click.option("--seed", type=click.IntRange(min=0), help="Random seed [default: a fresh one, reported].")
@click.option("--temperature", default=1.0, show_default=True, type=POSITIVE_FLOAT,
              help="Below 1: more likely characters; above 1: more varied.")
@click.option("--prime", default="", help="Text fed to the model after its start state (printed before the sample).")
@click.option("--prime-file", type=click.Path(dir_okay=False),
              help="A UTF-8 file whose text is the prime (long or multi-line; after --prime if both).")
@click.option("--top-k", default=0, show_default=True, type=click.IntRange(min=0),
              help="Pick only among the K most likely characters (0: among all).")
@click.option("--from-zero", is_flag=True,
              help="Start from h = 0 (what the model saw only at the book's start) instead of the "
                   "checkpoint's carried state and next character.")
@click.option("--num", type=POSITIVE,
              help="Texts to generate at once, each from the start, separated by blank lines (see --json); of a "
                   "documents model (a list, tweets), documents, one per line [default: 1; 20 documents].")
@click.option("--new-only", is_flag=True,
              help="Of a documents model: only documents that are not in its run's book (drawn until --num are).")
@click.option("--until-end", is_flag=True,
              help="For models trained on tweets: start a new text and stop at its end (--len is then a maximum).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the texts as one JSON array of strings (texts may hold blank lines themselves).")
@_errors
def sample(checkpoint, length, seed, temperature, prime, prime_file, top_k, from_zero, num, new_only, until_end,
           as_json):
    """Generate text from a trained model. Only the text goes to stdout.

    Text starts from the state the model was in when the checkpoint was written (its carried
    hidden state, fed the character that came next in the book), then --prime; --until-end
    feeds that state an end-of-text character instead. A model trained on documents (--format
    lines, tweets) writes documents, each from the start state to its end, and says on stderr
    how many copy a line of its run's book and how many are new."""
    from .trained import load
    from .settings import OptionError
    from .text import read_text

    model = load(checkpoint)
    if prime_file:
        prime += read_text(prime_file)
    fresh = seed is None
    if fresh:
        import secrets

        seed = secrets.randbelow(2**31)
    if model.documents:  # --until-end: one, as tweets were sampled before they were documents
        return _sample_documents(model, num or (1 if until_end else 20), length, seed, temperature, prime, top_k,
                                 new_only, as_json, fresh)
    if new_only:
        raise click.BadParameter("is for models trained on documents (--format lines, tweets)",
                                 param_hint="'--new-only'")
    num = num or 1
    try:
        texts = model.sample(length, temperature=temperature, prime=prime, seed=seed, num=num, top_k=top_k,
                             from_zero=from_zero, until_end=until_end)
    except OptionError as err:
        if err.option == "prime" and prime_file:
            raise click.BadParameter(str(err), param_hint="'--prime' / '--prime-file'") from None
        raise
    if fresh:
        click.echo(f"sampled {model.path} with --seed {seed}", err=True)
    if as_json:
        import json

        click.echo(json.dumps(texts, ensure_ascii=False))
    else:
        click.echo("\n\n".join(texts))


def _sample_documents(model, num, length, seed, temperature, prime, top_k, new_only, as_json, fresh) -> None:
    """``fastrnn sample`` of a documents model: one document per line, the counts on stderr."""
    result = model.sample_documents(num, max_length=length, temperature=temperature, prime=prime, seed=seed,
                                    top_k=top_k, new_only=new_only)
    if fresh:
        click.echo(f"sampled {model.path} with --seed {seed}", err=True)
    if result.counts is None:
        click.echo(f"{result.drawn} documents; no counts of copies and new ones: {result.no_counts}", err=True)
    else:
        c = result.counts
        click.echo(f"{result.drawn} documents drawn: {c['new']} new, {c['training']} copies of a training line, "
                   f"{c['held_out']} copies of a held-out line", err=True)
    if as_json:
        import json

        click.echo(json.dumps(result.documents, ensure_ascii=False))
    else:
        # one a line, unless they hold line breaks themselves (tweets): then a blank line between
        click.echo(("\n\n" if any("\n" in d for d in result.documents) else "\n").join(result.documents))


@cli.command()
@click.argument("book", required=False, type=click.Path(dir_okay=False))
@setting_option("cell", help="The recurrent cell (rnn with one layer: the assignment's model).")
@setting_option("layers", help="Layers of the cell.")
@setting_option("embedding", default=0, show_default=True)
@setting_option("hidden", default=5, show_default=True)
@setting_option("seq_length", default=25, show_default=True)
@setting_option("seed")
@setting_option("sigma")
@click.option("--chunks", default=0, show_default=True, type=click.IntRange(min=0),
              help="Chunks at random positions to check besides the first.")
@click.option("--h", "step", default=1e-4, show_default=True, type=POSITIVE_FLOAT,
              help="Finite-difference step.")
@click.option("--tol", type=POSITIVE_FLOAT, help="Largest relative error that passes [default: 1e-6; 1e-3 in float32].")
@setting_option("dtype", default="float64", show_default=True,
                help="Precision of the kernels under test (the reference runs in float64).")
@setting_option("encoding")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@_errors
def gradcheck(book, cell, layers, embedding, hidden, seq_length, seed, sigma, chunks, step, tol, dtype, encoding,
              as_json):
    """Compare analytic gradients with numerical ones for every parameter.

    Checks the Numba kernels and the NumPy reference on the first chunk of BOOK (a small
    built-in text without BOOK) and on --chunks more. Prints, per parameter, the largest
    relative error |ga - gn| / max(1e-6, |ga| + |gn|) and the largest absolute error; exits 1 if
    any relative error exceeds --tol.
    """
    import json

    from .api import gradcheck as gradient_check

    check = gradient_check(book, cell=cell, layers=layers, hidden=hidden, seq_length=seq_length, seed=seed,
                           sigma=sigma, chunks=chunks, h=step, tol=tol, dtype=dtype, encoding=encoding,
                           embedding=embedding)
    click.echo(json.dumps(check.as_dict(), indent=2) if as_json else check.table())
    if check.failed:
        raise _fail(f"gradient check failed (relative error above {check.tol:g}): {', '.join(check.failed)}")
    if not as_json:
        click.echo("passed")


@cli.command(name="sweep")
@click.argument("book", required=False, type=click.Path())
@click.option("--grid", "grids", multiple=True, metavar="NAME=V1,V2,...",
              help=f"A train option and its values ({', '.join(n.replace('_', '-') for n in settings.SWEEPABLE)}); "
                   "repeat for more.")
@click.option("--seeds", default=1, show_default=True, type=POSITIVE, help="Seeds 0..S-1 for each configuration.")
@click.option("--steps", type=POSITIVE, help="Updates per trial (the last rung's, with --halving).")
@click.option("--epochs", type=POSITIVE, help="Passes over the book per trial, instead of or with --steps.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="The sweep's directory (new or empty).")
@click.option("--val-fraction", default=0.1, show_default=True, type=click.FloatRange(0, 0.5, min_open=True,
              max_open=True), help="Held-out end of the book that ranks the trials.")
@click.option("--halving", type=click.IntRange(min=2), metavar="ETA",
              help="Successive halving: the best 1/ETA of the trials of each rung go on to ETA times the updates.")
@click.option("--workers", type=POSITIVE, help="Worker processes of the local cluster [default: cores / threads].")
@click.option("--threads", default=1, show_default=True, type=POSITIVE, help="Cores per trial.")
@click.option("--scheduler", help="A running Dask scheduler, tcp://HOST:PORT [default: a local cluster].")
@click.option("--scheduler-file", type=click.Path(dir_okay=False), help="A Dask scheduler file (for --scheduler).")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue the sweep in this directory.")
@_errors
def sweep_command(book, grids, seeds, steps, epochs, out_dir, val_fraction, halving, workers, threads, scheduler,
                  scheduler_file, resume_dir):
    """Train every configuration of a grid on a Dask cluster (a local one by default), each an
    ordinary run directory under --out; writes results.csv and sweep.png and prints the trials,
    best first. Needs Dask: pip install "fastrnn[sweep]"."""
    from click.core import ParameterSource

    from .sweeps import sweep

    if bool(out_dir) == bool(resume_dir):
        raise click.UsageError("give --out DIR for a new sweep, or --resume DIR to continue one")
    ctx = click.get_current_context()
    settings = {"book": "BOOK", "grids": "--grid", "seeds": "--seeds", "steps": "--steps", "epochs": "--epochs",
                "val_fraction": "--val-fraction", "halving": "--halving"}
    given = [shown for name, shown in settings.items() if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]
    if resume_dir and given:
        raise click.UsageError(f"--resume continues a sweep with its own settings: leave out {', '.join(given)}")
    say = lambda message: click.echo(message, err=True)  # noqa: E731
    rows = sweep(book, grid=grids, seeds=seeds, steps=steps, epochs=epochs, out=resume_dir or out_dir,
                 val_fraction=val_fraction,
                 halving=halving, workers=workers, threads=threads, scheduler=scheduler,
                 scheduler_file=scheduler_file, resume=bool(resume_dir), say=say)
    shown = {"best_val_bits_per_char": "{:.4f}", "chars_per_s": "{:,.0f}", "seconds": "{:.1f}", "updates": "{:,}"}
    columns = list(rows[0]) if rows else []
    table = [columns] + [["-" if row[k] is None else shown.get(k, "{}").format(row[k]) for k in columns]
                         for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        click.echo("  ".join(cell.rjust(width) for cell, width in zip(line, widths)).rstrip())


@cli.group()
def corpus():
    """Public-domain texts to train on, downloaded once into $FASTRNN_DATA."""


@corpus.command(name="list")
def corpus_list():
    """The registry: name, size, whether it is downloaded, and what it is."""
    from .corpora import REGISTRY, corpus_path

    for c in REGISTRY.values():
        have = "downloaded" if os.path.isfile(corpus_path(c.name)) else "-"
        size = f"{c.size / 1e6:.1f} MB" if c.size else "?"
        click.echo(f"{c.name:<14}{size:>9}  {have:<11} {c.title}  <{c.url}>")


@corpus.command(name="get")
@click.argument("name")
@_errors
def corpus_get(name):
    """Download corpus NAME (once) and print the path of its text."""
    from .corpora import CorpusError, get

    try:
        click.echo(get(name))
    except CorpusError as err:
        raise _fail(str(err)) from None


@cli.group(invoke_without_command=True)
@click.pass_context
def cache(ctx):
    """Where fastrnn keeps compiled kernels, encoded books and downloaded texts, and their sizes;
    `fastrnn cache clear` empties them."""
    if ctx.invoked_subcommand is not None:
        return
    from .storage import places

    for place in places():
        count = f"{place.count} {'version' if place.what == 'compiled kernels' else 'file'}" + (
            "s" if place.count != 1 else "")
        note = f"; {place.note}" if place.note else ""
        click.echo(f"{place.what:<19}{place.bytes / 1e6:>9.1f} MB  {count}{note}  {place.path}")


@cache.command(name="clear")
@click.option("--prune", is_flag=True, help="Only the compiled kernels of other fastrnn versions.")
@click.option("--all", "everything", is_flag=True, help="Also the downloaded corpora and the demo corpus.")
@_errors
def cache_clear(prune, everything):
    """Remove compiled kernels and encoded books (made again when needed)."""
    from .storage import clear

    if prune and everything:
        raise click.UsageError("--prune keeps what --all removes: give one")
    click.echo(f"freed {clear(prune, everything) / 1e6:.1f} MB", err=True)


def main():
    cli(prog_name="fastrnn")


if __name__ == "__main__":
    main()
