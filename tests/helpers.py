"""Shared test helpers: comparing the kernels with the reference from one state."""
import numpy as np

from fastrnn import reference
from fastrnn.model import Hyper, State, init_state
from fastrnn.text import build_vocab
from fastrnn.train import Trainer


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
    """One update of the classic algorithm in the reference, from ``state``; returns
    (new_state, loss, raw_grads)."""
    new = state.copy()
    n = state.hyper.seq_length
    if new.position + n + 1 > book.shape[0]:
        new.position, new.h[:] = 0, 0.0
        new.epoch += 1
    x = book[new.position:new.position + n]
    y = book[new.position + 1:new.position + n + 1]
    params, mem = new.views(), new.layout.views(new.adagrad)
    loss, grads, h = reference.loss_and_grads(params, x, y, new.h)
    reference.adagrad_step(params, mem, grads, state.hyper.eta, state.hyper.eps, state.hyper.clip)
    new.h[:] = h
    new.position += n
    new.update += 1
    new.smooth_loss = loss if np.isnan(state.smooth_loss) else 0.999 * state.smooth_loss + 0.001 * loss
    return new, loss, grads


def kernel_update(state: State, book):
    """One update through ``kernels.train_chunks`` from ``state``; returns
    (trainer, new_state, loss, smooth, raw_grads as named views)."""
    trainer = Trainer(state, book)
    losses, smooths = trainer.run(1)
    grads = state.layout.views(trainer.grads)
    return trainer, trainer.state(), losses[0], smooths[0], grads
