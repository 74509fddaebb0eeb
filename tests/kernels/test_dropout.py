"""Dropout in the kernels: the masks against the reference's, and every update with dropout
against the NumPy reference from the same state, for every cell, dtype and stream count."""
from dataclasses import replace

import numpy as np
import pytest

from fastrnn import reference
from fastrnn.engine import Trainer
from fastrnn.kernels.dropout import dropout_masks_into
from fastrnn.model import with_streams

from helpers import assert_updates_match_reference, kernel_update, small_state, stacks
from test_stack import stack_state


@pytest.mark.parametrize("p", [0.1, 0.5, 0.25])
def test_masks_are_the_references_and_drop_a_fraction_p(p):
    L, n, G, m = 2, 7, 3, 13
    masks = np.empty((L, n, G, m), np.float32)
    dropout_masks_into(masks, p, 42, 9, 5)
    for s in range(G):
        assert np.array_equal(masks[:, :, s], reference.dropout_masks(p, 42, 9, 5 + s, L, n, m, np.float32))
    assert set(np.unique(masks)) == {0.0, np.float32(1 / (1 - p))}
    big = np.empty((1, 200, 4, 100))
    dropout_masks_into(big, p, 0, 1, 0)
    assert abs(np.mean(big == 0) - p) < 0.01
    # a function of (seed, update, stream): each draws masks independent of the others, which
    # differ where one keeps a unit and the other drops it, at 2 p (1 - p) of them
    for seed, update, first in ((0, 2, 0), (1, 1, 0), (0, 1, 4)):
        other = np.empty_like(big)
        dropout_masks_into(other, p, seed, update, first)
        assert abs(np.mean(other[:, :, 0] != big[:, :, 0]) - 2 * p * (1 - p)) < 0.02


def dropout_state(text, model, dtype, p, chars=150):
    cell, layers, streams = model.split("-")
    if cell == "classic":
        state, book = small_state(text[:chars], hidden=8, seq_length=10, sigma=0.3, dtype=dtype, clip=0.5)
    else:
        state, book = stack_state(text[:chars], cell, int(layers), seq_length=10, dtype=dtype, clip=0.5, scale=2.0)
    state.hyper = replace(state.hyper, streams=int(streams), dropout=p, seed=3)
    return (with_streams(state, book.shape[0]) if int(streams) > 1 else state), book


# "cell-layers-streams": the classic model, and every cell's stacks, one layer on one stream and
# two on three
MODELS = ["classic-1-1", "classic-1-3"] + [f"{cell}-{layers}-{1 if layers == 1 else 3}" for cell, layers in stacks(1, 2)]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_each_update_with_dropout_matches_reference(text, model, dtype):
    state, book = dropout_state(text, model, dtype, 0.3)
    # in float32, AdaGrad's first steps divide a gradient element far below the array's scale
    # (within the tolerance) by sqrt(eps), and its rounding shows in the weight: the step given
    # the gradient does not depend on dropout, and test_loop.py checks it
    assert_updates_match_reference(state, book, 6, check_params=dtype == "float64")


def test_dropout_changes_the_update_and_zero_is_none(text):
    state, book = dropout_state(text, "lstm-2-3", "float64", 0.0)
    plain = kernel_update(state, book)[1]
    state.hyper = replace(state.hyper, dropout=0.5)
    dropped = kernel_update(state, book)[1]
    assert not np.array_equal(plain.params, dropped.params)
    m = state.hyper.hidden
    # the recurrent connections never go through a mask: the first layer carries the same h
    assert np.array_equal(plain.h[:m], dropped.h[:m]) and not np.array_equal(plain.h[m:2 * m], dropped.h[m:2 * m])


@pytest.mark.parametrize("model", ["classic-1-20", "gru-2-20"])
def test_dropout_results_do_not_depend_on_the_threads(text, model):
    state, book = dropout_state(text, model, "float64", 0.4, chars=len(text))
    runs = []
    for parallel in (False, True):
        trainer = Trainer(state.copy(), book, parallel=parallel)
        losses, _ = trainer.run(4)
        runs.append((losses, trainer.state().params))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
