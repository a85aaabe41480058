"""Prompt templates: data rendered in a sandboxed Jinja environment.

Templates come from constitution files, which are data a user may have downloaded. They render in
Jinja's immutable sandbox with no loader (no ``include``/``import`` of files), strict undefined
variables, and no access to Python internals; anything else is a one-line :class:`CaiError`.
"""

from __future__ import annotations

from functools import lru_cache

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from cai.core.errors import CaiError

# Variables each template may use. Keeping the set closed lets lint catch typos in templates.
TEMPLATE_VARIABLES: dict[str, frozenset[str]] = {
    "critique": frozenset({"request", "principle", "conversation", "response"}),
    "revision": frozenset({"request", "critique", "principle", "conversation", "response"}),
    "preference": frozenset({"question", "conversation", "response_a", "response_b", "principle"}),
}


MAX_LENGTH = 100_000  # longest string or list a template may build with '*'
MAX_INT_BITS = 100_000  # largest integer a template may build with '*' or '**'


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus limits on '*' and '**' so a one-line template cannot exhaust
    memory or CPU (``{{ 'a' * 10**10 }}``). Not a complete guard against loops that build big values."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        ints = isinstance(left, int) and isinstance(right, int)
        if operator == "**" and ints and right > 0 and abs(left) > 1 and abs(left).bit_length() * right > MAX_INT_BITS:
            raise SecurityError(f"'**' would build an integer over {MAX_INT_BITS} bits")
        if operator == "*":
            if ints and abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
                raise SecurityError(f"'*' would build an integer over {MAX_INT_BITS} bits")
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_LENGTH:
                    raise SecurityError(f"'*' would build a sequence longer than {MAX_LENGTH}")
        return super().call_binop(context, operator, left, right)


def _private_names(ast) -> list[str]:
    """Attribute names starting with '_' (``x.__class__``, ``x['_y']``, ``x|attr('_z')``)."""
    found = [n.attr for n in ast.find_all(nodes.Getattr) if n.attr.startswith("_")]
    for n in ast.find_all(nodes.Getitem):
        if isinstance(n.arg, nodes.Const) and isinstance(n.arg.value, str) and n.arg.value.startswith("_"):
            found.append(n.arg.value)
    for n in ast.find_all(nodes.Filter):
        if n.name == "attr" and n.args and isinstance(n.args[0], nodes.Const) and str(n.args[0].value).startswith("_"):
            found.append(str(n.args[0].value))
    return found


@lru_cache(maxsize=1)
def _env() -> ImmutableSandboxedEnvironment:
    return _Sandbox(
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
    private = _private_names(ast)
    if private:
        return f"template '{kind}' may not access private attribute '{private[0]}'"
    return None


def render(kind: str, source: str, **variables) -> str:
    """Render a template in the sandbox; any failure is a one-line :class:`CaiError`."""
    problem = check_template(kind, source)
    if problem:
        raise CaiError(problem)
    try:
        return _compile(source).render(**variables).strip()
    except SecurityError as exc:
        raise CaiError(f"template '{kind}' tried an unsafe operation: {_one_line(exc)}") from None
    except Exception as exc:  # TemplateError, OverflowError, TypeError...: all the template's fault
        raise CaiError(f"template '{kind}' failed to render: {_one_line(exc)}") from None


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


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
