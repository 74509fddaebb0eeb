"""Text generation: where it starts (the carried state, not h = 0), top-k, primes from files."""
import json

import numpy as np
import pytest

from fastrnn import reference
from fastrnn.model import Hyper, State, init_state, load_checkpoint, save_checkpoint
from fastrnn.sample import sample_indices, sample_text, start_state
from fastrnn.text import build_vocab

from helpers import one_line_error, run, small_state


def attractor_model(h_carried=0.99) -> State:
    """One hidden unit, vocabulary "ab": h > 0 predicts 'a' and, fed an 'a', stays positive;
    from h = 0 the bias pulls it below zero, where it predicts 'b' and stays, whatever it is
    fed. A model that, like some trained on a book, writes noise from h = 0 and text from the
    state it was trained in (carried h > 0, next character 'a')."""
    vocab = build_vocab("ab")
    state = init_state(vocab, Hyper(hidden=1, seq_length=5))
    v = state.views()
    v["W"][:] = 3.0
    v["U"][0] = [0.3, -0.3]  # input 'a' pushes h up, 'b' down, both weakly
    v["b"][:] = -0.5
    v["V"][:, 0] = [20.0, -20.0]
    v["c"][:] = [-1.0, 1.0]
    state.h[:] = h_carried
    state.next_char = 0  # 'a'
    return state


@pytest.fixture
def attractor_checkpoint(tmp_path):
    path = tmp_path / "attractor.npz"
    save_checkpoint(path, attractor_model())
    return path


def test_sample_starts_from_the_carried_state_and_its_next_character(attractor_checkpoint):
    default = run(["sample", "--checkpoint", str(attractor_checkpoint), "--len", "60", "--seed", "1"])
    assert default.exit_code == 0, default.output
    assert default.stdout == "a" * 60 + "\n"
    zero = run(["sample", "--checkpoint", str(attractor_checkpoint), "--len", "60", "--seed", "1", "--from-zero"])
    assert zero.exit_code == 0, zero.output
    assert zero.stdout.count("b") >= 58  # the attractor: at most the first draw escapes it


def test_eval_scores_from_the_carried_state(tmp_path, attractor_checkpoint):
    text = tmp_path / "a.txt"
    text.write_text("a" * 300)
    carried = run(["eval", str(attractor_checkpoint), str(text), "--json"])
    zero = run(["eval", str(attractor_checkpoint), str(text), "--json", "--from-zero"])
    assert carried.exit_code == 0 and zero.exit_code == 0, carried.output + zero.output
    assert json.loads(carried.stdout)["bits_per_char"] < 1e-3
    assert json.loads(zero.stdout)["bits_per_char"] > 20


def test_start_state_is_the_reference_sampler_started_from_h_and_next_char(text):
    state, book = small_state(text, hidden=12, sigma=0.5)
    state.h[:] = np.random.default_rng(0).uniform(-1, 1, 12)
    state.next_char = int(book[3])
    uniforms = np.random.default_rng(4).random(100)
    expected = reference.sample(state.views(), state.h, state.next_char, 100, uniforms)
    assert sample_text(state, 100, rng=Fixed(uniforms)) == state.vocab.decode(expected)
    zero = reference.sample(state.views(), np.zeros(12), None, 100, uniforms)
    assert sample_text(state, 100, rng=Fixed(uniforms), from_zero=True) == state.vocab.decode(zero)
    # format 1 recorded no next character: the first one comes from the carried state's prediction
    state.next_char = None
    h, fed = start_state(state)
    assert np.array_equal(h, state.h) and fed == []
    old = reference.sample(state.views(), state.h, None, 100, uniforms)
    assert sample_text(state, 100, rng=Fixed(uniforms)) == state.vocab.decode(old)


class Fixed:
    """A generator that hands out given uniform numbers."""

    def __init__(self, uniforms):
        self.uniforms = uniforms

    def random(self, n):
        return self.uniforms[:n]


