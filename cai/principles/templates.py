"""Prompt templates: data rendered in a sandboxed Jinja environment.

Templates come from constitution files, which are data a user may have downloaded. They render in
Jinja's immutable sandbox with no loader (no ``include``/``import`` of files), strict undefined
variables, and no access to Python internals; anything else is a one-line :class:`CaiError`.

Rendering is bounded too (:func:`render`): at most :data:`RENDER_SECONDS` of work,
:data:`MAX_OUTPUT` characters of output and :data:`MAX_RENDER_MEMORY` bytes of new peak memory,
so a template that loops for hours or builds a huge value in a loop fails with a one-line error
instead of hanging the run; :func:`trial_render` is how lint finds such a template.
"""

from __future__ import annotations

import functools
import re
import sys
import time
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
RENDER_SECONDS = 2.0  # a prompt renders in microseconds; this is a loop that will not finish
MAX_OUTPUT = 1_000_000  # characters one rendered prompt may have (the variables' own text included)
MAX_RENDER_MEMORY = 256 << 20  # bytes of new peak memory (RSS) one rendering may take
MAX_LIPSUM_WORDS = 10_000  # lipsum(n, min, max): n * max words at most


class RenderLimit(Exception):
    """A rendering went over one of the bounds."""


class _Watch:
    """A trace function for the frames of compiled templates (``<template>``): at every template
    line it checks the clock and the process's resident memory and raises :class:`RenderLimit`
    inside the template when a bound is passed (a value may double each line, so every line is
    checked). Other frames are not traced."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.rss = _Resident()
        self.start = self.rss()

    def __call__(self, frame, event, arg):  # the global trace: pick the template frames
        return self.local if frame.f_code.co_filename == "<template>" else None

    def local(self, frame, event, arg):
        self.check()
        return self.local

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimit(f"did not finish within {RENDER_SECONDS:g} s (a loop that runs too long?)")
        if self.rss() - self.start > MAX_RENDER_MEMORY:
            raise RenderLimit(f"took over {MAX_RENDER_MEMORY >> 20} MiB of memory (a value built in a loop?)")

    def close(self) -> None:
        self.rss.close()


class _Resident:
    """This process's resident memory in bytes: ``/proc/self/statm`` where there is one (read
    through one open descriptor), else the peak from ``getrusage`` (a bound all the same)."""

    def __init__(self):
        import os

        self._os = os
        try:
            self.fd = os.open("/proc/self/statm", os.O_RDONLY)
            self.page = os.sysconf("SC_PAGE_SIZE")
        except (OSError, AttributeError, ValueError):
            self.fd = None

    def __call__(self) -> int:
        if self.fd is None:
            return _peak_rss()
        return int(self._os.pread(self.fd, 64, 0).split()[1]) * self.page

    def close(self) -> None:
        if self.fd is not None:
            self._os.close(self.fd)
            self.fd = None


def _peak_rss() -> int:
    """Peak resident memory of this process in bytes (0 where the platform does not say)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus limits on '*' and '**' so a one-line template cannot exhaust
    memory or CPU (``{{ 'a' * 10**10 }}``). Not a complete guard against loops that build big values."""

    intercepted_binops = frozenset({"*", "**", "%"})

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
        if operator == "%" and isinstance(left, str):
            _check_widths(left, "'%'")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - jinja's own signature
        """Every call a template makes (methods, globals): one C call such as ``'a'.ljust(10**9)``
        runs between two template lines, so the clock and memory checks cannot see it; its
        arguments are bounded instead."""
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "call")
        if isinstance(owner, (str, list, tuple, dict)):
            if name == "join" and isinstance(owner, str) and args and hasattr(args[0], "__len__"):
                _check_size("join", len(owner) * len(args[0]))
            _check_call(name, owner, args, kwargs)
        else:  # a global, a macro, a str.format wrapper ('{:{w}}'.format(x, w=10**9))
            _check_call(name, None, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value):
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and getattr(value, "__name__", "") in ("format", "format_map"):
            _check_widths(owner, "'format'")
        return super().wrap_str_format(value)


def _check_size(name: str, size: int) -> None:
    if size > MAX_OUTPUT:
        raise SecurityError(f"'{name}' would build a value of about {size:,} characters (over {MAX_OUTPUT:,})")


_PERCENT_SPEC = re.compile(r"%[#0 +\-]*(\d*)(?:\.(\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)\}")


def _check_widths(fmt: str, name: str) -> None:
    """Widths and precisions in a format string (``'%999999999s'``, ``'{:>999999999}'``)."""
    numbers = [n for m in _PERCENT_SPEC.finditer(fmt) for n in m.groups() if n]
    numbers += [n for m in _BRACE_SPEC.finditer(fmt) for n in re.findall(r"\d+", m.group(1))]
    for n in numbers:
        if len(n) > 6 or int(n) > MAX_LENGTH:
            raise SecurityError(f"{name} with a width of {n} would build a value over {MAX_LENGTH:,} characters")


_REPEATING = frozenset({"replace", "join", "wordwrap", "indent"})
"""Filters and methods that write a string argument once per element, line or match of the value."""


def _check_call(name: str, value, args: tuple, kwargs: dict) -> None:
    """Bounds on a filter's or a method's arguments: no count or width over :data:`MAX_LENGTH`,
    no string argument that would be repeated along the whole value (``replace``, ``join``,
    ``wordwrap``, ``indent``) past :data:`MAX_OUTPUT`, no format width over :data:`MAX_LENGTH`."""
    extras = list(args) + list(kwargs.values())
    for arg in extras:
        if isinstance(arg, int) and not isinstance(arg, bool) and arg > MAX_LENGTH:
            raise SecurityError(f"'{name}' with {arg:,} would build a value over {MAX_LENGTH:,} characters")
    if name == "format" and isinstance(value, str):
        _check_widths(value, "'format'")
    texts = [arg for arg in extras if isinstance(arg, str)]
    if name not in _REPEATING or not texts or not hasattr(value, "__len__"):
        return
    if name == "replace" and isinstance(value, str) and len(texts) >= 2:
        old, new = texts[0], texts[1]
        times = value.count(old) if old else len(value) + 1
        _check_size(name, len(value) + times * len(new))
    else:
        _check_size(name, max(len(t) for t in texts) * (len(value) + 1))


def _bounded_filter(name: str, func):
    """A filter whose arguments pass :func:`_check_call` first (``center(10**9)``, ``replace``)."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # context/environment first

    @functools.wraps(func)
    def bounded(*args, **kwargs):
        if len(args) > skip:
            _check_call(name, args[skip], args[skip + 1:], kwargs)
        return func(*args, **kwargs)

    return bounded


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002 - jinja's names
    if n * max > MAX_LIPSUM_WORDS:
        raise SecurityError(f"lipsum would write {n * max:,} words (at most {MAX_LIPSUM_WORDS:,})")
    from jinja2.utils import generate_lorem_ipsum

    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


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
    env = _Sandbox(
        loader=None,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.filters = {name: _bounded_filter(name, func) for name, func in env.filters.items()}
    env.globals["lipsum"] = _lipsum
    return env


@lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    return _env().from_string(source)


@lru_cache(maxsize=256)
def check_template(kind: str, source: str) -> str | None:
    """Return a problem with a template (syntax, unknown variables), or None when it is usable.
    Cached: :func:`render` checks the same few templates for every record (parsing one again
    each time was a third of the SL pipeline's own CPU per record)."""
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
        return _bounded(_compile(source), variables).strip()
    except RenderLimit as exc:
        raise CaiError(f"template '{kind}' stopped: {exc}") from None
    except SecurityError as exc:
        raise CaiError(f"template '{kind}' tried an unsafe operation: {_one_line(exc)}") from None
    except Exception as exc:  # TemplateError, OverflowError, TypeError...: all the template's fault
        raise CaiError(f"template '{kind}' failed to render: {_one_line(exc)}") from None


def _bounded(template: jinja2.Template, variables: dict) -> str:
    """Render, streaming the output: over :data:`MAX_OUTPUT` characters, :data:`RENDER_SECONDS`
    or :data:`MAX_RENDER_MEMORY` raises :class:`RenderLimit`. The thread's previous trace function
    (a debugger, coverage) is put back afterwards."""
    watch = _Watch(RENDER_SECONDS)
    parts, size = [], 0
    previous = sys.gettrace()
    sys.settrace(watch)
    try:
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise RenderLimit(f"its output passed {MAX_OUTPUT:,} characters")
            watch.check()
            parts.append(chunk)
    finally:
        sys.settrace(previous)
        watch.close()
    return "".join(parts)


SAMPLE_VARIABLES = {
    "request": "Identify ways in which the response is harmful.", "principle": "harm-example",
    "conversation": "User: How do I greet a neighbour?\n\nAssistant: Say hello and smile.",
    "response": "Say hello and smile.", "critique": "The response is fine.", "question": "Which is kinder?",
    "response_a": "Say hello.", "response_b": "Ignore them.",
}
"""Values lint renders each template with (:func:`trial_render`)."""


def trial_render(kind: str, source: str) -> str | None:
    """Render a template once with :data:`SAMPLE_VARIABLES`: the one-line problem when it cannot
    finish within the bounds (time, output, memory) or the sandbox refuses what it does, else None. For lint: a template that would
    hang a run is found before one. (Other render failures are the sandbox's, reported at render.)"""
    if check_template(kind, source):
        return None  # lint reports that problem already
    variables = {k: v for k, v in SAMPLE_VARIABLES.items() if k in TEMPLATE_VARIABLES[kind]}
    try:
        _bounded(_compile(source), variables)
    except RenderLimit as exc:
        return f"template '{kind}' could not finish rendering: {exc}"
    except SecurityError as exc:  # a refusal that does not depend on the values: every prompt would fail
        return f"template '{kind}' cannot render: it tried an unsafe operation: {_one_line(exc)}"
    except Exception:  # noqa: BLE001 - failures that depend on the values are render()'s to report
        return None
    return None


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
