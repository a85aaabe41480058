"""The documentation site (docs/, mkdocs.yml): it builds with warnings as errors, its CLI reference
covers every command, the README stays a landing page whose links resolve, and every fenced python
block of the README and the docs runs (with the embedded model's name swapped for a tiny model)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
NO_RUN = "<!-- no-run -->"  # put before a python block that is not meant to run as is


def python_blocks(text: str) -> list[str]:
    """Fenced ```python blocks, except those right after a ``<!-- no-run -->`` line."""
    return [m.group(2) for m in re.finditer(r"(<!-- no-run -->\n)?```python\n(.*?)```", text, flags=re.S)
            if not m.group(1)]


def examples() -> list[tuple[str, str]]:
    out, seen = [], set()
    for page in PAGES:
        for i, block in enumerate(python_blocks(page.read_text(encoding="utf-8"))):
            if block not in seen:  # the README's example is repeated on the getting-started page
                seen.add(block)
                out.append((f"{page.relative_to(REPO)}#{i + 1}", block))
    return out


def test_readme_is_a_landing_page_and_its_links_resolve():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.encode()) <= 12_500, "README.md is a landing page: move reference material into docs/"
    links = re.findall(r"\]\(((?:docs/)[^)#]+)", text)
    assert links and all((REPO / link).is_file() for link in links), [x for x in links if not (REPO / x).is_file()]
    assert "pip install cai-constitution" in text and len(python_blocks(text)) == 1


def test_every_page_is_in_the_nav():
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")]
    assert pages and [p for p in pages if p not in nav] == []


def test_cli_reference_has_every_command():
    sys.path.insert(0, str(DOCS / "hooks"))
    try:
        import cli_reference
    finally:
        sys.path.pop(0)
    text = cli_reference.cli_markdown()
    for command in ("cai init", "cai run", "cai generate", "cai principles lint", "cai train grpo", "cai humans serve",
                    "cai eval behavior", "cai models list"):
        assert f"`{command}`" in text and f"Usage: {command} " in text, command


@pytest.mark.slow
def test_docs_build_with_warnings_as_errors(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "cai train grpo" in cli and "<!-- cli-reference -->" not in cli
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert "load_constitution" in api


@pytest.mark.slow
@pytest.mark.parametrize("where,code", examples(), ids=[e[0] for e in examples()])
def test_python_examples_run(where, code, tiny_llama, tmp_path):
    code = code.replace("smollm2-135m-instruct", str(tiny_llama))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "CAI_MIN_LABEL_MASS": "0"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"{where}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


def test_install_hints_name_the_distribution():
    """`cai` on the index is an unrelated project: no hint may tell people to install `cai[extra]`."""
    files = [REPO / "README.md", *DOCS.rglob("*.md"), *(REPO / "cai").rglob("*.py")]
    wrong = [f"{f.relative_to(REPO)}:{n}" for f in files
             for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"(?<![\w-])cai\[\w", line) or re.search(r"pip install (-U )?cai(\s|$)", line)]
    assert wrong == []
