"""sampler: sample_chars against the reference sampler."""
import numpy as np
import pytest

from fastrnn import reference
from fastrnn.sample import sample_indices

from helpers import small_state


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sampler_matches_reference(text, temperature):
    state, book = small_state(text, hidden=12, sigma=0.5)
    h = np.random.default_rng(0).uniform(-1, 1, 12)
    uniforms = np.random.default_rng(5).random(300)
    expected = reference.sample(state.views(), h, int(book[0]), 300, uniforms, temperature)

    class Fixed:
        def random(self, n):
            return uniforms[:n]

    got = sample_indices(state.params, state.vocab, 12, 300, Fixed(), temperature, h=h, prime=book[:1])
    assert got.tolist() == expected
    assert len(set(expected)) > 5


def test_texts_sampled_at_once_are_the_texts_sampled_one_by_one(text):
    state, book = small_state(text, hidden=12, sigma=0.5)
    h = np.random.default_rng(0).uniform(-1, 1, 12)
    args = (state.params, state.vocab, 12, 200)
    rng = np.random.default_rng(3)
    one_by_one = [sample_indices(*args, rng, 0.8, h=h, prime=book[:3]) for _ in range(5)]
    at_once = sample_indices(*args, np.random.default_rng(3), 0.8, h=h, prime=book[:3], num=5)
    assert at_once.shape == (5, 200)
    assert [row.tolist() for row in at_once] == [row.tolist() for row in one_by_one]
    assert len({tuple(row) for row in at_once}) == 5


def test_texts_sampled_in_groups_are_the_same_texts(text, monkeypatch):
    from fastrnn import sample

    state, _ = small_state(text, hidden=12, sigma=0.5)
    whole = sample.sample_texts(state, 60, 5, seed=2, prime="th")
    monkeypatch.setattr(sample, "TEXTS_AT_ONCE", 2)  # groups of 2, 2 and 1
    assert sample.sample_texts(state, 60, 5, seed=2, prime="th") == whole
    assert len(set(whole)) == 5 and all(t.startswith("th") and len(t) == 62 for t in whole)


def test_sampler_without_prime_starts_from_softmax_of_c(text):
    state, _ = small_state(text, hidden=6)
    c = state.views()["c"]
    c[:] = -50.0
    c[3] = 50.0
    state.views()["V"][:] = 0.0
    out = sample_indices(state.params, state.vocab, 6, 5, np.random.default_rng(0))
    assert out.tolist() == [3] * 5
