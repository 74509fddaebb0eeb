import numpy as np
import pytest

from fastrnn.text import TextError, Vocab, build_vocab, load_book, read_text


def test_vocab_is_sorted_distinct_code_points():
    vocab = build_vocab("baña\tü•b")
    assert vocab.chars == "".join(sorted(set("baña\tü•b")))
    assert vocab.codepoints.dtype == np.uint32


def test_encode_decode_round_trip_with_non_ascii():
    text = "Grüße, ‘quotes’ • émoji 🙂\n\ttabs"
    vocab = build_vocab(text)
    idx = vocab.encode(text)
    assert idx.dtype == np.uint8
    assert idx.shape == (len(text),)
    assert vocab.decode(idx) == text
    assert np.array_equal(vocab.codepoints[idx], [ord(ch) for ch in text])


def test_large_vocabulary_uses_wider_indices():
    text = "".join(chr(0x4E00 + i) for i in range(300))
    vocab = build_vocab(text)
    idx = vocab.encode(text)
    assert idx.dtype == np.uint16
    assert vocab.decode(idx) == text


def test_encode_names_characters_outside_vocabulary():
    vocab = build_vocab("abc")
    with pytest.raises(TextError, match="'z'"):
        vocab.encode("abz")
    assert vocab.missing("xyzab") == "xyz"


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\xff\xfe\x00bad", "not valid utf-8"),
    (b"abc\x00\x01\x02", "binary"),
])
def test_bad_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "f.txt"
    path.write_bytes(content)
    with pytest.raises(TextError, match=message) as info:
        read_text(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(TextError, match="no such file"):
        read_text(tmp_path / "nope.txt")
    with pytest.raises(TextError, match="directory"):
        read_text(tmp_path)


def test_other_encodings_and_bom(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("café".encode("latin-1"))
    with pytest.raises(TextError, match="--encoding"):
        read_text(path)
    assert read_text(path, "latin-1") == "café"
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffhello".encode("utf-8"))
    assert read_text(bom) == "hello"


def test_too_short_for_a_chunk(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abc")
    with pytest.raises(TextError, match="at least seq_length"):
        load_book(path, min_chars=26)
    vocab, idx = load_book(path, min_chars=3)
    assert isinstance(vocab, Vocab) and idx.tolist() == [0, 1, 2]


@pytest.mark.parametrize("block", [1, 3, 7, 1 << 24])
def test_streaming_encoder_matches_whole_text_at_any_block_size(tmp_path, monkeypatch, block):
    import fastrnn.text as text_module

    monkeypatch.setattr(text_module, "BLOCK_BYTES", block)
    text = "\ufeff" + "Grüße • ‘quotes’ 🙂 Ünïcödé\n\tend" * 3
    path = tmp_path / "b.txt"
    path.write_text(text, encoding="utf-8")
    vocab, idx = load_book(path)
    body = text[1:]
    assert vocab.chars == "".join(sorted(set(body)))
    assert vocab.decode(idx) == body
    bad = tmp_path / "bad.txt"
    bad.write_bytes("ok ü".encode() + b"\xff rest")
    with pytest.raises(TextError, match="byte 5"):
        load_book(bad)
    # a character cut short and held back across a block boundary: counted from its first byte
    bad.write_bytes("ok ü".encode() + b"\xe2\x82A rest")
    with pytest.raises(TextError, match="byte 5:"):
        load_book(bad)
    # a byte-order mark counts as the three bytes it is, whichever name the encoding goes by
    bad.write_bytes(b"\xef\xbb\xbfab\xffcd")
    for encoding in ("utf-8", "utf-8-sig"):
        with pytest.raises(TextError, match="byte 5:"):
            load_book(bad, encoding=encoding)


def test_large_text_is_encoded_in_bounded_memory(tmp_path):
    """A 64 MB text: peak memory stays near the one-byte-per-character index array, far below
    what holding the text as a string (and its UTF-32 copy) would take."""
    import subprocess
    import sys

    from conftest import make_text

    block = make_text(n_words=200_000, seed=9).encode("utf-8")
    path = tmp_path / "large.txt"
    with open(path, "wb") as f:
        while f.tell() < 64 << 20:
            f.write(block)
    size_mb = path.stat().st_size / 2**20
    code = ("import resource, sys; from fastrnn.text import load_book; "
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            "vocab, idx = load_book(sys.argv[1]); "
            "print(idx.shape[0], idx.dtype, before / 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout
    n_chars, dtype, before_mb, peak_mb = out.split()
    assert int(n_chars) == path.stat().st_size and dtype == "uint8"
    assert float(peak_mb) - float(before_mb) < size_mb + 120, (size_mb, before_mb, peak_mb)
