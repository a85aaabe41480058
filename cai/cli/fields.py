"""CLI options generated from config fields: one source of truth per setting (issue 27 item 4).

A command declares which fields of its config model it takes as flags; :func:`takes_fields` adds
one option per field to the command's signature, with the flag name (the kebab-case of the field),
the type, the choices and the help text (the field's description and its effective default) all
read from the pydantic model. A generated option is unset unless the user gives it, so a flag never
changes any setting but its own, and the config's defaults are the only defaults.

Why by hand: typer builds options only from a function's signature, and neither typer nor click
reads pydantic models (TRL's ``HfArgumentParser`` and tyro do, for argparse and their own CLIs; cai
keeps typer for its command tree, its help and its tests). This module is the small bridge.

Example::

    @takes_fields(GenerateConfig, ["prompts", "out", "rounds"], nested={"sampling": ["temperature"]})
    def generate(config: Optional[str] = typer.Option(None, "--config"), *, fields: dict) -> None:
        data = load_yaml_config(config)
        apply_fields(data, fields)        # flags win over the file
"""

from __future__ import annotations

import functools
import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

_SCALARS = (str, int, float)


@dataclass
class FieldFlag:
    """One generated option: the config path it sets (``("sampling", "seed")``), the Python
    parameter name typer sees, its option declarations and the model field behind it."""

    path: tuple[str, ...]
    param: str
    decls: tuple[str, ...]
    annotation: Any
    click_type: Any
    multiple: bool
    is_bool: bool
    help: str
    default: Any


def kebab(name: str) -> str:
    """``chunk_size`` -> ``--chunk-size``."""
    return "--" + name.replace("_", "-")


def _strip_optional(annotation):
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
        if str in args:
            return str  # e.g. str | list[str]: the flag takes the text form
        if set(args) <= {int, float}:
            return float
        if all(a in _SCALARS or (typing.get_origin(a) is Literal and all(isinstance(v, str) for v in typing.get_args(a)))
               for a in args):
            return str  # e.g. int | Literal["all"]: the flag takes the text form, the model parses it
        return Union[tuple(args)]
    return annotation


def _kind(annotation, where: str):
    """(python type, click type or None, multiple, is_bool) of a field's annotation; a field a flag
    cannot carry (a mapping, a nested model) is a TypeError at import time, naming it."""
    annotation = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return bool, None, False, True
    if annotation in _SCALARS:
        return annotation, None, False, False
    if origin is Literal:
        values = typing.get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return annotation, None, False, False  # typer shows and checks the choices
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return int, None, False, False  # the model checks the value
    if origin in (list, tuple, set, frozenset):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        inner = _strip_optional(args[0]) if args else str
        if inner in _SCALARS:
            return inner, None, True, False
        if typing.get_origin(inner) is Literal:
            return str, None, True, False  # typer takes no list of choices; the model checks each
    if isinstance(annotation, type) and issubclass(annotation, _SCALARS):  # Path-like str subclasses
        return str, None, False, False
    raise TypeError(f"{where}: a field of type {annotation!r} cannot be a flag (set it in --config)")


def field_default(model: type[BaseModel], name: str, parent: BaseModel | None = None) -> Any:
    """The effective default of ``model.name``: from the parent's default instance for a nested
    field (GenerateConfig's sampling defaults to temperature 0.7, not SamplingConfig's own),
    else the field's default or default factory; ``PydanticUndefined`` for a required field."""
    if parent is not None:
        return getattr(parent, name)
    info = model.model_fields[name]
    if info.default_factory is not None:
        try:
            return info.default_factory()
        except TypeError:  # a factory that takes the validated data
            return PydanticUndefined
    return info.default


def default_text(value: Any) -> str:
    """How a default reads in help: ``(default: 0.7)``, ``(required)``, or nothing for None."""
    if value is PydanticUndefined:
        return "(required)"
    if value is None:
        return ""
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, bool):
        return ""  # said by the flag pair's [default: ...]
    if isinstance(value, (list, tuple, set)):
        return f"(default: {', '.join(str(v) for v in value)})" if value else ""
    if isinstance(value, dict):
        return ""
    return f"(default: {value})"


def _help(description: str | None, default: Any, is_bool: bool, flag: str, off: str | None) -> str:
    text = (description or "").strip()
    if is_bool and isinstance(default, bool):
        shown = flag if default else (off or f"no {flag}")
        return f"{text} (default: {shown})".strip()
    tail = default_text(default)
    return f"{text} {tail}".strip()


def _within(about: str, description: str | None) -> str | None:
    """``Sampling of the reasoning: most tokens to generate ...``: a nested field's help after its
    block's (two blocks' fields of one name read apart, in the help and in the docs' table)."""
    if not about or not description:
        return description or about or None
    text = description.strip()
    lead = text[:1].lower() if text[1:2].islower() else text[:1]
    return f"{about}: {lead}{text[1:]}"


