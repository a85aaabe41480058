"""Safe YAML loading that remembers where every key and list item stands.

PyYAML's ``safe_load`` gives data without positions, and silently keeps the last of duplicated
keys. Lint errors must name a line, so the text is composed to a node tree once (safe: no tags
are constructed from it) and walked for positions and duplicates, then loaded with ``safe_load``.
"""

from __future__ import annotations

import yaml

from cai.core.diagnostics import Diagnostic
from cai.core.errors import CaiError


MAX_NODES = 100_000
"""Most nodes a YAML document may hold once its aliases are expanded. A real recipe, constitution or
principle holds a few hundred; a "billion laughs" file of ~600 bytes expands to 10^8 (yaml/pyyaml#235:
loading is cheap because aliases are shared, but every walk over the data pays for each copy).
A longer file may hold up to twice as many nodes as it has characters (more than any file without
aliases can), so a large written file (a red-team suite of thousands of probes) still loads."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists accepted."""


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
        if node is not None:
            # before anything walks the tree; a file without aliases holds fewer nodes than
            # characters, so the bound grows with the text and only alias expansion can pass it
            _expanded_size(node, {}, 0, line_offset, max(MAX_NODES, 2 * len(text)))
        data = yaml.safe_load(text)
    except RecursionError:
        raise YamlProblem(f"YAML nested too deeply (the limit is {MAX_DEPTH} levels)", None) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 + line_offset if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlProblem(f"malformed YAML: {problem}{_hint(problem)}", line) from None
    except ValueError as exc:  # an integer past Python's digit limit, a date like 2024-13-45
        if "digits" in str(exc):
            raise YamlProblem(f"a number too long to read ({str(exc).split(';')[0]}); quote it if it is text",
                              _long_scalar_line(node, line_offset)) from None
        raise YamlProblem(f"malformed YAML: {exc} (quote the value if it is text)", None) from None
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


def _long_scalar_line(node, offset: int) -> int | None:
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.ScalarNode):
            if len(n.value) > 4000:
                return n.start_mark.line + 1 + offset
        elif isinstance(n, yaml.MappingNode):
            stack.extend(v for pair in reversed(n.value) for v in reversed(pair))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(reversed(n.value))
    return None


def _expanded_size(node, memo: dict[int, int], depth: int, offset: int, limit: int = MAX_NODES) -> int:
    """Nodes under ``node`` with every alias expanded, counted in time linear in the *distinct*
    nodes (an alias is the same node object, so its count is memoized). Raises :class:`YamlProblem`
    past :data:`MAX_NODES` or :data:`MAX_DEPTH`, naming the line where the limit was passed."""
    known = memo.get(id(node))
    if known is not None:
        return known
    line = node.start_mark.line + 1 + offset
    if depth > MAX_DEPTH:
        raise YamlProblem(f"YAML nested deeper than {MAX_DEPTH} levels", line)
    total = 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            total += _expanded_size(key_node, memo, depth + 1, offset, limit)
            total += _expanded_size(value_node, memo, depth + 1, offset, limit)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded_size(item, memo, depth + 1, offset, limit)
    if total > limit:
        raise YamlProblem(
            f"YAML expands to more than {limit:,} values through its aliases (&anchor/*alias); "
            "refused (an alias bomb, or a file far larger than a config needs)", line)
    memo[id(node)] = total
    return total


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


_ENV_VAR = None


def expand_env(value: str, field: str) -> str:
    """``$NAME``, ``${NAME}`` and a leading ``~`` in a path field expanded from the environment
    (as a shell would, and docker-compose does in its files); ``$$`` is a literal ``$``.

    Raises CaiError naming ``field`` when a variable is not set: a recipe whose ``out:`` reads
    ``${CAI_RUNS}/x`` must not write into a folder literally named ``${CAI_RUNS}``.
    """
    import os
    import re

    global _ENV_VAR
    if _ENV_VAR is None:
        _ENV_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)|\$\{[^}]*\}?")

    def sub(match):
        text = match.group(0)
        if text == "$$":
            return "$"
        name = match.group(1) or match.group(2)
        if name is None:
            raise CaiError(f"{field}: '{text}' is not a variable name (paths expand $NAME and ${{NAME}}; "
                           "write $$ for a literal $)")
        if name not in os.environ:
            raise CaiError(f"{field}: environment variable {name} is not set ('{value}'); set it, or write "
                           "$$ for a literal $")
        return os.environ[name]

    expanded = _ENV_VAR.sub(sub, value) if "$" in value else value
    return os.path.expanduser(expanded) if expanded.startswith("~") else expanded
