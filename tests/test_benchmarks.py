"""The benchmark suite runs end to end (tiny settings: this checks it works, not its speed)."""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import run as bench  # noqa: E402


def test_generated_text_has_the_book_vocabulary_size():
    text = bench.generated_text(20_000)
    assert len(set(text)) == 80 and len(text) == 20_000


def test_flops_per_char_matches_the_count_in_the_docs():
    assert bench.flops_per_char(100, 80) == 108_000


def test_suite_writes_a_report(tmp_path, capsys):
    out = tmp_path / "r.json"
    report = bench.main(["--rounds", "1", "--updates", "3", "20", "--quality-updates", "0",
                         "--skip-startup", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["machine"]["cores"] >= 1 and saved["K"] == 80
    for key in ("reference", "float64", "float32", "sample_reference", "sample_kernel"):
        assert np.isfinite(saved["chars_per_s"][key]["median"]) and saved["chars_per_s"][key]["median"] > 0
    assert report["ratios"]["float64_vs_reference"]["median"] > 0
    for dtype in ("float64", "float32"):  # an epoch is the book's length at the median speed
        epoch = saved["book_chars"] / saved["chars_per_s"][dtype]["median"]
        assert np.isclose(saved[f"epoch_seconds_{dtype}"], epoch)
    assert "kernels float64" in capsys.readouterr().out


def test_scaling_table_rows():
    text = bench.generated_text(20_000)
    from fastrnn.text import build_vocab

    vocab = build_vocab(text)
    rows = bench.scaling(vocab, vocab.encode(text), rounds=1, chars=2_000, streams=(1, 4), float32_streams=(4,))
    assert {(r["streams"], r["dtype"], r["threads"]) for r in rows} >= {(1, "float64", 1), (4, "float64", 1),
                                                                       (4, "float32", 1)}
    assert all(r["chars_per_s"]["median"] > 0 for r in rows)


def test_thread_counts_are_powers_of_two_and_all_cores():
    assert bench.thread_counts(1) == [1] and bench.thread_counts(2) == [1, 2]
    assert bench.thread_counts(16) == [1, 2, 4, 8, 16] and bench.thread_counts(12) == [1, 2, 4, 8, 12]


def test_stream_quality_reports_every_seed():
    text = bench.generated_text(20_000)
    from fastrnn.text import build_vocab

    vocab = build_vocab(text)
    q = bench.stream_quality(vocab.encode(text), vocab, chars=3_200, seeds=(0, 1))
    assert q["seeds"] == [0, 1] and len(q["smooth_loss_1_stream"]) == len(q["smooth_loss_16_streams"]) == 2
    assert all(np.isfinite(x) and x > 0 for x in q["smooth_loss_1_stream"] + q["smooth_loss_16_streams"])
    assert q["smooth_loss_1_stream"][0] != q["smooth_loss_1_stream"][1]  # the seeds differ


def test_start_state_benchmark_writes_its_table(tmp_path):
    import subprocess

    from conftest import make_text

    book = tmp_path / "book.txt"
    book.write_text(make_text(2000), encoding="utf-8")
    out = tmp_path / "start.json"
    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "start_state.py")
    result = subprocess.run([sys.executable, script, "--book", str(book), "--updates", "200", "--every", "100",
                             "--dtypes", "float64", "--seeds", "1", "--jobs", "1", "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    saved = json.loads(out.read_text())
    (only,) = saved["runs"]
    assert [c["update"] for c in only["checkpoints"]] == [100, 200]
    assert only["carried"]["worst_val_bits"] > 0 and "noisy_passages" in only["zero"]


# benchmarks/cells.py: fastrnn's cells against PyTorch's (tiny models: this checks it works)

import cells as cells_bench  # noqa: E402

TINY_LSTM = cells_bench.Config("tiny-lstm", "lstm", 8, 2, 2, 1, "float32")
TINY_RNN = cells_bench.Config("tiny-rnn", "rnn", 8, 1, 1, 1, "float64")


def tiny_book():
    from fastrnn.text import build_vocab

    text = cells_bench.generated_text(20_000)
    vocab = build_vocab(text)
    return vocab, vocab.encode(text)


def test_cell_flops_per_char_match_the_counts_in_the_docs():
    assert cells_bench.flops_per_char("rnn", 100, 80) == bench.flops_per_char(100, 80)
    assert cells_bench.flops_per_char("lstm", 256, 65) == 1_672_704  # PERFORMANCE.md: about 1.67 Mflop
    assert cells_bench.flops_per_char("gru", 10, 5, layers=2) == 6 * (2 * 300 + 300 + 50)


def test_generated_text_has_tiny_shakespeares_vocabulary_size():
    text = cells_bench.generated_text(20_000)
    assert len(set(text)) == 65 and len(text) == 20_000


def test_cells_benchmark_without_torch_measures_fastrnn(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails
    vocab, book = tiny_book()
    (lstm,) = cells_bench.measure([TINY_LSTM], vocab, book, rounds=2, seconds=0.01)
    assert lstm["fastrnn"]["status"] == "ok" and lstm["torch"]["status"] == "skipped"
    assert len(lstm["fastrnn"]["chars_per_s"]["rounds"]) == 2 and lstm["fastrnn"]["chars_per_s"]["min"] > 0
    path = tmp_path / "book.txt"
    path.write_text(cells_bench.generated_text(20_000), encoding="utf-8")
    out = tmp_path / "cells.json"
    cells_bench.main(["--book", str(path), "--only", "rnn100-b1-f32", "--rounds", "1", "--seconds", "0.01",
                      "--json", str(out)])
    saved = json.loads(out.read_text())
    (rnn,) = saved["configs"]
    assert rnn["fastrnn"]["chars_per_s"]["median"] > 0 and "fastrnn_vs_torch" not in rnn
    assert set(saved["gemm_gflops"]["float32/1"]) == {"recurrent", "large"}
    assert 0 < rnn["fastrnn"]["fraction_of_gemm"]["large"] < 10
    captured = capsys.readouterr()
    assert "PyTorch side skipped" in captured.err and "rnn100-b1-f32" in captured.out


def test_cells_benchmark_rejects_unknown_configurations(capsys):
    import pytest

    with pytest.raises(SystemExit) as exc:
        cells_bench.main(["--only", "lstm999"])
    assert exc.value.code == 2 and "unknown configuration lstm999" in capsys.readouterr().err


def test_cells_benchmark_against_torch(monkeypatch):
    import pytest

    pytest.importorskip("torch")
    vocab, book = tiny_book()
    entries = cells_bench.measure([TINY_LSTM, TINY_RNN], vocab, book, rounds=2, seconds=0.01)
    for e in entries:  # the same weights and chunks give the same first loss on both sides
        assert e["fastrnn"]["status"] == e["torch"]["status"] == "ok"
        assert np.isclose(e["fastrnn_first_loss"], e["torch_first_loss"], rtol=1e-3)
        assert e["fastrnn_vs_torch"]["median"] > 0 and e["torch"]["gflops"] > 0
    monkeypatch.setattr(cells_bench.FastrnnSide, "first_loss", lambda self: 1.0)
    (e,) = cells_bench.measure([TINY_RNN], vocab, book, rounds=1, seconds=0.01)
    assert e["fastrnn"]["status"] == "differs" and "fastrnn_vs_torch" not in e


def test_cells_benchmark_reports_a_cell_fastrnn_cannot_train(monkeypatch, capsys):
    def fails(self):
        raise NotImplementedError("no kernels for this cell")

    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr(cells_bench.FastrnnSide, "first_loss", fails)
    vocab, book = tiny_book()
    (e,) = cells_bench.measure([TINY_RNN], vocab, book, rounds=1, seconds=0.01)
    assert e["fastrnn"] == {"status": "not available", "why": "NotImplementedError: no kernels for this cell"}
    cells_bench.print_table({"machine": {"cpu": "cpu", "llvm_cpu": "x", "avx512f": False, "cores": 1, "numba": "0"},
                             "torch": None, "K": vocab.size, "seq_length": 25,
                             "load_average": {"start": (0, 0, 0), "end": (0, 0, 0)},
                             "gemm_gflops": {}, "gemm_shapes": cells_bench.GEMM_SHAPES, "configs": [e]})
    assert "tiny-rnn fastrnn: not available: NotImplementedError" in capsys.readouterr().out


def test_quality_runs_each_cell_for_its_budget_and_keeps_what_it_writes(tmp_path):
    import subprocess

    book = tmp_path / "book.txt"
    book.write_text(bench.generated_text(20_000), encoding="utf-8")
    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "quality.py")
    result = subprocess.run([sys.executable, script, "--book", str(book), "--minutes", "0.05", "--models", "rnn,torch",
                             "--out", str(tmp_path / "runs"), "--json", str(tmp_path / "q.json")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "q.json").read_text())
    assert rows[0]["model"] == "rnn" and 0 < rows[0]["bits"] < 8 and rows[0]["seconds"] <= 3.5
    assert "fastrnn train book.txt --cell rnn --time-limit 3s --val-fraction 0.1" in result.stdout
    assert len((tmp_path / "runs" / "book.txt-rnn-0.05m" / "sample.txt").read_text(encoding="utf-8")) >= 300
    torch_there = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0
    assert [row["model"] for row in rows] == (["rnn", "torch"] if torch_there else ["rnn"])


def test_makemore_race_reads_makemore_s_log():
    import makemore_race

    log = ["number of examples in the dataset: 32033", "split up the dataset into 31033 training examples and "
           "1000 test examples", "step 0 | loss 3.3 | step time 90.00ms", "step 10 | loss 2.9 | step time 16.00ms",
           "step 20 | loss 2.7 | step time 18.00ms", "step 500 train loss: 2.2 test loss: 2.25",
           "test loss 2.25 is the best so far, saving model to out/model.pt", "step 1000 train loss: 2.1 test loss: 2.3",
           "step 1010 | loss 2.1 | step time 17.00ms"]
    read = makemore_race.read_log(log)
    assert read["steps_at_least"] == 1011 and read["median_step_ms"] == 17.0
    assert read["last_printed_test_loss"] == 2.3 and read["last_printed_step"] == 1000
    assert read["saved_at_step"] == 500 and read["split_sizes"] == (31033, 1000)
