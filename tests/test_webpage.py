"""The model in a web page: its JavaScript sampler in a real headless Chromium, against Python
(the kernels for the classic cell, the NumPy reference for the stacks of every cell)."""
import shutil

import numpy as np
import pytest

import fastrnn
from fastrnn.cells import CELLS
from fastrnn.sample import sample_indices, start_state
from fastrnn.webpage import sampler_steps, write_sampler_page

from test_export import random_state

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs Chromium and ChromeDriver (Debian: chromium, chromium-driver)")


def mulberry32(seed: int, count: int) -> np.ndarray:
    """The page's uniform numbers (``fastrnnUniforms`` in web/sampler.js), in Python."""
    mask = 0xFFFFFFFF
    a, out = seed & mask, []
    for _ in range(count):
        a = (a + 0x6D2B79F5) & mask
        t = ((a ^ (a >> 15)) * (a | 1)) & mask
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & mask)) & mask
        out.append(((t ^ (t >> 14)) & mask) / 4294967296)
    return np.array(out)


class Fixed:
    def __init__(self, uniforms):
        self.uniforms = uniforms

    def random(self, n):
        return self.uniforms[:n]


def python_sample(state, prime: str, length: int, seed: int) -> str:
    h, fed = start_state(state)
    indices = list(fed) + list(state.vocab.encode(prime)) if prime else list(fed)
    out = sample_indices(state.params, state.vocab, state.hyper.hidden, length, Fixed(mulberry32(seed, length)),
                         h=h, prime=np.array(indices, np.int64))
    return prime + state.vocab.decode(out)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def model_page(tmp_path_factory):
    from conftest import make_text

    out = tmp_path_factory.mktemp("web")
    run = fastrnn.train(text=make_text(600) + "Zoë’s café — 𝄞\n", out=out / "run", steps=400, hidden=16,
                        progress=False)
    model = run.best_model
    model.export(out / "model.html", html=True)
    return model, out / "model.html"


def wait_for_sample(driver, previous=""):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(lambda d: d.find_element("id", "sample").text not in ("", previous))
    return driver.execute_script("return document.getElementById('sample').textContent")


def test_the_page_writes_the_text_python_writes(browser, model_page):
    model, page = model_page
    state = model._state
    browser.get(page.as_uri())
    first = wait_for_sample(browser)
    assert first == python_sample(state, "", 500, 1)  # the page's defaults: no prime, 500, seed 1
    # type a prime (ChromeDriver types characters of the Basic Multilingual Plane only: the
    # probabilities test feeds one beyond it), a length and a seed
    for field, value in (("prime", "Zoë’s café the "), ("length", "300"), ("seed", "7")):
        element = browser.find_element("id", field)
        element.clear()
        element.send_keys(value)
    browser.find_element("id", "generate").click()
    second = wait_for_sample(browser, first)
    assert second == python_sample(state, "Zoë’s café the ", 300, 7)
    assert len(set(second[15:])) > 5


def test_the_page_gives_the_probabilities_python_gives(browser, model_page):
    from fastrnn import reference

    model, page = model_page
    state = model._state
    browser.get(page.as_uri())
    wait_for_sample(browser)
    params = state.views()
    h, fed = start_state(state)
    for prefix in ("", "the rain", "Zoë’s 𝄞"):
        got = np.array(browser.execute_script("return fastrnn.sampler.probabilities(arguments[0])", prefix))
        hidden = h.copy()
        indices = list(fed) + (list(state.vocab.encode(prefix)) if prefix else [])
        if indices:  # the reference carries h through the same inputs
            _, _, hs, _ = reference.forward(params, indices, indices, hidden)
            hidden = hs[len(indices) - 1]
        o = params["V"] @ hidden + params["c"]
        expected = np.exp(o - o.max()) / np.exp(o - o.max()).sum()
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0)


def test_a_prime_outside_the_vocabulary_is_one_line_in_the_page(browser, model_page):
    _, page = model_page
    browser.get(page.as_uri())
    first = wait_for_sample(browser)
    element = browser.find_element("id", "prime")
    element.clear()
    element.send_keys("@")
    browser.find_element("id", "generate").click()
    message = wait_for_sample(browser, first)
    assert "vocabulary" in message and "\n" not in message


def test_the_report_page_carries_the_sampler(browser, model_page, tmp_path):
    import os

    model, _ = model_page
    fastrnn.Run(os.path.dirname(model.path)).report(tmp_path / "report.html")
    browser.get((tmp_path / "report.html").as_uri())
    assert wait_for_sample(browser) == python_sample(model._state, "", 500, 1)
    assert browser.find_element("tag name", "svg")  # the loss figure, inline


# (cell, layers, embedding): every cell in two layers, and in one after an input embedding
STACKS = [(cell, 2, 0) for cell in CELLS] + [(cell, 1, 5) for cell in CELLS]


@pytest.fixture(scope="module", params=STACKS, ids=lambda p: f"{p[0]}-{p[1]}" + (f"-embedding-{p[2]}" if p[2] else ""))
def stack_page(request, tmp_path_factory):
    cell, layers, embedding = request.param
    state = random_state(cell, layers, hidden=8, seed=3, embedding=embedding)
    path = tmp_path_factory.mktemp("stack") / "model.html"
    write_sampler_page(path, state)
    return state, path


