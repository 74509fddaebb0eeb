"""Documents in the kernels: every cell's update of a book of documents against the NumPy
reference from the same state, one at a time; nothing crosses an end marker, in the forward
pass or the gradient; the gradients agree with finite differences."""
import numpy as np
import pytest

from fastrnn.cells import CELLS
from fastrnn.engine import engine_for
from fastrnn.formats import END_OF_TEXT
from fastrnn.gradients import CheckSettings, check_gradients
from fastrnn.model import Hyper, init_state, with_streams
from fastrnn.text import build_vocab

from helpers import assert_updates_match_reference, stacks

NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "charlotte", "amelia", "harper", "evelyn", "abigail",
         "emily", "ella", "elizabeth", "camila", "luna", "sofia", "avery", "mila", "aria", "scarlett", "penelope"]
MODELS = [("classic", 1)] + stacks(1, 2)


def documents_state(cell, layers, streams, dtype, seed=1, **hyper):
    """A documents model on NAMES, packed as training packs them (a leading marker, each name
    followed by one), carrying a random state into its first chunk."""
    text = END_OF_TEXT + "".join(name + END_OF_TEXT for name in NAMES)
    vocab = build_vocab(text)
    stack = {} if cell == "classic" else dict(cell=cell, layers=layers)
    state = init_state(vocab, Hyper(hidden=6, seq_length=9, seed=seed, dtype=dtype, clip=0.5, streams=streams,
                                    documents=True, sigma=0.3, **stack, **hyper))
    if cell != "classic":  # out of the gates' linear range, as the stacks' own tests take them
        state.params *= state.params.dtype.type(2.0)
    state = with_streams(state, len(text))
    rng = np.random.default_rng(seed)
    if streams == 1:
        state.h[:] = rng.uniform(-0.5, 0.5, state.h.shape)
    else:
        state.stream_h[:] = rng.uniform(-0.5, 0.5, state.stream_h.shape)
    return state, vocab.encode(text)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell, layers", MODELS)
@pytest.mark.parametrize("streams", [1, 3])
def test_each_update_of_documents_matches_reference(cell, layers, streams, dtype):
    state, book = documents_state(cell, layers, streams, dtype)
    assert state.restart == int(state.vocab.encode(END_OF_TEXT)[0])
    assert_updates_match_reference(state, book, 8)


@pytest.mark.parametrize("cell, layers", MODELS)
def test_nothing_crosses_an_end_marker(cell, layers):
    # a chunk that starts at a marker: its loss and gradients are those of the zero state,
    # whatever state is carried in; and those of a chunk whose first document differs are
    # those of the same chunk, past its marker, only where the first document is not read
    state, book = documents_state(cell, layers, 1, "float64")
    engine = engine_for(state.layout)
    x, y = book[:30], book[1:31]
    zero = engine.chunk_gradients(state.params, x, y, np.zeros_like(state.h), state.restart)
    carried = engine.chunk_gradients(state.params, x, y, state.h, state.restart)
    assert zero[0] == carried[0] and np.array_equal(zero[1], carried[1])
    book_model = engine.chunk_gradients(state.params, x, y, state.h)  # the same chunk read as a book
    assert book_model[0] != zero[0]
    # the loss of the documents after the second marker does not depend on the first document
    second = int(np.flatnonzero(x == state.restart)[1])
    other = x.copy()
    other[1:second] = other[1:second][::-1]
    loss_a = engine.chunk_gradients(state.params, x[second:], y[second:], state.h, state.restart)[0]
    loss_b = engine.chunk_gradients(state.params, other[second:], y[second:], np.ones_like(state.h), state.restart)[0]
    assert loss_a == loss_b


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_of_documents_agree_with_finite_differences(cell):
    text = "\n".join(NAMES)
    classic = CheckSettings(documents=True, chunks=2, seq_length=20)
    settings = classic if cell == "rnn" else CheckSettings(cell=cell, layers=2, documents=True, chunks=2,
                                                          seq_length=20)
    results = check_gradients(text, settings)
    for impl in ("kernels", "reference"):
        for error in results[impl]:
            assert error.max_rel < 1e-6, (impl, error)