def _flags_for(model, names, nested, flags, prefixed=()) -> list[FieldFlag]:
    flags = dict(flags or {})
    specs: list[FieldFlag] = []
    todo: list[tuple[tuple[str, ...], type[BaseModel], BaseModel | None, str]] = [
        ((n,), model, None, "") for n in names]
    for block, subnames in (nested or {}).items():
        sub, parent = model, None  # a dotted block ("cot.sampling") is a block inside a block
        for part in block.split("."):
            default = field_default(sub, part, parent)
            about = sub.model_fields[part].description or ""
            sub = _strip_optional(sub.model_fields[part].annotation)
            parent = default if isinstance(default, BaseModel) else None
        # a nested field's help starts with its block's: cot's temperature is not the answer's
        about = re.sub(r"\s*\([^)]*\)", "", about.strip().split(". ")[0]).rstrip(".").replace("``", "")
        todo += [((*block.split("."), n), sub, parent, about) for n in subnames]
    for path, owner, parent, about in todo:
        name = path[-1]
        key = ".".join(path)
        if name not in owner.model_fields:
            raise TypeError(f"{model.__name__}: no field {key!r} to make a flag of")
        info = owner.model_fields[name]
        py, click_type, multiple, is_bool = _kind(info.annotation, f"{model.__name__}.{key}")
        default = field_default(owner, name, parent)
        given = flags.pop(key, None)
        decls = tuple([given] if isinstance(given, str) else given or ())
        if not decls:
            spelled = f"{path[-2]}_{name}" if len(path) > 1 and path[-2] in prefixed else name
            decls = (f"{kebab(spelled)}/{kebab('no_' + spelled)}",) if is_bool else (kebab(spelled),)
        first = decls[0].split("/")[0]
        off = decls[0].split("/")[1] if "/" in decls[0] else None
        annotation = Optional[list[py]] if multiple else Optional[py]
        specs.append(FieldFlag(path=path, param="f__" + "__".join(path), decls=decls, annotation=annotation,
                               click_type=click_type, multiple=multiple, is_bool=is_bool,
                               help=_help(_within(about, info.description), default, is_bool, first, off),
                               default=default))
    if flags:
        raise TypeError(f"{model.__name__}: flags= names fields that are not taken: {sorted(flags)}")
    return specs


def takes_fields(model: type[BaseModel], names: list[str], *, nested: dict[str, list[str]] | None = None,
                 flags: dict[str, str | tuple[str, ...]] | None = None, prefixed: tuple[str, ...] = ()):
    """Decorator: add one typer option per field in ``names`` (and per ``nested`` block's fields,
    e.g. ``{"sampling": ["temperature", "seed"]}``; a dotted block such as ``"cot.sampling"`` is a
    block inside a block) of ``model`` to a command.

    The command receives ``fields``: a nested dict of the values given on the command line only
    (``{"rounds": 2, "sampling": {"seed": 3}}``); an option left out is absent, never a default.
    ``flags`` overrides the spelling of an option (``{"sampling.seed": "--seed"}``,
    ``{"export": "--export/--no-export"}``) or gives it several (a tuple). A block named in
    ``prefixed`` spells its flags with the block's name first (``kl.beta`` -> ``--kl-beta``).

    Raises TypeError at import time for a field that a flag cannot carry or a name not in the model.
    """
    specs = _flags_for(model, names, nested, flags, prefixed)

    def wrap(func):
        hints = typing.get_type_hints(func, include_extras=True)
        sig = inspect.signature(func)
        own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
               if p.name != "fields"]
        taken = {d for p in sig.parameters.values() if isinstance(p.default, typer.models.ParameterInfo)
                 for d in (p.default.param_decls or ())}
        extra = []
        for spec in specs:
            clash = {d.split("/")[0] for d in spec.decls} & {t.split("/")[0] for t in taken}
            if clash:
                raise TypeError(f"{func.__name__}: {sorted(clash)} is both a generated and a hand-written option")
            option = typer.Option(None, *spec.decls, help=spec.help, show_default=False)
            extra.append(inspect.Parameter(spec.param, inspect.Parameter.KEYWORD_ONLY, default=option,
                                           annotation=spec.annotation))
        # arguments and the context first, then the config's fields (in the model's order: what a
        # command is about comes first in its help), then the command's own options
        first = [p for p in own if not isinstance(p.default, typer.models.OptionInfo)]
        rest = [p for p in own if isinstance(p.default, typer.models.OptionInfo)]
        extra = [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in extra]
        rest = [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in rest]

        @functools.wraps(func)
        def command(*args, **kwargs):
            values: dict = {}
            for spec in specs:
                value = kwargs.pop(spec.param, None)
                if value is None or (spec.multiple and not value):
                    continue
                put(values, spec.path, list(value) if spec.multiple else value)
            return func(*args, fields=values, **kwargs)

        params = first + extra + rest
        command.__signature__ = sig.replace(parameters=params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.field_flags = specs
        command.field_model = model
        return command

    return wrap


def put(data: dict, path: tuple[str, ...], value: Any) -> None:
    """Set ``data[path[0]][path[1]]... = value``, making the mappings on the way."""
    for key in path[:-1]:
        inner = data.get(key)
        if not isinstance(inner, dict):
            inner = {} if inner is None else ({"model": inner} if isinstance(inner, str) else inner)
            data[key] = inner
        data = inner
    data[path[-1]] = value


def apply_fields(data: dict, fields: dict) -> dict:
    """Merge the flags given (``fields`` from :func:`takes_fields`) into a config dict read from
    ``--config``: flags win, nested blocks merge key by key. Returns ``data``."""
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            apply_fields(data[key], value)
        elif isinstance(value, dict) and data.get(key) is not None and not isinstance(data.get(key), dict):
            data[key] = value  # a scalar in the file (a model name) replaced by the block the flags give
        else:
            data[key] = value
    return data