def test_the_page_gives_the_probabilities_of_every_cell(browser, stack_page):
    from fastrnn import reference

    state, page = stack_page
    browser.get(page.as_uri())
    wait_for_sample(browser)
    for prefix, from_zero in (("", False), ("the rain", False), ("Zoë’s 𝄞", False), ("the rain", True)):
        got = np.array(browser.execute_script("return fastrnn.sampler.probabilities(arguments[0], arguments[1])",
                                              prefix, from_zero))
        h, fed = start_state(state, from_zero)
        inputs = list(fed) + (list(state.vocab.encode(prefix)) if prefix else [])
        _, _, _, ps = reference.forward(state.views(), inputs, inputs, h)
        expected = ps[len(inputs) - 1]
        assert expected.max() > 20 * expected.min()  # far from uniform
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_the_page_writes_the_text_of_every_cell(browser, stack_page):
    from fastrnn import reference

    state, page = stack_page
    browser.get(page.as_uri())
    expected = reference.sample(state.views(), state.h, state.next_char, 500, mulberry32(1, 500), 1.0, 0)
    assert wait_for_sample(browser) == state.vocab.decode(np.array(expected))  # the page's defaults
    # a prime, a temperature, from zeros
    uniforms = np.random.default_rng(5).random(300)
    got = browser.execute_script("return fastrnn.sampler.sample('t', 300, 0.8, arguments[0], true)", uniforms.tolist())
    expected = reference.sample(state.views(), np.zeros_like(state.h), int(state.vocab.encode("t")[0]), 300, uniforms,
                                0.8, 0)
    assert got == "t" + state.vocab.decode(np.array(expected))
    assert len(set(got)) > 5


def test_a_cell_the_page_has_no_step_for_is_one_line_in_the_page(browser, tmp_path, monkeypatch):
    # declared in Python (a copy of the first cell under a new name) but not in the page's STEPS
    from dataclasses import replace

    first = next(iter(CELLS))
    monkeypatch.setitem(CELLS, "newcell", replace(CELLS[first], name="newcell"))
    state = random_state("newcell", 2, hidden=8, seed=3)
    write_sampler_page(tmp_path / "model.html", state)
    browser.get((tmp_path / "model.html").as_uri())
    message = wait_for_sample(browser)
    assert message == f'this page has no step for the cell "newcell" (it has {", ".join(sampler_steps())})'
    assert browser.find_element("id", "sample").get_attribute("class") == "error"
    assert browser.execute_script("return fastrnn.sampler") is None


HOSTILE = ("</script><script>window.pwned = 1</script><!--<script>window.pwned = 2</script>"
           "<img src=x onerror=\"window.pwned = 3\"> & ]]> \u2028 ")


def test_pages_of_a_hostile_book_write_text_and_run_none_of_its_scripts(browser, tmp_path):
    """A book (and a run directory) named and filled with markup: the model page and the report
    escape it everywhere, in HTML and in the JSON inside the page's script."""
    from conftest import make_text

    book = tmp_path / "<script>window.pwned=4<!--.txt"
    book.write_text((make_text(300) + HOSTILE) * 4, encoding="utf-8")
    out = tmp_path / "run <!--<script>"
    run = fastrnn.train(book, out=out, steps=200, hidden=12, sample_every=50, progress=False)
    run.best_model.export(tmp_path / "model.html", html=True)
    run.report(tmp_path / "report.html")
    for page in ("model.html", "report.html"):
        browser.get((tmp_path / page).as_uri())
        text = wait_for_sample(browser)
        assert len(text) == 500, page  # the sampler ran: the model's JSON was read whole
        assert browser.execute_script("return window.pwned === undefined"), page
        assert browser.execute_script("return document.scripts.length") == 2, page  # the model's and the sampler's


def test_the_page_of_a_documents_model_writes_documents(browser, tmp_path):
    from fastrnn import reference
    from fastrnn.formats import END_OF_TEXT
    from fastrnn.model import Hyper, init_state
    from fastrnn.text import build_vocab

    from test_export import TEXT

    state = init_state(build_vocab(TEXT + END_OF_TEXT), Hyper(hidden=8, cell="gru", layers=2, documents=True))
    state.params[:] = np.random.default_rng(4).normal(0.0, 0.7, state.params.size)
    write_sampler_page(tmp_path / "model.html", state)
    browser.get((tmp_path / "model.html").as_uri())
    shown = wait_for_sample(browser)  # the page's defaults: 20 of at most 500, seed 1, one a line
    written = browser.execute_script("return fastrnn.sampler.documents('', 20, 500, 1.0, fastrnn.uniforms(1, 10000))")
    assert shown == "\n".join(written)
    uniforms = mulberry32(1, 20 * 500)
    marker = int(state.vocab.encode(END_OF_TEXT)[0])
    expected = []
    for i in range(20):  # each from the zero state fed the marker, cut at the next marker
        drawn = reference.sample(state.views(), np.zeros_like(state.h), marker, 500, uniforms[i * 500:(i + 1) * 500],
                                 1.0, 0)
        expected.append(state.vocab.decode(np.array(drawn[:drawn.index(marker)] if marker in drawn else drawn)))
    assert written == expected and len(set(written)) > 10
