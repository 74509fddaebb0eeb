"""The kernel package: compiled code is never served for sources other than the installed ones."""
import os
import shutil
import subprocess
import sys

import fastrnn

# Scores a text from a non-zero start state: text_loss inlines linalg.copy_into to load it.
SCORE = """
import numpy as np
from fastrnn.evaluate import TextScorer
from fastrnn.model import Layout
m, K = 3, 2
params = np.linspace(-0.5, 0.5, Layout(m, K).size)
scorer = TextScorer(m, K, np.float64, np.uint8, chunk=4)
print(repr(scorer.total_loss(params, np.array([0, 1, 1, 0, 1], np.uint8), np.full(m, 0.7))[0]))
"""


def score(package_root, cache):
    env = dict(os.environ, PYTHONPATH=str(package_root), NUMBA_CACHE_DIR=str(cache))
    result = subprocess.run([sys.executable, "-c", SCORE], capture_output=True, text=True, env=env,
                            cwd=package_root)  # not the checkout's directory, which would come first
    assert result.returncode == 0, result.stderr
    return float(result.stdout)


def test_an_edit_to_a_lower_layer_takes_effect_with_a_warm_cache(tmp_path):
    copy = tmp_path / "site"
    shutil.copytree(os.path.dirname(fastrnn.__file__), copy / "fastrnn",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    before = score(copy, cache)
    files = sorted(cache.rglob("*"))
    assert score(copy, cache) == before
    assert sorted(cache.rglob("*")) == files  # the second run compiled nothing new
    # the start state goes in through linalg.copy_into, which the cached scorer inlines: ignore it
    linalg = copy / "fastrnn" / "kernels" / "linalg.py"
    source = linalg.read_text()
    edited = source.replace("        out[i] = a[i]\n", "        out[i] = 0.0 * a[i]\n", 1)
    assert edited != source
    linalg.write_text(edited)
    after = score(copy, cache)
    assert after != before
    assert len(list(cache.iterdir())) == 2  # one directory per version of the sources
