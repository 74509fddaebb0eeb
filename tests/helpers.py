"""Shared test helpers: the command line through click's runner, run directories, and the
kernels against the reference from one state."""
import os

import numpy as np
from click.testing import CliRunner

from fastrnn import reference
from fastrnn.cells import CELLS, Layout
from fastrnn.cli import cli
from fastrnn.engine import Trainer
from fastrnn.model import Hyper, State, init_state
from fastrnn.optimizers import learning_rates
from fastrnn.text import build_vocab


def stacks(*layers: int) -> list[tuple[str, int]]:
    """(cell, L) for every cell of ``cells.CELLS`` and each L of ``layers``, but the classic
    model (one layer of the rnn cell on one-hot inputs), which is no stack."""
    return [(cell, L) for cell in CELLS for L in layers if not Layout(1, 1, cell, L).classic]


def assert_close(actual, expected, rtol=1e-10):
    """Relative agreement; entries far below the array's scale are held to rtol * scale."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * 1e-2 * scale)


def small_state(text, hidden=5, seq_length=7, seed=1, sigma=0.1, dtype="float64", clip=5.0):
    vocab = build_vocab(text)
    state = init_state(vocab, Hyper(hidden=hidden, seq_length=seq_length, seed=seed, sigma=sigma,
                                            dtype=dtype, clip=clip))
    return state, vocab.encode(text)


def reference_update(state: State, book):
    """One update of ``reference.train_step`` from ``state`` (one stream or many); returns
    (new_state, loss, raw_grads)."""
    new = state.copy()
    many = state.stream_h is not None
    H = new.stream_h if many else new.h[None, :]
    positions = new.stream_positions if many else np.array([new.position])
    h = state.hyper
    mem = [new.layout.views(a) for a in new.opt_state]
    eta = float(learning_rates(h, state.update, 1)[0])
    optimizer = reference.OptimizerSettings(h.optimizer, h.eps, h.clip, h.clip_norm, h.beta1, h.beta2, h.alpha,
                                            h.weight_decay)
    loss, grads = reference.train_step(new.views(), mem[0] if len(mem) == 1 else mem, H, positions, book,
                                       h.seq_length, new.params.dtype.type(eta), optimizer=optimizer,
                                       t=state.update + 1, dropout=reference.Dropout(h.dropout, h.seed),
                                       restart=None if state.restart < 0 else state.restart)
    new.position, new.update = int(positions[0]), new.update + 1
    new.epoch = max(0, new.update * state.hyper.streams - 1) // ((book.shape[0] - 1) // state.hyper.seq_length)
    new.smooth_loss = loss if np.isnan(state.smooth_loss) else 0.999 * state.smooth_loss + 0.001 * loss
    return new, loss, grads


def kernel_update(state: State, book):
    """One update through ``kernels.loop`` from ``state``; returns (trainer, new_state, loss,
    smooth, raw_grads as named views: the mean over streams)."""
    trainer = Trainer(state, book)
    losses, smooths = trainer.run(1)
    if state.hyper.embedding:  # the chain rule's, from the one-hot fold's
        grads = trainer.work.param_grads
    else:
        grads = trainer.work.grads if state.hyper.streams > 1 else trainer.work.block_grads[0]
    return trainer, trainer.state(), losses[0], smooths[0], state.layout.views(grads)


def assert_updates_match_reference(state: State, book, updates: int, check_params: bool = True) -> None:
    """``updates`` updates through ``kernels.loop``, each from the reference's state before it,
    agree with ``reference.train_step`` (loss, raw gradients and, with ``check_params``, the
    parameters and the optimizer's state after the step), at both update paths (a new best
    or not)."""
    rtol = 1e-10 if state.params.dtype == np.float64 else 2e-4
    for step in range(updates):
        state.best_smooth_loss = -np.inf if step % 2 else np.inf
        expected, ref_loss, ref_grads = reference_update(state, book)
        _, got, loss, _, grads = kernel_update(state, book)
        assert_close(loss, ref_loss, rtol)
        for name in ref_grads:
            assert_close(grads[name], ref_grads[name], rtol)
        if check_params:
            assert_close(got.params, expected.params, rtol)
            assert_close(got.opt_state, expected.opt_state, rtol)
        state = expected


def run(args, cwd=None):
    runner = CliRunner()
    if cwd is None:
        return runner.invoke(cli, args, prog_name="fastrnn")
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(cli, args, prog_name="fastrnn")
    finally:
        os.chdir(old)


def one_line_error(result, code, fragment, alone=True):
    """The command failed with ``code`` and one error line holding ``fragment``; with ``alone``,
    that line is all of stderr (otherwise it is the last line, after progress output)."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    if alone:
        assert len(lines) == 1, result.stderr
    assert [ln for ln in lines if ln.startswith("Error: ")] == lines[-1:], result.stderr
    assert fragment in lines[-1], lines[-1]
    assert "Traceback" not in result.output


SMALL = ["--hidden", "12", "--seq-length", "10", "--log-every", "7", "--sample-every", "40",
         "--checkpoint-every", "30", "-q"]


def npz_arrays(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def assert_same_run(a, b):
    for name in ("last.npz", "best.npz"):
        x, y = npz_arrays(a / name), npz_arrays(b / name)
        assert x.keys() == y.keys()
        for key in x:
            assert np.array_equal(x[key], y[key]), (name, key)
    for name in ("metrics.csv", "samples.txt"):
        assert (a / name).read_text(encoding="utf-8") == (b / name).read_text(encoding="utf-8"), name
