"""One source of truth per setting (issue 27 item 4): a command's flags give exactly the config the
Python API gives for the same fields; a flag changes only its own setting; ``--config`` paths
resolve against the config file's folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cai.core.errors import CaiError


class Captured(CaiError):
    pass


def capture(monkeypatch, module: str, name: str) -> list:
    """Replace ``module.name`` (the library call a command makes) by one that records its config."""
    import importlib

    seen: list = []

    def fake(cfg, *args, **kwargs):
        seen.append(cfg)
        raise Captured("captured")

    monkeypatch.setattr(importlib.import_module(module), name, fake)
    return seen


def config_of(monkeypatch, capsys, module, name, argv):
    from cai.cli.main import main

    seen = capture(monkeypatch, module, name)
    code = main(argv)
    capsys.readouterr()
    assert seen, f"{argv} did not reach {name} (exit {code})"
    return seen[0]


def flat(cfg) -> dict:
    def walk(value, prefix=""):
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                out.update(walk(v, f"{prefix}{k}."))
            return out
        return {prefix.rstrip("."): value}

    return walk(cfg.model_dump(mode="json"))


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "hi"}) + "\n")
    return str(path)


GENERATE = ["generate", "--constitution", "default", "--model", "m", "--backend", "scripted"]


def test_generate_flags_give_the_configs_defaults(monkeypatch, capsys, prompts, tmp_path):
    """`cai generate` started from an empty sampling block: it sampled at temperature 1.0 while
    GenerateConfig (the Python API, recipes) said 0.7, with or without --max-tokens."""
    from cai.backends import BackendConfig
    from cai.sl import GenerateConfig

    out = str(tmp_path / "o")
    via_cli = config_of(monkeypatch, capsys, "cai.sl", "run_generate", [*GENERATE, "--prompts", prompts, "--out", out])
    direct = GenerateConfig(constitution="default", prompts=prompts, out=out,
                            policy=BackendConfig(backend="scripted", model="m"))
    assert flat(via_cli) == flat(direct)
    assert via_cli.sampling.temperature == 0.7
    with_tokens = config_of(monkeypatch, capsys, "cai.sl", "run_generate",
                            [*GENERATE, "--prompts", prompts, "--out", out, "--max-tokens", "64"])
    assert with_tokens.sampling.temperature == 0.7 and with_tokens.sampling.max_tokens == 64


@pytest.mark.parametrize("flag,value,field", [
    ("--max-tokens", "64", "sampling.max_tokens"),
    ("--temperature", "0.3", "sampling.temperature"),
    ("--seed", "7", "sampling.seed"),
    ("--rounds", "2", "rounds"),
    ("--limit", "3", "limit"),
    ("--chunk-size", "4", "chunk_size"),
    ("--prompt-column", "text", "prompt_column"),
])
def test_a_generate_flag_changes_only_its_own_setting(monkeypatch, capsys, prompts, tmp_path, flag, value, field):
    out = str(tmp_path / "o")
    base = flat(config_of(monkeypatch, capsys, "cai.sl", "run_generate", [*GENERATE, "--prompts", prompts, "--out", out]))
    changed = flat(config_of(monkeypatch, capsys, "cai.sl", "run_generate",
                             [*GENERATE, "--prompts", prompts, "--out", out, flag, value]))
    differs = {k for k in base if base[k] != changed.get(k)}
    assert differs == {field}, differs


def test_sample_and_label_flags_give_the_configs_defaults(monkeypatch, capsys, prompts, tmp_path):
    from cai.backends import BackendConfig
    from cai.feedback import LabelConfig, SampleConfig

    out = str(tmp_path / "o")
    via_cli = config_of(monkeypatch, capsys, "cai.feedback", "run_sample",
                        ["sample", "--prompts", prompts, "--out", out, "--model", "m", "--backend", "scripted"])
    direct = SampleConfig(prompts=prompts, out=out, policy=BackendConfig(backend="scripted", model="m"))
    assert flat(via_cli) == flat(direct)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    via_cli = config_of(monkeypatch, capsys, "cai.feedback", "run_label",
                        ["label", "--pairs", str(pairs), "--constitution", "default", "--out", out, "--model", "m",
                         "--backend", "scripted"])
    direct = LabelConfig(pairs=str(pairs), constitution="default", out=out,
                         labeler=BackendConfig(backend="scripted", model="m"))
    assert flat(via_cli) == flat(direct)


def test_config_file_paths_resolve_against_its_folder(monkeypatch, capsys, tmp_path):
    """Recipes read their files relative to their own folder; --config files read them relative
    to where the command ran, so the same YAML meant different files."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "prompts.jsonl").write_text(json.dumps({"prompt": "hi"}) + "\n")
    (project / "gen.yaml").write_text("prompts: prompts.jsonl\nconstitution: default\nout: run\n"
                                      "policy: {backend: scripted, model: m}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = config_of(monkeypatch, capsys, "cai.sl", "run_generate", ["generate", "--config", str(project / "gen.yaml")])
    assert (elsewhere / cfg.prompts).resolve() == (project / "prompts.jsonl").resolve()
    assert cfg.constitution == "default"  # a library name stays a name
    assert cfg.out == "run"  # the output folder stays relative to where the command runs, like --out


def test_config_file_paths_expand_env_vars_or_say_which_is_unset(monkeypatch, capsys, tmp_path):
    # `out: ${RUNS}/gen` in a --config file wrote into a folder literally named '${RUNS}'
    from cai.cli.common import load_yaml_config
    from cai.core.errors import CaiError

    (tmp_path / "prompts.jsonl").write_text(json.dumps({"prompt": "hi"}) + "\n")
    cfg_file = tmp_path / "gen.yaml"
    cfg_file.write_text("prompts: $DATA/prompts.jsonl\nout: ${RUNS}/gen\npolicy: {backend: scripted, model: m}\n"
                        "sampling: {stop: ['$x']}\n")
    monkeypatch.setenv("DATA", str(tmp_path))
    monkeypatch.setenv("RUNS", str(tmp_path / "runs"))
    data = load_yaml_config(str(cfg_file))
    assert data["out"] == str(tmp_path / "runs" / "gen")
    assert Path(data["prompts"]).resolve() == (tmp_path / "prompts.jsonl").resolve()
    assert data["sampling"] == {"stop": ["$x"]}  # not a path: left alone
    monkeypatch.delenv("RUNS")
    with pytest.raises(CaiError, match=r"gen\.yaml: out: environment variable RUNS is not set"):
        load_yaml_config(str(cfg_file))


def test_a_model_entry_in_a_config_may_be_a_name_and_is_never_a_traceback(tmp_path, capsys):
    # `attacker: scripted` (a recipe's spelling) raised "dictionary update sequence element #0..."
    from cai.cli.main import main

    cfg = tmp_path / "rt.yaml"
    cfg.write_text(f"out: {tmp_path / 'rt'}\nattacker: scripted\nper_principle: 1\nmax_principles: 1\n")
    assert main(["redteam", "--config", str(cfg), "--backend", "scripted"]) == 0
    assert (tmp_path / "rt" / "summary.json").exists()
    cfg.write_text(f"out: {tmp_path / 'gd'}\nmodel: 5\n")
    capsys.readouterr()
    assert main(["guard", "data", "--config", str(cfg)]) != 0
    err = capsys.readouterr().err
    assert "must be a model name or a mapping" in err and "Traceback" not in err


def test_a_config_file_error_names_its_line_and_a_flag_error_names_none(tmp_path, capsys):
    from cai.cli.main import main

    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": "hi"}) + "\n")
    cfg = tmp_path / "gen.yaml"
    cfg.write_text("prompts: p.jsonl\nconstitution: default\nout: run\nchunk_size: 0\nrouds: 2\n")
    assert main(["generate", "--config", str(cfg), "--backend", "scripted", "--model", "m"]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}:5: rouds: unknown field" in err, err
    cfg.write_text("prompts: p.jsonl\nconstitution: default\nout: run\nchunk_size: 0\n")
    assert main(["generate", "--config", str(cfg), "--backend", "scripted", "--model", "m"]) == 2
    assert f"{cfg}:4: chunk_size:" in capsys.readouterr().err
    cfg.write_text("prompts: p.jsonl\nconstitution: default\nout: run\nchunk_size: 4\n")
    assert main(["generate", "--config", str(cfg), "--backend", "scripted", "--model", "m", "--chunk-size", "0"]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: chunk_size:" in err and f"{cfg}:4" not in err, err
