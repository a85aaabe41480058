"""Flags generated from config fields (issue 27 item 4): every command that has a config takes its
settings through :func:`cai.cli.fields.takes_fields`; a generated flag is unset unless given, its help
states the field's effective default, and setting one flag changes that setting and no other."""

from __future__ import annotations

import json
import typing

import pytest
import typer
from pydantic_core import PydanticUndefined

from cai.cli.fields import default_text, takes_fields
from cai.core.errors import CaiError
from test_config_truth import flat


def _commands():
    from cai.cli.main import _register, app

    _register()
    root = typer.main.get_command(app)

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, (*path, name))
        else:
            yield path, cmd

    return dict(walk(root, ()))


def _flags(cmd):
    return getattr(cmd.callback, "field_flags", None)


# Commands with no config model: their options are their own (a name, a folder, a file to show).
NO_CONFIG = {
    ("init",), ("show",), ("models", "list"), ("models", "pull"), ("principles", "list"), ("principles", "new"),
    ("principles", "show"), ("principles", "lint"), ("principles", "import"), ("run",),
    ("principles", "schema"),  # only prints a JSON Schema; its one argument says which
    ("models", "path"),  # only takes a model name and prints its folder
}


def test_every_command_with_settings_takes_them_from_its_config():
    missing = [" ".join(p) for p, cmd in _commands().items() if p not in NO_CONFIG and not _flags(cmd)]
    converting: set[str] = set()
    missing = [m for m in missing if m not in converting]  # WIP: emptied as each command is converted
    assert not missing, f"commands whose settings are hand-written options, not config fields: {missing}"


def test_generated_flags_are_unset_unless_given_and_say_the_fields_default():
    for path, cmd in _commands().items():
        for spec in _flags(cmd) or []:
            param = next(p for p in cmd.params if p.name == spec.param)
            assert param.default in (None, ()), (path, spec.path, param.default)
            shown = default_text(spec.default)
            if shown:
                assert shown in param.help, (path, spec.path, param.help)
            if spec.is_bool and isinstance(spec.default, bool):
                on = spec.decls[0].split("/")[0]
                assert (on in param.help) == spec.default or "no" in param.help, (path, param.help)


def test_no_hand_written_option_restates_a_generated_one():
    for path, cmd in _commands().items():
        specs = _flags(cmd) or []
        generated = {s.param for s in specs}
        names = [o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])]
        dupes = {n for n in names if names.count(n) > 1}
        assert not dupes, (path, dupes)
        assert len(generated) == len(specs)


def test_the_decorator_refuses_a_field_a_flag_cannot_carry_and_an_unknown_name():
    from cai.sl.config import GenerateConfig

    with pytest.raises(TypeError, match="max_tokens_per_stage"):
        takes_fields(GenerateConfig, ["max_tokens_per_stage"])
    with pytest.raises(TypeError, match="no field 'nonsense'"):
        takes_fields(GenerateConfig, ["nonsense"])


# --- one flag changes one setting ------------------------------------------------------------------------

class Captured(CaiError):
    pass


from cai.cli.common import validate_config as _REAL_VALIDATE  # noqa: E402  (before any test replaces it)


def _captured_config(monkeypatch, capsys, argv):
    """The validated config a command would run with (validate_config is where every command's
    flags, --config file and defaults meet), or the CaiError it raised."""
    import cai.cli.common as common
    from cai.cli.main import main

    seen = []
    real = _REAL_VALIDATE

    def spy(model, data, source):
        cfg = real(model, data, source)
        seen.append(cfg)
        raise Captured("captured")

    monkeypatch.setattr(common, "validate_config", spy)
    for name, mod in list(__import__("sys").modules.items()):
        if name.startswith("cai.cli.") and hasattr(mod, "validate_config"):
            monkeypatch.setattr(mod, "validate_config", spy)
    code = main(argv)
    out = capsys.readouterr()
    return (seen[0] if seen else None), code, out.err


def _other_values(spec):
    """Values to try for a flag, none equal to its default."""
    ann = spec.annotation
    inner = typing.get_args(ann)[0] if typing.get_origin(ann) is typing.Union else ann
    default = spec.default if spec.default is not PydanticUndefined else None
    if spec.is_bool:
        return [None]  # the flag's other spelling
    if typing.get_origin(inner) is typing.Literal:
        return [v for v in typing.get_args(inner) if v != default]
    if spec.multiple:
        return ([["x"], ["direct"]] if typing.get_args(inner) in ((str,), ()) or inner is list[str]  # direct: one of a
                else [["1"]])                                                                  # set (redteam's styles)
    if inner is int:
        return [v for v in (2, 3, 1, 7, 300) if v != default]  # 300: a count with a floor (n_boot >= 100)
    if inner is float:
        return [v for v in (0.3, 0.7, 0.05, 2.0) if v != default]
    return ["xyz-other", "2", "hinge"]  # "2": a number-or-word field (principles_per_pair: 2 or all); "hinge": a word from a set its validator checks (DPO's loss_type)


def _argv_for(spec, value):
    if spec.is_bool:
        on, _, off = spec.decls[0].partition("/")
        return [off if spec.default is True else on]
    name = spec.decls[0].split("/")[0]
    if spec.multiple:
        return [w for v in value for w in (name, v)]
    return [name, str(value)]


@pytest.fixture
def files(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "hi", "id": "a"}) + "\n")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    return {"prompts": str(prompts), "pairs": str(pairs), "out": str(tmp_path / "o")}


