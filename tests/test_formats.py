import json

import pytest

from fastrnn.formats import END_OF_TEXT, load_corpus, tweet_texts
from fastrnn.model import load_checkpoint
from fastrnn.text import TextError

from conftest import make_text
from helpers import one_line_error, run

TWEETS = ["Great day &amp; great people!", "Tax cuts &gt; taxes &#8212; &quot;yes&quot;", "Go team\nline two"]


def write_tweets(path, lines=False, repeat=30):
    items = [{"text": t, "created_at": "Mon Jan 01 00:00:00 +0000 2018", "id_str": str(i)}
             for i, t in enumerate(TWEETS * repeat)]
    if lines:
        path.write_text("\n".join(json.dumps(item) for item in items) + "\n", encoding="utf-8")
    else:
        path.write_text(json.dumps(items), encoding="utf-8")
    return path


@pytest.mark.parametrize("lines", [False, True])
def test_tweets_are_decoded_and_closed_by_end_of_text(tmp_path, lines):
    path = write_tweets(tmp_path / ("t.jsonl" if lines else "t.json"), lines)
    texts = tweet_texts(str(path))
    assert texts[:3] == ["Great day & great people!", "Tax cuts > taxes \u2014 \"yes\"", "Go team\nline two"]
    vocab, idx = load_corpus(str(path))
    decoded = vocab.decode(idx)
    assert decoded == "".join(t + END_OF_TEXT for t in texts)
    assert "&amp;" not in decoded and decoded.count(END_OF_TEXT) == len(texts)


def test_directory_of_text_files(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("second file", encoding="utf-8")
    (tmp_path / "1.txt").write_text("first file", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not included", encoding="utf-8")
    vocab, idx = load_corpus(str(tmp_path))
    assert vocab.decode(idx) == "first file\n\nsecond file"
    (tmp_path / "nothing").mkdir()
    with pytest.raises(TextError, match="no .txt files"):
        load_corpus(str(tmp_path / "nothing"))


@pytest.mark.parametrize("content, fragment", [
    ("[1, 2, 3]", "no objects with a 'text' field"),
    ('{"text": 5}', "no objects with a 'text' field"),
    ("{not json", "neither a JSON array nor JSON lines"),
])
def test_bad_tweet_files(tmp_path, content, fragment):
    path = tmp_path / "t.json"
    path.write_text(content, encoding="utf-8")
    one_line_error(run(["train", str(path), "--out", str(tmp_path / "run")]), 1, fragment)
    assert not (tmp_path / "run").exists()


def test_train_on_tweets_and_sample_whole_ones(tmp_path):
    path = write_tweets(tmp_path / "tweets.json")
    out = tmp_path / "run"
    result = run(["train", str(path), "--out", str(out), "--hidden", "32", "--steps", "1500", "-q"])
    assert result.exit_code == 0, result.output
    for seed in range(3):
        sampled = run(["sample", "--checkpoint", str(out), "--until-end", "--seed", str(seed), "--len", "400"])
        assert sampled.exit_code == 0, sampled.output
        text = sampled.stdout[:-1]
        assert END_OF_TEXT not in text and 0 < len(text) < 400
    # tweets are documents: without --until-end, 20 whole ones, each from the start state
    plain = run(["sample", "--checkpoint", str(out), "--seed", "1", "--len", "400", "--json"])
    tweets = json.loads(plain.stdout)
    assert len(tweets) == 20 and all(END_OF_TEXT not in t for t in tweets)
    assert "20 documents drawn" in plain.stderr
    several = run(["sample", "--checkpoint", str(out), "--until-end", "--seed", "0", "--len", "400", "--num", "6",
                   "--json"])
    texts = json.loads(several.stdout)
    assert texts[0] == run(["sample", "--checkpoint", str(out), "--until-end", "--seed", "0", "--len", "400"]
                           ).stdout[:-1]
    # six draws from one start state; the model knows three tweets, so some repeat
    assert len(set(texts)) > 1 and all(END_OF_TEXT not in t and 0 < len(t) < 400 for t in texts)


def test_until_end_needs_a_tweet_model(tmp_path, book):
    out = tmp_path / "run"
    assert run(["train", str(book), "--out", str(out), "--hidden", "8", "--steps", "5", "-q"]).exit_code == 0
    one_line_error(run(["sample", "--checkpoint", str(out), "--until-end"]), 1, "end-of-text")


def test_format_option_and_resume_keep_the_format(tmp_path):
    path = write_tweets(tmp_path / "tweets.data")  # no .json name: auto would read it as plain text
    out = tmp_path / "run"
    result = run(["train", str(path), "--format", "json", "--out", str(out), "--hidden", "8", "--steps", "20", "-q"])
    assert result.exit_code == 0, result.output
    assert END_OF_TEXT in load_checkpoint(out / "last.npz").vocab.chars
    resumed = run(["train", "--resume", str(out), "--steps", "40", "-q"])
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(out / "last.npz").update == 40


def test_directory_trains(tmp_path):
    corpus = tmp_path / "books"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"{i}.txt").write_text(make_text(n_words=100, seed=i), encoding="utf-8")
    out = tmp_path / "run"
    result = run(["train", str(corpus), "--out", str(out), "--hidden", "8", "--steps", "20", "-q"])
    assert result.exit_code == 0, result.output
