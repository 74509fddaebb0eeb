"""The run's report: self-contained HTML and Markdown, what they hold, and bad input."""
import re

import pytest

import fastrnn
from fastrnn.trainer import Interrupted

from helpers import one_line_error, run

SMALL = dict(hidden=12, seq_length=10, log_every=20, sample_every=100, progress=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    from conftest import make_text

    out = tmp_path_factory.mktemp("report") / "run"
    return fastrnn.train(text=make_text(600), out=out, steps=300, val_fraction=0.1, val_every=100, **SMALL)


def test_the_html_report_holds_the_run_and_needs_no_network(finished, tmp_path):
    result = run(["report", finished.dir, "-o", str(tmp_path / "report.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    # nothing fetched: no external addresses, stylesheets, fonts or scripts
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)|@import|url\(\s*["']?https?:""", page)
    assert "<svg" in page and "finished" in page and "best validation" in page
    for param in ("b", "c", "U", "W", "V"):
        for seed in (40, 8):
            assert f"<td>{param} (seed {seed})</td>" in page
    for update in (0, 100, 200, 300):
        assert f"update {update}" in page
    assert "best model (update" in page and "<td>hidden</td><td>12</td>" in page
    assert "the first chunk of book.txt" in page  # the gradient check ran on the run's own book
    assert 'id="sample"' in page and 'id="fastrnn-model"' in page  # the sampler, with its model
    assert "cores" in page  # the machine


def test_the_markdown_report_has_its_figure_beside_it(finished, tmp_path):
    finished.report(tmp_path / "report.md", markdown=True)
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "![loss](report-loss.png)" in text
    assert (tmp_path / "report-loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "| W (seed 40) |" in text and "## The best model's passage" in text


def test_an_unfinished_and_a_resumed_run_say_so(tmp_path, text):
    with pytest.raises(Interrupted):
        fastrnn.train(text=text, out=tmp_path / "run", steps=300, should_stop=lambda: True,
                      **dict(SMALL, log_every=4))  # it stops after the first block of updates
    fastrnn.Run(tmp_path / "run").report(tmp_path / "unfinished.html")
    assert "unfinished: stopped at update" in (tmp_path / "unfinished.html").read_text(encoding="utf-8")
    fastrnn.resume(tmp_path / "run", progress=False)
    fastrnn.Run(tmp_path / "run").report(tmp_path / "resumed.html")
    page = (tmp_path / "resumed.html").read_text(encoding="utf-8")
    assert "finished; resumed: the last session trained" in page


def test_bad_report_input_is_one_line_and_leaves_nothing(tmp_path, finished):
    one_line_error(run(["report", str(tmp_path)]), 1, "not a fastrnn run directory")
    empty = tmp_path / "empty"
    fastrnn.train(text="the rain in spain " * 40, out=empty, steps=5, hidden=6, log_every=100, progress=False)
    one_line_error(run(["report", str(empty)]), 1, "no metrics yet")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a directory should be")
    one_line_error(run(["report", finished.dir, "-o", str(blocked / "report.html")]), 1, "blocked")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked", "empty"]