# command -> the arguments that make it valid; {prompts}/{pairs}/{out} are filled from `files`.
BASE_ARGS: dict[tuple[str, ...], list[str]] = {
    ("guard", "data"): ["--out", "{out}", "--backend", "scripted", "--model", "m"],
    ("guard", "train"): ["--data", "{pairs}", "--model", "m", "--out", "{out}"],
    ("guard", "eval"): ["--model", "m", "--out", "{out}"],
    ("humans", "import"): ["{pairs}", "--format", "trl", "--out", "{out}"],
    ("humans", "serve"): ["{pairs}", "--db", "{out}"],
    ("humans", "export"): ["--db", "{pairs}", "--out", "{out}"],
    ("humans", "stats"): ["--db", "{pairs}"],
    ("generate",): ["--constitution", "default", "--prompts", "{prompts}", "--out", "{out}", "--backend", "scripted",
                    "--model", "m"],
    ("train", "reward"): ["--data", "{pairs}", "--model", "m", "--out", "{out}"],
    ("train", "sft"): ["--data", "{prompts}", "--model", "m", "--out", "{out}"],
    ("train", "dpo"): ["--data", "{pairs}", "--model", "m", "--out", "{out}"],
    ("train", "ppo"): ["--prompts", "{prompts}", "--model", "m", "--reward-model", "rm", "--out", "{out}"],
    **{("train", a): ["--prompts", "{prompts}", "--model", "m", "--out", "{out}", "--constitution", "default"]
       for a in ("grpo", "rloo")},
    ("eval", "agreement"): ["{pairs}"],
    ("sample",): ["--prompts", "{prompts}", "--out", "{out}", "--backend", "scripted", "--model", "m"],
    ("label",): ["--pairs", "{pairs}", "--constitution", "default", "--out", "{out}", "--backend", "scripted",
                 "--model", "m"],
    ("route",): ["--pairs", "{pairs}", "--budget", "5", "--out", "{out}"],
    ("mix",): ["--input", "{pairs}", "--out", "{out}"],
    ("redteam",): ["--out", "{out}", "--backend", "scripted", "--attacker-model", "m"],
    ("score",): ["{pairs}", "--model", "rm"],
    ("eval", "behavior"): ["--responses", "{prompts}", "--out", "{out}"],
    ("eval", "reward-model"): ["rm", "--out", "{out}"],
    ("principles", "test"): ["--backend", "scripted", "--model", "m"],
    ("principles", "propose"): ["--pairs", "{pairs}", "--out", "{out}", "--backend", "scripted", "--model", "m"],
}

# (command, field path) -> flags the setting is read only with (a verify setting needs --verify).
NEEDS: dict[tuple[tuple[str, ...], str], list[str]] = {
    **{(("generate",), f): ["--verify"] for f in ("min_p", "verify_sft", "keep_unverified", "min_follows",
                                                  "verify_few_shot", "min_label_mass", "judge_health")},
    (("generate",), "min_applies"): ["--pick", "applicable"],
    (("train", "ppo"), "batch_size"): ["--mini-batch-size", "1"],  # a multiple of mini_batch_size (8)
    **{(("train", a), "batch_size"): ["--num-generations", "2"] for a in ("grpo", "rloo")},  # whole groups
    **{(("humans", "import"), f): ["--format", "csv"] for f in ("prompt_column", "chosen_column", "rejected_column",
                                                               "label_column", "label_values", "rater_column")},
    **{(("principles", "test"), f): ["--pairs", "pairs.jsonl"] for f in (
        "constitution", "worst", "min_strength", "few_shot", "pair_first", "chunk_size", "n_boot", "seed", "limit",
        "skip_invalid", "min_label_mass", "judge_health")},
}


def test_every_command_with_generated_flags_is_checked_below():
    unchecked = [p for p, cmd in _commands().items() if _flags(cmd) and p not in BASE_ARGS]
    assert not unchecked, f"add these commands to BASE_ARGS: {unchecked}"


@pytest.mark.parametrize("path", sorted(BASE_ARGS))
def test_one_flag_changes_its_own_setting_and_no_other(path, files, monkeypatch, capsys):
    cmd = _commands()[path]
    base_argv = [*path, *(a.format(**files) for a in BASE_ARGS[path])]
    checked = 0
    for spec in _flags(cmd):
        key = ".".join(spec.path)
        needs = NEEDS.get((path, key), [])
        base, code, err = _captured_config(monkeypatch, capsys, [*base_argv, *needs])
        assert base is not None, f"{' '.join(base_argv + needs)}: exit {code}: {err}"
        base = flat(base)
        errors = []
        for value in _other_values(spec):
            cfg, code, err = _captured_config(monkeypatch, capsys, [*base_argv, *needs, *_argv_for(spec, value)])
            if cfg is None:
                errors.append(err.strip())
                continue
            changed = flat(cfg)
            differs = {k for k in set(base) | set(changed) if base.get(k) != changed.get(k)}
            differs_top = {k for k in differs if not k.startswith(key + ".")} - {key}
            assert not differs_top, f"{' '.join(path)} {_argv_for(spec, value)} also changed {differs_top}"
            assert differs, f"{' '.join(path)} {_argv_for(spec, value)} changed nothing"
            checked += 1
            break
        else:
            pytest.fail(f"{' '.join(path)} {spec.decls[0]}: no value was accepted: {errors}")
    assert checked == len(_flags(cmd))
