"""A constitution is untrusted input: its templates cannot hang a run or exhaust memory. Rendering
is bounded in time, output and memory, fails that template in one line, and lint flags it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from cai.core.errors import CaiError
from cai.principles import templates
from cai.principles.templates import render

REPO = Path(__file__).resolve().parents[1]
SPIN = ("{% for i in range(100000) %}{% for j in range(100000) %}{% for k in range(100000) %}"
        "{% endfor %}{% endfor %}{% endfor %}{{ request }}")
GROW = ("{% set ns = namespace(s='abcdefgh') %}{% for i in range(100000) %}{% for j in range(100000) %}"
        "{% set ns.s = ns.s ~ ns.s[:1000] %}{% endfor %}{% endfor %}{{ ns.s|length }}{{ request }}")
FLOOD = "{% for i in range(100000) %}{{ request }}{{ request }}{% endfor %}"


@pytest.mark.parametrize("source, why", [(SPIN, "did not finish within"), (GROW, "stopped"),
                                         (FLOOD, "its output passed 1,000,000 characters")])
def test_a_template_that_cannot_finish_fails_in_one_line(source, why):
    started = time.monotonic()
    with pytest.raises(CaiError, match=why) as err:
        render("critique", source, request="Say why. " * 20, principle="p", conversation="c", response="r")
    assert time.monotonic() - started < templates.RENDER_SECONDS + 3
    assert "\n" not in str(err.value) and str(err.value).startswith("template 'critique' stopped")


def test_memory_bound(monkeypatch):
    monkeypatch.setattr(templates, "MAX_RENDER_MEMORY", 64 << 20)
    monkeypatch.setattr(templates, "RENDER_SECONDS", 60.0)
    source = ("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
              "{{ ns.s|length }}")
    with pytest.raises(CaiError, match="took over 64 MiB of memory"):
        render("critique", source, request="r", principle="p", conversation="c", response="r")


def test_ordinary_templates_still_render_and_the_trace_is_restored():
    import sys

    def tracer(frame, event, arg):
        return None

    sys.settrace(tracer)
    try:
        out = render("critique", "{% for w in request.split() %}{{ w|upper }} {% endfor %}", request="a b",
                     principle="p", conversation="c", response="r")
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(None)
    assert out == "A B"


def test_lint_flags_a_template_that_cannot_finish(tmp_path):
    from cai.principles.lint import lint_paths

    shutil.copytree(REPO / "principles", tmp_path / "principles")
    (tmp_path / "constitution").mkdir()
    text = (REPO / "constitution" / "default.yaml").read_text()
    text += "templates:\n  critique: \"" + SPIN.replace('"', '\\"') + "\"\n"
    (tmp_path / "constitution" / "default.yaml").write_text(text)
    report = lint_paths([tmp_path / "constitution" / "default.yaml"])
    [error] = [d for d in report.errors]
    assert "templates.critique: template 'critique' could not finish rendering: did not finish within" in error.message
    assert error.line == text.count("\n")
