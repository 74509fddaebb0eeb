"""The README and the documentation site: what CI runs is what the README says, and links lead
somewhere. (The site itself is built with warnings as errors by .ci/run.)"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def code_block_after(text: str, heading: str) -> list[str]:
    """The lines of the first indented code block under a heading."""
    section = text.split(f"\n## {heading}\n", 1)[1]
    block = re.search(r"^((?:    .*\n)+)", section, re.MULTILINE).group(1)
    return [line.strip() for line in block.splitlines()]


def ci_commands() -> list[str]:
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_the_test_command_the_readme_gives():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = code_block_after(readme, "Run the tests")
    assert commands == ['pip install -e ".[test]"', "python -m pytest -q -n auto"]
    ci = ci_commands()
    start = ci.index(commands[0])
    assert ci[start:start + len(commands)] == commands


def test_ci_builds_the_docs_as_the_readme_says():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = code_block_after(readme, "Documentation")
    assert 'pip install -e ".[docs]"' in commands
    assert any(c.startswith("mkdocs serve") for c in commands)
    ci = ci_commands()
    assert ci.index('pip install -e ".[docs]"') > ci.index("python -m pytest -q -n auto")
    assert any(re.fullmatch(r'mkdocs build --strict --site-dir "\$\(mktemp -d\)"', c) for c in ci)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_local_links_lead_to_files(page):
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # code is not links
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    missing = [t for t in local if not (page.parent / t).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"
