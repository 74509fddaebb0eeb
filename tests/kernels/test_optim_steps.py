"""The optimizers (Adam, RMSprop; AdaGrad's own tests are test_loop.py's), the global-norm clip
and the learning-rate schedules in the training loop: every update against the NumPy reference
from the same state, for the classic cell and an LSTM stack, one stream and several."""
from dataclasses import replace

import numpy as np
import pytest

from fastrnn.model import with_streams
from fastrnn.optimizers import learning_rates

from helpers import assert_updates_match_reference, small_state
from test_stack import stack_state

SETTINGS = [
    dict(optimizer="adam", eta=0.01),
    dict(optimizer="adam", eta=0.01, weight_decay=0.1, beta1=0.8, schedule="cosine", warmup=3, schedule_updates=10,
         min_eta=0.001),
    dict(optimizer="rmsprop", eta=0.01, alpha=0.9, weight_decay=0.05),
    dict(optimizer="adagrad", clip_norm=0.5, schedule="step", decay=0.5, decay_every=3),
    dict(optimizer="rmsprop", eta=0.005, clip_norm=1.0),
]


def with_settings(state, streams, n_chars, **settings):
    state.hyper = replace(state.hyper, streams=streams, **settings)
    k = 2 if settings.get("optimizer") == "adam" else 1
    state.opt_state = np.zeros((k, state.params.shape[0]), state.params.dtype)
    return with_streams(state, n_chars)


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("model", ["classic-1", "lstm-3"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_each_update_matches_reference(text, settings, model, dtype):
    kind, streams = model.split("-")
    if kind == "classic":
        state, book = small_state(text[:150], hidden=8, seq_length=10, sigma=0.3, dtype=dtype, clip=0.5)
    else:
        state, book = stack_state(text[:150], "lstm", 2, seq_length=10, dtype=dtype, clip=0.5, scale=2.0)
    state = with_settings(state, int(streams), book.shape[0], **settings)
    assert_updates_match_reference(state, book, 8)


def test_schedules_are_functions_of_the_update():
    state, _ = small_state("some text to learn from, long enough.", hidden=4)
    h = replace(state.hyper, eta=0.1, schedule="cosine", warmup=10, schedule_updates=110, min_eta=0.01)
    rates = learning_rates(h, 0, 200)
    assert rates[0] == pytest.approx(0.1 / 11) and rates[9] == pytest.approx(0.1 * 10 / 11)
    assert rates[10] == pytest.approx(0.1) and rates[60] == pytest.approx(0.055) and rates[110:].max() == 0.01
    assert np.all(np.diff(rates[10:111]) <= 0)
    assert np.array_equal(np.concatenate([learning_rates(h, 0, 77), learning_rates(h, 77, 123)]), rates)
    step = replace(h, schedule="step", warmup=0, decay=0.5, decay_every=50)
    assert learning_rates(step, 0, 151)[[0, 49, 50, 100, 150]].tolist() == [0.1, 0.1, 0.05, 0.025, 0.0125]
    assert np.all(learning_rates(replace(h, schedule="constant", warmup=0), 5, 5) == 0.1)
