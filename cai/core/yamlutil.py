"""Safe YAML loading that remembers where every key and list item stands.

PyYAML's ``safe_load`` gives data without positions, and silently keeps the last of duplicated
keys. Lint errors must name a line, so the text is composed to a node tree once (safe: no tags
are constructed from it) and walked for positions and duplicates, then loaded with ``safe_load``.
"""

from __future__ import annotations

import yaml

from cai.core.diagnostics import Diagnostic
from cai.core.errors import CaiError


class YamlProblem(Exception):
    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.message = message
        self.line = line


def load_yaml(
    text: str, *, line_offset: int = 0
) -> tuple[object, dict[tuple, int], list[tuple[str, int]]]:
    """Load YAML safely.

    Returns ``(data, lines, duplicates)``: ``lines`` maps a location tuple (``("a", 0, "b")``) to
    its 1-based line in the file (``line_offset`` is added), ``duplicates`` lists ``(message, line)``
    pairs for duplicated mapping keys. Raises :class:`YamlProblem` on malformed YAML.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 + line_offset if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlProblem(f"malformed YAML: {problem}{_hint(problem)}", line) from None
    lines: dict[tuple, int] = {}
    duplicates: list[tuple[str, int]] = []
    if node is not None:
        _walk(node, (), lines, duplicates, line_offset)
    return data, lines, duplicates


YAML_HINTS = (("'\\t'", "indent with spaces, not tabs"),
              ("mapping values are not allowed", "quote a value that holds ': ', e.g. title: \"Harms: an overview\""),
              ("expected ',' or ']'", "a '[' is not closed"),
              ("expected ',' or '}'", "a '{' is not closed"))
"""The usual cause of PyYAML's commonest messages, said beside them."""


def _hint(problem: str) -> str:
    return next((f" ({hint})" for needle, hint in YAML_HINTS if needle in problem), "")


def _walk(node, loc, lines, duplicates, offset):
    lines.setdefault(loc, node.start_mark.line + 1 + offset)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                duplicates.append((f"duplicate key '{key}'", key_node.start_mark.line + 1 + offset))
            seen.add(key)
            lines[loc + (key,)] = key_node.start_mark.line + 1 + offset
            _walk(value_node, loc + (key,), lines, duplicates, offset)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, loc + (i,), lines, duplicates, offset)


def line_for(lines: dict[tuple, int], loc: tuple) -> int | None:
    """The line of the longest known prefix of ``loc``."""
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def parse_yaml_diagnostics(text: str, path: str, line_offset: int = 0):
    """``(data, lines, diagnostics)``; data is None when the YAML is malformed."""
    try:
        data, lines, duplicates = load_yaml(text, line_offset=line_offset)
    except YamlProblem as p:
        return None, {}, [Diagnostic(path, p.line, p.message)]
    diags = [Diagnostic(path, ln, msg) for msg, ln in duplicates]
    return data, lines, diags


def load_yaml_config(path: str | None) -> dict:
    """A YAML config file as a dict ({} when no file is given)."""
    if path is None:
        return {}
    from cai.core.files import read_text_file  # files imports diagnostics, which this module does too

    text, diags = read_text_file(path)
    if text is None:
        raise diags[0].to_error()
    try:
        data, _, _ = load_yaml(text)
    except YamlProblem as p:
        raise CaiError(p.message, path=path, line=p.line) from None
    if not isinstance(data, dict):
        raise CaiError("a config file must be a YAML mapping", path=path)
    return data
