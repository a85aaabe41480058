"""Helpers shared by CLI commands: YAML configs, flag overrides, backend flags."""

from __future__ import annotations

from typing import Any

from cai.core.errors import CaiError


def validate_config(model, data: dict, source: str | None):
    """Validate a config dict; the first problem becomes a one-line error naming the field."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)  # a misspelt field first: it is why another is missing
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        where = ".".join(str(p) for p in err["loc"])
        hint = " (pass it as a flag or in --config)" if err["type"] == "missing" else ""
        msg = err["msg"].removeprefix("Value error, ")  # a validator's own rule reads as written
        if err["type"] == "extra_forbidden":
            from cai.core.diagnostics import unknown_field_hint

            msg = "unknown field" + unknown_field_hint(model, err["loc"])
        # a whole-config rule (no location) names its own fields: no empty ': ' before it
        raise CaiError(f"{where}: {msg}{hint}" if where else f"{msg}{hint}", path=source,
                       line=_config_line(source, tuple(err["loc"]), data)) from None


def _config_line(source: str | None, loc: tuple, data: dict) -> int | None:
    """The line of ``--config`` file ``source`` that wrote the setting at ``loc``, when the value
    being validated is the file's (a flag that overrode it names no line); None otherwise."""
    from pathlib import Path

    from cai.core.yamlutil import YamlProblem, line_for, load_yaml

    if not source or not loc:
        return None
    try:
        written, lines, _ = load_yaml(Path(source).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YamlProblem):
        return None
    mine, theirs = data, written
    for key in loc:
        if isinstance(theirs, dict) and key in theirs:
            mine = mine.get(key) if isinstance(mine, dict) else None
            theirs = theirs[key]
        elif isinstance(theirs, list) and isinstance(key, int) and key < len(theirs):
            mine = mine[key] if isinstance(mine, list) and key < len(mine) else None
            theirs = theirs[key]
        else:
            return None
    if mine != theirs and not (isinstance(theirs, str) and isinstance(mine, str)):  # paths are resolved
        return None
    return line_for(lines, loc)


def merge_overrides(data: dict, overrides: dict[str, Any]) -> dict:
    """Flags win over the config file; unset flags (None) leave it alone."""
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
    return data


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values parse as YAML scalars (numbers, booleans, lists)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CaiError(f"--backend-option expects key=value, got '{pair}'")
        out[key.strip()] = yaml.safe_load(value) if value else ""
    return out


# Fields of BackendConfig that may be given as -O key=value; others go to backend options.
_TOP_LEVEL = {"dtype", "max_model_len", "on_overflow", "chat_template", "seed"}


def backend_config(existing: dict | None, backend: str | None, model: str | None, options: list[str],
                   required: bool = False, workers: int | None = None,
                   ray_address: str | None = None) -> dict | None:
    """A backend config dict from a config file's entry and the backend flags (flags win);
    ``workers``/``ray_address`` spread the backend over Ray workers. A config file's entry may be a
    model name (``attacker: smollm2-135m-instruct``, as in a recipe) or a mapping; anything else is a
    CaiError."""
    if isinstance(existing, str):
        existing = {"model": existing}
    elif existing is not None and not isinstance(existing, dict):
        raise CaiError(f"a model entry in the config must be a model name or a mapping (backend, model, options), "
                       f"got {type(existing).__name__} {existing!r}")
    data = dict(existing or {})
    merge_overrides(data, {"workers": workers, "ray_address": ray_address})
    if backend and (model or "backend" not in data):
        data["backend"] = backend
    if model:
        data["model"] = model
    if required and "model" not in data:
        from cai.models import DEFAULT_MODEL

        data["model"] = DEFAULT_MODEL  # the embedded model: present after the README's install
    for key, value in parse_options(options).items():
        if key in _TOP_LEVEL:
            data[key] = value
        else:
            data.setdefault("options", {})[key] = value
    return data


CONFIG_INPUT_KEYS = frozenset({
    "prompts", "pairs", "constitution", "principles_dir", "labels", "file", "responses", "baseline_responses",
    "data", "path", "suites", "db", "guidelines", "chat_template", "embedding_model", "reward_model", "model",
    "tasks", "gold",
})
"""Keys whose string values name files a config reads. Each resolves against the config file's
folder, as a recipe's do (``out`` stays relative to where the command runs, like ``--out``).
``model``-like keys resolve only when written ``./x`` or ``../x``, and ``constitution`` only as a
path (a bare name such as ``default`` is a library lookup)."""


def load_yaml_config(path: str | None) -> dict:
    """A ``--config`` YAML file as a dict ({} when none), its input paths resolved against the
    file's folder (so ``cai generate --config runs/x/gen.yaml`` reads ``runs/x/prompts.jsonl`` for
    ``prompts: prompts.jsonl`` wherever it is started). A path that exists only relative to the
    current folder (the rule before) still works, with a note."""
    from pathlib import Path

    from cai.core.yamlutil import load_yaml_config as load

    data = load(path)
    if path is None:
        return data
    return _resolve_inputs(data, Path(path).parent, source=path)


def _resolve_inputs(data, folder, key: str | None = None, source: str = ""):
    import os
    from pathlib import Path

    from cai.core.yamlutil import expand_env

    if isinstance(data, dict):
        return {k: _resolve_inputs(v, folder, k, source) for k, v in data.items()}
    if isinstance(data, list) and key in CONFIG_INPUT_KEYS:
        return [_resolve_inputs(v, folder, key, source) for v in data]
    if isinstance(data, str) and (key in CONFIG_INPUT_KEYS or key == "out"):
        # $VAR, ${VAR} and ~ expand as in a recipe's paths (an unset variable is an error, never a
        # folder literally named '${VAR}')
        data = expand_env(data, f"{source}: {key}")
    if not isinstance(data, str) or key not in CONFIG_INPUT_KEYS or not data.strip():
        return data
    value = data
    if Path(value).expanduser().is_absolute() or "://" in value:
        return value
    if key in ("model", "reward_model", "embedding_model", "chat_template") and not value.startswith(("./", "../")):
        return value  # a known name or hub id
    if key == "constitution" and not Path(value).suffix and "/" not in value:
        return value  # a name: looked up in the library
    beside = folder / value
    if beside.exists() or folder.resolve() == Path.cwd().resolve():
        return os.path.relpath(beside) if beside.resolve().is_relative_to(Path.cwd().resolve()) else str(beside)
    if Path(value).exists():
        from cai.core.renames import note

        note(f"{key}: '{value}' is read relative to the current folder; config files name files relative to "
             f"their own folder ({folder}), so write {os.path.relpath(Path(value).resolve(), folder.resolve())}")
        return value
    return str(beside)

