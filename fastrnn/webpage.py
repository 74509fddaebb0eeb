"""Self-contained web pages: the model and a JavaScript sampler inline, no network needed."""
from __future__ import annotations

import html
import json
import os
import re
from importlib import resources

from .export import model_dict
from .files import write_text_atomic

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1, h2 { font-weight: 600; } table { border-collapse: collapse; } td, th { padding: 0.2rem 0.8rem; text-align: left; }
table.numbers td { text-align: right; } table.numbers td:first-child { text-align: left; }
tr:nth-child(even) { background: #f4f4f4; }
pre { white-space: pre-wrap; background: #f7f7f5; padding: 0.8rem; border-radius: 4px; }
.controls { display: flex; flex-wrap: wrap; gap: 0.6rem 1.2rem; align-items: end; margin: 0.6rem 0; }
.controls label { display: flex; flex-direction: column; font-size: 13px; }
textarea { width: 30rem; height: 3.2rem; } input { width: 6rem; } .error { color: #b00; }
.note { color: #666; font-size: 13px; }
"""


def _script_json(document: dict) -> str:
    """JSON that can sit inside a <script> element whatever its strings hold: every "<", ">"
    and "&" as a JSON escape, so that neither "</script>" nor "<!--" (which would swallow the
    page's next script) can appear; line and paragraph separators escaped too."""
    text = json.dumps(document, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def sampler_script() -> str:
    """The page's sampler, ``web/sampler.js``."""
    return resources.files("fastrnn").joinpath("web", "sampler.js").read_text(encoding="utf-8")


# the page's table of cell steps, one entry a line: ``  lstm: { gates: 4, carried: ["h", "c"], step: lstmStep },``
_STEPS_TABLE = re.compile(r"^const STEPS = \{\n(.*?)^\};", re.DOTALL | re.MULTILINE)
_STEP_ENTRY = re.compile(r'^  (\w+): \{ gates: (\d+), carried: \[((?:"\w+"(?:, )?)*)\], step: \w+ \},$', re.MULTILINE)


def sampler_steps(script: str | None = None) -> dict[str, tuple[int, tuple[str, ...]]]:
    """The cells the page's sampler (``script``, by default ``sampler_script()``) has a step
    for, read from its ``STEPS`` table: name -> (gate multiple, names of the carried vectors)."""
    table = _STEPS_TABLE.search(sampler_script() if script is None else script)
    if table is None:
        return {}
    return {name: (int(gates), tuple(re.findall(r'"(\w+)"', carried)))
            for name, gates, carried in _STEP_ENTRY.findall(table.group(1))}


def sampler_section(state) -> str:
    """The model, its sampler and the controls: prime, length, temperature, seed, Generate; the
    first sample appears in the element with id ``sample`` when the page loads."""
    script = sampler_script()
    return f"""
<section id="sampler">
<h2>Generate text</h2>
<p class="note">The model runs in this page: text starts from the state it was in when it was
saved (its carried state, fed the next character of the book), then the prime.</p>
<div class="controls">
<label>prime<textarea id="prime"></textarea></label>
<label>length<input id="length" type="number" min="0" value="500"></label>
<label>temperature<input id="temperature" type="number" min="0.05" step="0.05" value="1.0"></label>
<label>seed<input id="seed" type="number" min="0" value="1"></label>
<button id="generate" type="button">Generate</button>
</div>
<pre id="sample"></pre>
</section>
<script type="application/json" id="fastrnn-model">{_script_json(model_dict(state))}</script>
<script>{script}</script>
"""


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def describe(state) -> str:
    """The model in words: "A character-level RNN: hidden size 100, 65 characters", or
    "A character-level 2-layer LSTM: hidden size 100, 65 characters"."""
    layout = state.layout
    kind = "RNN" if layout.classic else f"{layout.layers}-layer {layout.cell.upper()}"
    return f"A character-level {kind}: hidden size {layout.m}, {layout.K} characters"


def write_sampler_page(path, state) -> None:
    """A page with the sampler only, for sharing a model."""
    body = (f"<h1>fastrnn model</h1>\n<p>{html.escape(describe(state))}, {state.update:,} updates.</p>\n"
            + sampler_section(state))
    write_text_atomic(os.fspath(path), page("fastrnn model", body), encoding="utf-8")
