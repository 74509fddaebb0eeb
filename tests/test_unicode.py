"""Random Unicode texts through a short train and sample (property-based)."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastrnn.model import load_checkpoint

from helpers import run

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufeff"),
                min_size=12, max_size=400)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts)
def test_any_text_trains_and_samples(tmp_path_factory, text):
    tmp = tmp_path_factory.mktemp("u")
    path = tmp / "book.txt"
    path.write_bytes(text.encode("utf-8"))
    out = tmp / "run"
    result = run(["train", str(path), "--out", str(out), "--hidden", "6", "--seq-length", "5",
                  "--steps", "12", "--sample-every", "5", "--log-every", "1", "-q"])
    assert result.exit_code == 0, result.output
    state = load_checkpoint(out / "best.npz")
    assert state.vocab.chars == "".join(sorted(set(text)))
    sampled = run(["sample", "--checkpoint", str(out), "--len", "50", "--seed", "3"])
    assert sampled.exit_code == 0, sampled.output
    body = sampled.stdout[:-1]  # click adds one newline
    assert len(body) == 50 and set(body) <= set(text)
