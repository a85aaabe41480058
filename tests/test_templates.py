"""Prompt templates render in a sandbox; injected templates fail with one line and run nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cai.cli.main import main
from cai.principles.constitution import load_constitution
from cai.core.errors import CaiError
from cai.principles.principle import Principle
from cai.principles.templates import (DEFAULT_TEMPLATES, TEMPLATE_VARIABLES, check_template, format_conversation, render,
                                      trial_render)

PRINCIPLE = Principle(id="kind", version="1.0.0", title="Kind", tags=["manners"],
                      critique="Is it unkind?", revision="Make it kind.", preference="Which is kinder?")
VARS = {
    "critique": dict(request="Is it unkind?", principle=PRINCIPLE, conversation="User: hi", response="Go away."),
    "revision": dict(request="Make it kind.", critique="It is rude.", principle=PRINCIPLE,
                     conversation="User: hi", response="Go away."),
    "preference": dict(question="Which is kinder?", conversation="User: hi", response_a="Go away.",
                       response_b="Hello!", principle=PRINCIPLE),
}


@pytest.mark.parametrize("kind", sorted(DEFAULT_TEMPLATES))
def test_default_templates_are_valid_and_render(kind):
    assert check_template(kind, DEFAULT_TEMPLATES[kind]) is None
    text = render(kind, DEFAULT_TEMPLATES[kind], **VARS[kind])
    assert "{{" not in text and "{%" not in text
    first = VARS[kind].get("request") or VARS[kind]["question"]
    assert first in text


def test_preference_default_ends_with_answer_cue():
    text = render("preference", DEFAULT_TEMPLATES["preference"], **VARS["preference"])
    assert text.endswith("The answer is: (")
    assert "(A) Go away.\n(B) Hello!" in text and "User: hi" in text


def test_custom_template_can_use_principle_fields_and_filters():
    source = "{{ principle.title|upper }} ({{ principle.ref }}): {{ request }}{% if response %} / {{ response|length }}{% endif %}"
    assert render("critique", source, **VARS["critique"]) == "KIND (kind@1.0.0): Is it unkind? / 8"


def test_undefined_variable_and_unknown_kind():
    assert "unknown variable(s) answer" in check_template("critique", "{{ answer }}")
    assert "allowed: conversation, principle, request, response" in check_template("critique", "{{ answer }}")
    assert check_template("ranking", "x").startswith("unknown template 'ranking'")
    with pytest.raises(CaiError, match="failed to render"):
        render("critique", "{{ principle.nothing_here }}", **VARS["critique"])
    with pytest.raises(CaiError, match="line 1"):
        render("critique", "{% if request %}", **VARS["critique"])
    assert set(TEMPLATE_VARIABLES) == set(DEFAULT_TEMPLATES)


def test_format_conversation():
    msgs = [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"}]
    assert format_conversation(msgs) == "System: Be nice.\n\nUser: hi\n\nAssistant: hello"


# --------------------------------------------------------------------------- injection


def lint_time_payloads(marker: Path) -> list[str]:
    """Injections a static look at the template already rejects (check_template, so lint)."""
    cmd = f"touch {marker}"
    return [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ request.__class__.__mro__[1].__subclasses__() }}",
        f"{{{{ cycler.__init__.__globals__.os.popen('{cmd}').read() }}}}",
        f"{{{{ joiner.__init__.__globals__['os'].system('{cmd}') }}}}",
        f"{{{{ lipsum.__globals__.os.popen('{cmd}').read() }}}}",
        f"{{{{ namespace.__init__.__globals__.os.system('{cmd}') }}}}",
        f"{{{{ self._TemplateReference__context.cycler.__init__.__globals__.os.system('{cmd}') }}}}",
        "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
        "{{ request.__class__ }}",
        "{{ request['__class__'] }}",
        "{{ request|attr('__class__') }}",
        "{{ request|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
        "{{ principle.__dict__ }}",
        "{{ principle.model_fields.__class__ }}",
        "{{ request.format_map.__self__ }}",
        "{% include '/etc/passwd' %}",
        "{% import '/etc/passwd' as p %}{{ p }}",
        "{% extends '/etc/passwd' %}",
        "{% from '/etc/passwd' import x %}{{ x }}",
        "{{ config }}",
    ]


def render_time_payloads(marker: Path) -> list[str]:
    """Injections only rendering can catch: the sandbox stops them."""
    return [
        "{% set n = '__cla' ~ 'ss__' %}{{ request|attr(n) }}",
        "{{ '{0.__class__.__mro__}'.format(request) }}",
        "{{ request }}{% set principle.id = 'hijacked' %}",  # attribute assignment
        "{{ principle.tags.append('x') }}",
        "{{ principle.tags.clear() }}",
        "{{ principle.examples.pop() }}",
        "{{ 'a' * 10**10 }}",  # would allocate 10 GB
        "{{ request * 100000000 }}",
        "{{ 2 ** 100000000 }}",
        "{{ 9 ** 999 ** 999 }}",
        "{{ range(10**9)|list|length }}",
        "{{ 1 / 0 }}",
    ]


def payloads(marker: Path) -> list[str]:
    return lint_time_payloads(marker) + render_time_payloads(marker)


def test_injection_payloads_fail_with_one_line_and_run_nothing(tmp_path):
    marker = tmp_path / "MARKER"
    principle = PRINCIPLE.model_copy(deep=True)
    vars_ = dict(VARS["critique"], principle=principle)
    for source in payloads(marker):
        lint_problem = check_template("critique", source)
        start = time.perf_counter()
        with pytest.raises(CaiError) as info:
            render("critique", source, **vars_)
        assert time.perf_counter() - start < 2, source
        message = str(info.value)
        assert "\n" not in message, source
        assert "root:" not in message and "uid=" not in message
        if lint_problem is not None:
            assert message == lint_problem
        else:
            assert message.startswith(("template 'critique' tried an unsafe operation",
                                       "template 'critique' failed to render")), message
    assert not marker.exists()
    assert principle.tags == ["manners"] and principle.id == "kind"


def test_lint_time_payloads_are_caught_statically(tmp_path):
    for source in lint_time_payloads(tmp_path / "MARKER"):
        assert check_template("critique", source) is not None, source
    for source in render_time_payloads(tmp_path / "MARKER"):
        assert check_template("critique", source) is None, source


def test_payloads_in_a_constitution_are_rejected(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    (tmp_path / "principles").mkdir()
    (tmp_path / "constitution").mkdir()
    (tmp_path / "principles" / "kind.md").write_text(
        "---\nid: kind\nversion: 1.0.0\ntitle: Kind\ntags: [manners]\n---\n"
        "## Critique\nIs it unkind?\n\n## Revision\nMake it kind.\n\n## Preference\nWhich is kinder?\n",
        encoding="utf-8",
    )
    rejected_at_lint = rejected_at_render = 0
    for i, source in enumerate(payloads(marker)):
        path = tmp_path / "constitution" / "c.yaml"
        escaped = source.replace("'", "''")
        path.write_text(f"name: c\nversion: 1.0.0\nprinciples:\n  ids: [kind]\ntemplates:\n  critique: '{escaped}'\n",
                        encoding="utf-8")
        code = main(["principles", "lint", str(path)])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        if code == 2:
            rejected_at_lint += 1
            assert f"{path}:6: templates.critique: template 'critique'" in err, err
            with pytest.raises(CaiError, match=r"c\.yaml:6: templates\.critique"):
                load_constitution(path)
        else:
            rejected_at_render += 1
            c = load_constitution(path)
            with pytest.raises(CaiError, match="^template 'critique' (tried an unsafe operation|failed to render)"):
                render("critique", c.template("critique"), **VARS["critique"])
    # an unsafe operation the sandbox refuses whatever the values is found by lint's trial render
    # and at load (before a model drafts anything); the rest fail at render
    refused_on_trial = [s for s in render_time_payloads(marker) if trial_render("critique", s)]
    assert refused_on_trial
    assert rejected_at_lint == len(lint_time_payloads(marker)) + len(refused_on_trial)
    assert rejected_at_render == len(render_time_payloads(marker)) - len(refused_on_trial)
    assert not marker.exists()
