"""Prompt templates: data rendered in a sandboxed Jinja environment.

Templates come from constitution files, which are data a user may have downloaded. They render in
Jinja's immutable sandbox with no loader (no ``include``/``import`` of files), strict undefined
variables, and no access to Python internals; anything else is a one-line :class:`CaiError`.
"""

from __future__ import annotations

from functools import lru_cache

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from cai.errors import CaiError

# Variables each template may use. Keeping the set closed lets lint catch typos in templates.
TEMPLATE_VARIABLES: dict[str, frozenset[str]] = {
    "critique": frozenset({"request", "principle", "conversation", "response"}),
    "revision": frozenset({"request", "critique", "principle", "conversation", "response"}),
    "preference": frozenset({"question", "conversation", "response_a", "response_b", "principle"}),
}


@lru_cache(maxsize=1)
def _env() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        loader=None,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )


@lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    return _env().from_string(source)


def check_template(kind: str, source: str) -> str | None:
    """Return a problem with a template (syntax, unknown variables), or None when it is usable."""
    if kind not in TEMPLATE_VARIABLES:
        return f"unknown template '{kind}'; allowed: {', '.join(TEMPLATE_VARIABLES)}"
    try:
        ast = _env().parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"template '{kind}' line {exc.lineno}: {exc.message}"
    unknown = meta.find_undeclared_variables(ast) - TEMPLATE_VARIABLES[kind]
    if unknown:
        allowed = ", ".join(sorted(TEMPLATE_VARIABLES[kind]))
        return f"template '{kind}' uses unknown variable(s) {', '.join(sorted(unknown))}; allowed: {allowed}"
    if any(True for _ in meta.find_referenced_templates(ast)):
        return f"template '{kind}' may not include, import or extend other templates"
    return None


def render(kind: str, source: str, **variables) -> str:
    """Render a template in the sandbox; any failure is a one-line :class:`CaiError`."""
    problem = check_template(kind, source)
    if problem:
        raise CaiError(problem)
    try:
        return _compile(source).render(**variables).strip()
    except SecurityError as exc:
        raise CaiError(f"template '{kind}' tried an unsafe operation: {exc}") from None
    except jinja2.TemplateError as exc:
        raise CaiError(f"template '{kind}' failed to render: {exc}") from None


def format_conversation(messages) -> str:
    """A plain transcript of chat messages, for templates that inline the conversation."""
    names = {"user": "User", "assistant": "Assistant", "system": "System"}
    return "\n\n".join(f"{names.get(m['role'], m['role'])}: {m['content']}" for m in messages)


# Default templates: data, overridable per constitution (``templates:`` in the manifest).
DEFAULT_TEMPLATES: dict[str, str] = {
    "critique": (
        "{{ request }}\n\n"
        "Write a short critique of your previous response with respect to this. "
        "Do not rewrite the response yet."
    ),
    "revision": (
        "{{ request }}\n\n"
        "Reply with the rewritten response only, with no preamble or commentary."
    ),
    "preference": (
        "Consider the following conversation between a human and an assistant:\n\n"
        "{{ conversation }}\n\n"
        "{{ question }}\n"
        "Options:\n"
        "(A) {{ response_a }}\n"
        "(B) {{ response_b }}\n\n"
        "The answer is: ("
    ),
}