@pytest.mark.parametrize("top_k", [1, 3, 7])
def test_top_k_matches_reference(text, top_k):
    state, book = small_state(text, hidden=12, sigma=0.5)
    h = np.random.default_rng(0).uniform(-1, 1, 12)
    uniforms = np.random.default_rng(5).random(300)
    expected = reference.sample(state.views(), h, int(book[0]), 300, uniforms, 0.9, top_k=top_k)
    got = sample_indices(state.params, state.vocab, 12, 300, Fixed(uniforms), 0.9, h=h, prime=book[:1], top_k=top_k)
    assert got.tolist() == expected
    # every pick is among the top_k of the reference's probabilities at that step
    V, c = state.views()["V"], state.views()["c"]
    H = h.copy()
    W, U, b = (state.views()[k] for k in ("W", "U", "b"))
    x = int(book[0])
    for pick in expected:
        H = np.tanh(W @ H + U[:, x] + b)
        o = V @ H + c
        assert o[pick] >= np.sort(o)[-top_k]
        x = pick
    if top_k == 1:  # greedy: the random numbers do not matter
        other = sample_indices(state.params, state.vocab, 12, 300, Fixed(uniforms[::-1].copy()), 0.9, h=h,
                               prime=book[:1], top_k=1)
        assert other.tolist() == expected
    else:
        assert len(set(expected)) > top_k


def test_top_k_ties_keep_the_lowest_indices():
    state = init_state(build_vocab("abcd"), Hyper(hidden=2))
    state.views()["c"][:] = [1.0, 5.0, 5.0, 5.0]  # V = 0 after this: the logits are c
    state.views()["V"][:] = 0.0
    uniforms = np.linspace(0, 0.999, 50)
    got = sample_indices(state.params, state.vocab, 2, 50, Fixed(uniforms), top_k=2)
    assert set(got.tolist()) == {1, 2}
    assert got.tolist() == reference.sample(state.views(), np.zeros(2), None, 50, uniforms, top_k=2)


def test_top_k_off_is_todays_sampler(text):
    state, _ = small_state(text, hidden=12, sigma=0.5)
    uniforms = np.random.default_rng(1).random(200)
    plain = sample_indices(state.params, state.vocab, 12, 200, Fixed(uniforms))
    for k in (0, state.vocab.size, state.vocab.size + 5):
        assert np.array_equal(sample_indices(state.params, state.vocab, 12, 200, Fixed(uniforms), top_k=k), plain)


def test_prime_file_is_the_prime(tmp_path, text):
    state, _ = small_state(text, hidden=8)
    checkpoint = tmp_path / "model.npz"
    save_checkpoint(checkpoint, state)
    prime = tmp_path / "prime.txt"
    prime.write_text("the rain\nin spain\n")
    sample = ["sample", "--checkpoint", str(checkpoint), "--len", "30", "--seed", "2"]
    from_file = run(sample + ["--prime-file", str(prime)])
    assert from_file.exit_code == 0, from_file.output
    assert from_file.stdout == run(sample + ["--prime", "the rain\nin spain\n"]).stdout
    assert from_file.stdout.startswith("the rain\nin spain\n") and len(from_file.stdout) == 18 + 30 + 1
    one_line_error(run(sample + ["--prime-file", str(tmp_path / "no")]), 1, "no such file")
    prime.write_text("the rain@")
    one_line_error(run(sample + ["--prime-file", str(prime)]), 2, "'@'")


def test_until_end_starts_from_the_carried_state_fed_an_end_of_text(tmp_path):
    from fastrnn.formats import END_OF_TEXT

    vocab = build_vocab("ab" + END_OF_TEXT)
    state = init_state(vocab, Hyper(hidden=6, sigma=0.8, seed=3))
    state.h[:] = np.random.default_rng(0).uniform(-1, 1, 6)
    state.next_char = 1
    path = tmp_path / "tweets.npz"
    save_checkpoint(path, state)
    got = run(["sample", "--checkpoint", str(path), "--until-end", "--len", "200", "--seed", "4", "--num", "3",
               "--json"])
    assert got.exit_code == 0, got.output
    rng = np.random.default_rng(4)
    uniforms = rng.random(3 * 200).reshape(3, 200)
    end = vocab.encode(END_OF_TEXT)[0]
    for text, u in zip(json.loads(got.stdout), uniforms):
        full = vocab.decode(reference.sample(state.views(), state.h, int(end), 200, u))
        assert text == full.split(END_OF_TEXT)[0]


def test_format_1_checkpoints_still_sample(tmp_path, attractor_checkpoint):
    with np.load(attractor_checkpoint) as z:
        arrays = {k: z[k] for k in z.files if k != "next_char"}
    arrays["format_version"] = np.array(1)
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    assert load_checkpoint(old).next_char is None
    result = run(["sample", "--checkpoint", str(old), "--len", "40", "--seed", "1"])
    assert result.stdout == "a" * 40 + "\n"  # the carried h > 0 predicts 'a' by itself
