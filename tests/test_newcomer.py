"""Issue 23: a newcomer's three workflows, each rough edge as a small test of its own.

Each test builds its own small input (a handful of records, a three-row CSV, a recipe in tmp_path)
and fails on the behaviour the newcomer ran into."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cai.cli.main import main
from cai.data.records import ChatMessage, Record

try:  # transformers' log handler binds to the stderr of its first import: not to one test's capsys
    import transformers  # noqa: F401
except ImportError:  # pragma: no cover
    pass


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _records(folder: Path, ids: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "records.jsonl", "w", encoding="utf-8") as fh:
        for i, rid in enumerate(ids):
            r = Record(id=rid, prompt=[ChatMessage(role="user", content=f"question number {i}")],
                       draft=f"draft {i}", final=f"final {i}")
            fh.write(r.model_dump_json() + "\n")


# ---------------------------------------------------------------- 6. finding one's way in `cai show`


def test_show_lists_records_and_explains_ids(tmp_path, capsys):
    _records(tmp_path / "run", ["med001aa", "med002bb", "med003cc", "other000"])
    code, out, _ = cli(capsys, "show", str(tmp_path / "run"))
    assert code == 0 and all(i in out for i in ("med001aa", "med003cc", "other000")) and "question number 3" in out
    code, _, err = cli(capsys, "show", str(tmp_path / "run"), "--id", "med")
    assert code == 2 and "matches 3 records" in err and "med002bb" in err
    code, _, err = cli(capsys, "show", str(tmp_path / "run"), "--id", "nope")
    assert code == 2 and "other000" in err and "med001aa" in err
    code, out, _ = cli(capsys, "show", str(tmp_path / "run"), "--id", "med002")
    assert code == 0 and "draft 1" in out


def test_show_on_a_loop_run_folder_reads_its_generate_stage(tmp_path, capsys):
    _records(tmp_path / "loop" / "generate", ["abc123"])
    code, out, _ = cli(capsys, "show", str(tmp_path / "loop"), "--id", "abc")
    assert code == 0 and "final 0" in out
    code, _, err = cli(capsys, "show", str(tmp_path / "empty"))
    assert code == 2


def test_trl_log_entries_become_one_plain_line_per_step():
    from cai.train.run import log_line

    line = log_line({"loss": 0.693147, "grad_norm": 1.23456, "learning_rate": 5e-05, "epoch": 0.4}, 10, 40)
    assert line == "step 10/40: loss 0.6931, grad_norm 1.235, learning_rate 5e-05, epoch 0.4"
    end = log_line({"train_runtime": 3.21, "train_loss": 0.7, "total_flos": 12.0}, 40, 40)
    assert end.startswith("done after 40 steps: runtime 3.21") and "flos" not in end


@pytest.mark.slow
def test_reward_training_off_a_terminal_prints_plain_lines_not_dicts(tiny_llama, tmp_path, capsys):
    pytest.importorskip("trl")
    from cai.data.pairs import PreferencePair, write_pairs

    pairs = [PreferencePair(prompt=[{"role": "user", "content": f"question {i}"}],
                            chosen=[{"role": "assistant", "content": f"good answer {i}"}],
                            rejected=[{"role": "assistant", "content": f"bad {i}"}], source="human")
             for i in range(8)]
    write_pairs(pairs, tmp_path / "pairs")
    cfg = tmp_path / "rm.yaml"
    cfg.write_text(f"data: {tmp_path / 'pairs'}\nmodel: {tiny_llama}\nout: {tmp_path / 'rm'}\n"
                   "max_steps: 2\nbatch_size: 4\nlogging_steps: 1\n")
    code, out, err = cli(capsys, "train", "reward", "--config", str(cfg))
    assert code == 0, err
    assert "step 1/2: loss" in out and "{'loss'" not in out + err


# ---------------------------------------------------------------- 5. weak judges, rates with their n


def test_rates_carry_their_n_and_interval():
    from cai.core.rates import rate_text, wilson

    text = rate_text(1.0, 1, of="pairs")
    assert text.startswith("100.0% of 1 pairs (95% CI") and "small sample" in text
    low, high = wilson(1, 1)
    assert low < 0.25 and high == 1.0
    assert "small sample" not in rate_text(0.5, 400) and rate_text(None, 3) == "n/a"


def test_label_warns_when_answers_are_mostly_position_bias(tmp_path, capsys):
    from feedback_helpers import write_constitution, write_pairs_file

    pairs = write_pairs_file(tmp_path / "pairs.jsonl", [(f"q{i}", f"yes {i}", f"no {i}") for i in range(4)])
    constitution = write_constitution(tmp_path)
    # The scripted labeler always answers "A": the first shown response wins in both orders.
    code, out, err = cli(capsys, "label", "--pairs", str(pairs), "--constitution", str(constitution),
                         "--principles", str(tmp_path / "principles"), "--out", str(tmp_path / "out"),
                         "--backend", "scripted", "--model", "scripted", "-O", "choices=[{A: 0.9, B: 0.1}]",
                         "--few-shot", "0")
    assert code == 0, err
    assert "position consistency 0.0% of 4 pairs" in out
    assert "warning: position consistency 0.0%" in err and "cai eval agreement" in err


def test_loop_report_gives_the_reward_model_accuracy_its_n(tmp_path):
    from cai.loop.page import _ENV

    html = _ENV.from_string("{{ x|rate(n) }}").render(x=1.0, n=1)
    assert "of 1 pairs" in html and "small sample" in html


# ---------------------------------------------------------------- 7. help at 80 columns


def _commands():
    """Every leaf command of the CLI as (path, click command)."""
    import typer

    from cai.cli import main as cli_main

    cli_main._register()
    root = typer.main.get_command(cli_main.app)

    def walk(cmd, path):
        if hasattr(cmd, "commands"):  # a group
            for name, sub in cmd.commands.items():
                yield from walk(sub, path + [name])
        else:
            yield path, cmd

    return list(walk(root, []))


def test_help_fits_80_columns_with_whole_option_names(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    commands = _commands()
    assert len(commands) > 20
    for path, cmd in commands:
        code, out, _ = cli(capsys, *path, "--help")
        assert code == 0, path
        assert max(len(line) for line in out.splitlines()) <= 80, (path, out)
        assert "<bool>" not in out and "…" not in out, path
        for param in cmd.params:
            for opt in param.opts + param.secondary_opts:
                if opt.startswith("--"):
                    assert opt in out, (path, opt)
    code, out, _ = cli(capsys, "generate", "--help")
    assert "(needs cai-constitution[ray])" in " ".join(out.split())


# ---------------------------------------------------------------- 1. the loop checks every input up front


@pytest.fixture
def loop_recipe(tmp_path):
    """The test loop's recipe (tests/test_loop.py) on a model folder that is never loaded, with the
    prompts in a spreadsheet whose prompt column is called ``question``."""
    from test_loop import recipe_data

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = recipe_data(tmp_path, model)
    (tmp_path / "prompts.csv").write_text("question\nHow do I boil an egg?\nWhat is a good password?\n",
                                          encoding="utf-8")
    data["prompts"] = str(tmp_path / "prompts.csv")
    return data


def _run(capsys, tmp_path, data, *args):
    import yaml

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    return cli(capsys, "run", str(recipe), *args)


def test_loop_dry_run_reads_the_prompt_columns_and_names_the_recipe_field(tmp_path, loop_recipe, capsys):
    for extra in (["--dry-run"], []):
        code, _, err = _run(capsys, tmp_path, loop_recipe, *extra)
        assert code == 2 and "prompts.csv:2" in err and "columns: question" in err, err
        assert "prompt_column (at the top level of the recipe)" in err and "--prompt-column" not in err
        assert not (tmp_path / "run").exists()
    loop_recipe["prompt_column"] = "question"
    code, out, err = _run(capsys, tmp_path, loop_recipe, "--dry-run")
    assert code == 0, err


@pytest.mark.parametrize("stage", ["generate", "sample", "ppo"])
def test_a_prompt_setting_in_a_stage_block_is_refused_up_front(tmp_path, loop_recipe, capsys, stage):
    loop_recipe[stage]["prompt_column"] = "question"
    code, _, err = _run(capsys, tmp_path, loop_recipe, "--dry-run")
    assert code == 2 and f"{stage}.prompt_column: set by cai run" in err and "top-level prompt_column" in err, err


def test_the_humans_block_takes_import_s_column_map(tmp_path, loop_recipe, capsys):
    loop_recipe["prompt_column"] = "question"
    sheet = tmp_path / "ratings.csv"
    sheet.write_text("q,left,right,winner,rater\n"
                     "How do I boil an egg?,Simmer it nine minutes.,Eggs.,left,ana\n"
                     "What is a good password?,Four random words.,password1,left,ben\n", encoding="utf-8")
    loop_recipe["humans"] = {"labels": str(sheet), "format": "csv", "prompt_column": "q", "chosen_column": "left",
                             "rejected_column": "right", "label_column": "winner",
                             "label_values": "left,right,same", "rater_column": "rater"}
    code, _, err = _run(capsys, tmp_path, loop_recipe, "--dry-run")
    assert code == 0, err
    loop_recipe["humans"]["label_values"] = "A,B,tie"
    code, _, err = _run(capsys, tmp_path, loop_recipe, "--dry-run")
    assert code == 2 and "humans: " in err and "ratings.csv:2" in err and "'left' is not a label" in err, err
    assert "humans.label_values" in err and "--label-values" not in err
    # the old spellings of the column fields still work, with a note
    del loop_recipe["humans"]["prompt_column"]
    loop_recipe["humans"].update(prompt_col="q", label_values="left,right,same")
    code, _, err = _run(capsys, tmp_path, loop_recipe, "--dry-run")
    assert code == 0 and "humans.prompt_col is now prompt_column" in err, err


# ---------------------------------------------------------------- 2. hints name options that exist


def _options() -> dict[tuple[str, ...], set[str]]:
    """Every command path and its long options (old spellings of cai.cli.renamed not included)."""
    out = {tuple(path): {o for p in cmd.params for o in p.opts + p.secondary_opts if o.startswith("--")} | {"--help"}
           for path, cmd in _commands()}
    out[()] = {"--version", "--help"}
    return out


def _hints():
    """Every ``--flag`` in a string of the package's code (docstrings and cai/testing's scripts
    aside), with the file, line and the string."""
    import ast
    import re

    root = Path(__file__).resolve().parents[1] / "cai"
    for path in sorted(root.rglob("*.py")):
        if path.parent.name == "testing":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for m in re.finditer(r"(?<![\w-])--([a-z][a-z0-9-]+)", node.value):
                    yield path.relative_to(root.parent), node.lineno, node.value, m


def test_every_hint_names_an_option_that_exists():
    """A rule for every module, present and future: a ``--flag`` written in a message must be an
    option of a ``cai`` command; when the same string names the command (``cai humans import ...
    --label-column``), an option of that command. The loop (``cai run``) rewords flags into recipe
    fields (cai.loop.inputs); an old spelling (cai.cli.renamed) does not count as existing."""
    import re

    options = _options()
    everywhere = set().union(*options.values())
    wrong = []
    for path, line, text, m in _hints():
        flag = "--" + m.group(1)
        if str(path).startswith("cai/cli/renamed.py"):
            continue
        before = text[:m.start()]
        if re.search(r"\b(pip install|vllm serve|accelerate launch|torchrun|python)\b[^;]*$", before.split("cai ")[-1]):
            continue  # another program's flag
        named = re.findall(r"cai ((?:[a-z]+)(?: [a-z]+)?)", before)
        if named:
            words = tuple(named[-1].split())
            command = words if words in options else words[:1]
            if command in options and flag not in options[command]:
                wrong.append(f"{path}:{line}: {flag} is not an option of cai {' '.join(command)}")
                continue
        if flag not in everywhere:
            wrong.append(f"{path}:{line}: {flag} is not an option of any cai command")
    # ... and valid wherever the concept is: a flag whose help text another command gives to an
    # option of another name (--principles in one, --dir in the next) is wrong in that one.
    by_help: dict[str, set[str]] = {}
    for path, cmd in _commands():
        for param in cmd.params:
            longs = [o for o in param.opts if o.startswith("--")]
            if param.param_type_name == "option" and longs and getattr(param, "help", None):
                by_help.setdefault(param.help.split(". ")[0].strip().rstrip(".").lower(), set()).add(longs[0])
    for path, line, text, m in _hints():
        flag = "--" + m.group(1)
        for names in by_help.values():
            if flag in names and len(names) > 1:
                wrong.append(f"{path}:{line}: {flag} is called {', '.join(sorted(names - {flag}))} elsewhere")
    assert not wrong, "\n".join(sorted(set(wrong)))


# ---------------------------------------------------------------- 3. one name per concept

# Names that mean the same thing; only the first of each line may be used, in CLI options (as
# kebab-case), config fields and recipe keys alike. Add a line when a new concept gets a name.
SYNONYMS = {
    "test_size": ("test_fraction", "test_split", "holdout", "held_out", "eval_fraction", "val_size"),
    "prompt_column": ("prompt_col", "prompt_field", "prompt_key", "question_column"),
    "chosen_column": ("chosen_col",),
    "rejected_column": ("rejected_col",),
    "label_column": ("label_col",),
    "rater_column": ("rater_col", "labeler_column"),
    "id_column": ("id_col",),
    "principles_dir": ("principles_folder", "principle_dir", "principles_path", "dir"),
}


# Options whose name differs from their field's, each with the reason (keep this short).
NAMED_OTHERWISE = {
    (("train", "grpo"), "--judge-mode"): "sets constitution.mode; --mode alone would not say whose",
    (("train", "rloo"), "--judge-mode"): "sets constitution.mode; --mode alone would not say whose",
}


class _Captured(Exception):
    def __init__(self, model, data):
        super().__init__("captured")
        self.model, self.data = model, data


def _leaves(data, path=()):
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, path + (str(key),))
    else:
        yield path, data


def _probe_value(param):
    """A value for one option that no default has, so the config field it lands in shows."""
    if getattr(param, "is_flag", False):
        return []
    kind = getattr(getattr(param, "type_descriptor", None), "annotation", None) or getattr(param, "type", None)
    choices = getattr(getattr(param, "type_descriptor", None), "choices", None)
    if choices:  # a Literal field's flag takes only its choices: the last is rarely the default
        return [str(choices[-1])]
    return {int: ["7771"], float: ["0.3137"]}.get(kind, ["zz-probe"])


def test_options_are_named_after_the_config_field_they_set(monkeypatch, capsys, tmp_path):
    """The rule, for every command present and future (new commands must pass it too): a
    single-valued option that sets a field of its command's config is spelled as that field in
    kebab-case (``--principles-dir`` sets ``principles_dir``); a nested field may drop its parents
    (``--temperature`` sets ``sampling.temperature``) or be prefixed by one (``--critic-model`` sets
    ``critic.model``, ``--cot-max-tokens`` sets ``cot.sampling.max_tokens``), and an option may
    name a block for its main field (``--cot`` switches ``cot.enabled``, ``--reward-model`` sets
    ``reward_model.path``). Exceptions go in NAMED_OTHERWISE with their reason. So two commands that set the same field spell it the same, and a
    config file, a recipe block and the flags use one name. Found by running each command up to
    its config validation with one option set and seeing which field changed; repeatable
    ``key=value`` options (``-O``, ``--weight``) are not single fields and are left out. The names in
    SYNONYMS' right-hand sides may appear in no option and no config field."""
    import importlib

    import cai.cli as cli_pkg

    def capture(model, data, source):
        raise _Captured(model, data)

    patched = set()
    for info in __import__("pkgutil").iter_modules(cli_pkg.__path__):
        module = importlib.import_module(f"cai.cli.{info.name}")
        if hasattr(module, "validate_config"):
            monkeypatch.setattr(module, "validate_config", capture)
            patched.add(module.__name__)
    monkeypatch.chdir(tmp_path)  # nothing below should write, but if it did: not into the repository
    from typer.main import get_command  # noqa: F401  (the commands below are click commands)

    def run(callback, kwargs):
        try:
            callback(**kwargs)
        except _Captured as got:
            return got
        except Exception:  # noqa: BLE001 - this option is checked before the config: not probed
            return None
        return None

    wrong, models, probed = [], set(), 0
    for path, cmd in _commands():
        if cmd.callback.__module__ not in patched:
            continue  # not built on a config (principles new, humans import, ...): never run here
        positional = ["zz-arg"] * sum(1 for a in cmd.params if a.param_type_name == "argument")
        try:
            base_ctx = cmd.make_context("cai", list(positional))
        except Exception:  # noqa: BLE001 - a command with required options: not built on a config
            continue
        base = run(cmd.callback, base_ctx.params)
        if base is None:
            continue
        models.add(base.model)
        before = dict(_leaves(base.data))
        for param in cmd.params:
            if param.param_type_name != "option" or param.multiple or param.name in ("config", "help"):
                continue
            name = param.opts[0]
            if not name.startswith("--"):
                name = next((o for o in param.opts if o.startswith("--")), name)
            ctx = cmd.make_context("cai", positional + [name] + _probe_value(param))
            got = run(cmd.callback, ctx.params)
            if got is None:
                continue
            models.add(got.model)
            probe = _probe_value(param)
            changed = [p for p, v in _leaves(got.data) if before.get(p, "<unset>") != v
                       and (not probe or str(v) == probe[0] or v == float(probe[0] if probe[0][0].isdigit() else 0)
                            or v == [probe[0]])]
            option = name.removeprefix("--").replace("-", "_")
            if (tuple(path), name) in NAMED_OTHERWISE:
                continue
            for p in changed:
                probed += 1
                ok = option in (p[-1], "_".join(p), p[0] + "_" + p[-1], "_".join(p[-2:]), "_".join(p[:-1]))
                if not ok:
                    wrong.append(f"cai {' '.join(path)} {name} sets {'.'.join(p)}: name it "
                                 f"--{p[-1].replace('_', '-')}")
    assert probed > 50, probed
    assert not wrong, "\n".join(sorted(set(wrong)))

    from cai.loop.recipe import HumansStage, Recipe

    banned = {old: new for new, olds in SYNONYMS.items() for old in olds}
    fields = set()

    def walk(model):
        from pydantic import BaseModel

        for fname, f in model.model_fields.items():
            fields.add((model.__name__, fname))
            for arg in [f.annotation, *getattr(f.annotation, "__args__", ())]:
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    walk(arg)

    for model in models | {Recipe, HumansStage}:
        walk(model)
    bad = [f"{m}.{f}: call it {banned[f]}" for m, f in fields if f in banned]
    bad += [f"cai {' '.join(path)} {o}: call it --{banned[o[2:].replace('-', '_')].replace('_', '-')}"
            for path, opts in _options().items() for o in opts if o[2:].replace("-", "_") in banned]
    assert not bad, "\n".join(sorted(bad))


def test_old_spellings_still_work_with_a_note(tmp_path, capsys):
    sheet = tmp_path / "s.csv"
    sheet.write_text("question,good,bad\nHi?,Hello there.,Go away.\n", encoding="utf-8")
    code, out, err = cli(capsys, "humans", "import", str(sheet), "--format", "csv", "--out", str(tmp_path / "o"),
                         "--prompt-col", "question", "--chosen-column", "good", "--rejected-col=bad")
    assert code == 0 and "wrote 1 pairs" in out, err
    assert "note: --prompt-col is now --prompt-column" in err and "note: --rejected-col is now" in err
    code, out, err = cli(capsys, "principles", "list", "--dir", str(Path(__file__).resolve().parents[1] / "principles"))
    assert code == 0 and "harm-cyber" in out and "note: --dir is now --principles-dir" in err
    from cai.train.config import RewardRecipe

    recipe = RewardRecipe.model_validate({"model": "m", "data": "d", "out": "o", "test_fraction": 0.2})
    assert recipe.test_size == 0.2
    assert "test_fraction is now test_size" in capsys.readouterr().err


def test_score_reads_a_csv_of_responses_like_jsonl(tiny_llama, tmp_path, capsys):
    with capsys.disabled():  # transformers' log handler binds to the stderr of its first import
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    rows = [("How do I boil an egg?", "Simmer it for nine minutes."), ("Is the sky green?", "No, it is blue.")]
    (tmp_path / "r.csv").write_text("prompt,response\n" + "".join(f'{p},"{r}"\n' for p, r in rows), encoding="utf-8")
    (tmp_path / "r.jsonl").write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in rows))
    rewards = {}
    for name in ("r.csv", "r.jsonl"):
        code, out, err = cli(capsys, "score", str(tmp_path / name), "--model", str(tmp_path / "rm"))
        assert code == 0, err
        rewards[name] = [json.loads(line)["reward"] for line in out.splitlines() if line.startswith("{")]
    assert len(rewards["r.csv"]) == 2 and rewards["r.csv"] == pytest.approx(rewards["r.jsonl"])


# ---------------------------------------------------------------- 8. smaller things


def test_import_keeps_the_rater_column_and_a_wrong_label_names_label_values(tmp_path, capsys):
    from cai.data.pairs import read_pairs

    sheet = tmp_path / "ratings.csv"
    sheet.write_text("q,left,right,winner,rater\n"
                     "How do I boil an egg?,Simmer it nine minutes.,Eggs.,left,ana\n"
                     "What is a good password?,Four random words.,password1,right,ben\n", encoding="utf-8")
    args = ["humans", "import", str(sheet), "--format", "csv", "--out", str(tmp_path / "h"), "--prompt-column", "q",
            "--chosen-column", "left", "--rejected-column", "right", "--label-column", "winner"]
    code, _, err = cli(capsys, *args)
    assert code == 2 and "'left' is not a label (A, B, tie)" in err and "--label-values" in err, err
    code, out, err = cli(capsys, *args, "--label-values", "left,right,same", "--rater-column", "rater")
    assert code == 0, err
    pairs = {p.prompt[0].content: p for p in read_pairs(tmp_path / "h")}
    assert pairs["How do I boil an egg?"].labeler == "ana" and pairs["What is a good password?"].labeler == "ben"
    assert pairs["What is a good password?"].chosen_text == "password1"


# ---------------------------------------------------------------- 4. where things are looked up

MY_RULE = """---
id: no-spoilers
version: 1.0.0
title: No spoilers
tags: [fiction]
---
## Critique
Does the response give away the ending of a story?

## Revision
Rewrite the response so that it keeps the ending secret.

## Preference
Which response keeps the ending secret?
"""


def _project(root: Path) -> Path:
    """A project of one's own: one principle, a constitution that also selects a shipped one by id."""
    (root / "principles").mkdir(parents=True)
    (root / "principles" / "no-spoilers.md").write_text(MY_RULE, encoding="utf-8")
    (root / "constitution").mkdir()
    (root / "constitution" / "mine.yaml").write_text(
        "name: mine\nversion: 1.0.0\nprinciples:\n  ids: [no-spoilers, harm-high-stakes-advice]\n", encoding="utf-8")
    return root


def test_a_constitution_selects_shipped_principles_by_id_and_list_shows_them(tmp_path, capsys, monkeypatch):
    _project(tmp_path / "proj")
    monkeypatch.chdir(tmp_path / "proj")
    code, out, err = cli(capsys, "principles", "list", "--constitution", "mine")
    assert code == 0, err
    assert "no-spoilers@1.0.0" in out and "harm-high-stakes-advice@" in out and "harm-cyber" not in out
    code, out, err = cli(capsys, "principles", "lint", "--strict", "principles", "constitution")
    assert code == 0, out + err
    # the shipped constitutions are found by name from anywhere
    code, out, err = cli(capsys, "principles", "list", "--constitution", "default")
    assert code == 0 and "harm-cyber" in out, err


def test_not_found_says_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "principles", "list", "--constitution", "nope")
    assert code == 2 and str(tmp_path / "constitution" / "nope.yaml") in err and "looked at" in err
    code, _, err = cli(capsys, "principles", "list", "--principles-dir", "missing")
    assert code == 2 and str(tmp_path / "missing") in err and "--principles-dir" in err


def test_principles_from_several_folders(tmp_path):
    import os

    from cai.principles.library import load_principles_dir

    _project(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "other-rule.md").write_text(MY_RULE.replace("no-spoilers", "other-rule"), encoding="utf-8")
    both = load_principles_dir(f"{tmp_path / 'a' / 'principles'}{os.pathsep}{tmp_path / 'b'}")
    assert set(both) == {"no-spoilers", "other-rule"}


def test_a_recipe_reads_its_files_relative_to_its_own_folder(tmp_path, capsys, monkeypatch):
    import yaml

    proj = _project(tmp_path / "proj")
    (proj / "prompts.csv").write_text("question\nHow does the film end?\nWhat is a good password?\n", encoding="utf-8")
    recipe = proj / "loop.yaml"
    recipe.write_text(yaml.safe_dump({
        "out": str(tmp_path / "run"), "constitution": "mine", "prompts": "prompts.csv", "prompt_column": "question",
        "principles_dir": "principles", "models": {"policy": "smollm2-135m-instruct"}}), encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # somewhere else
    code, out, err = cli(capsys, "run", str(recipe), "--dry-run")
    assert code == 0, err
    recipe.write_text(recipe.read_text().replace("prompts.csv", "nope.csv"))
    code, _, err = cli(capsys, "run", str(recipe), "--dry-run")
    assert code == 2 and str(proj / "nope.csv") in err, err


def test_the_loop_log_gives_rates_their_n_and_flags_position_bias():
    from cai.loop.console import brief

    line = brief("reward", {"steps": 3, "final_loss": 0.5, "eval": {"all": {"accuracy": 1.0, "n": 1}}})
    assert "held-out accuracy 100.0% of 1 pairs (95% CI" in line and "small sample" in line
    line = brief("label", {"pairs": 8, "position_consistency": 0.0, "position_checked": 8})
    assert "position consistency 0.0% of 8" in line and "warning: position consistency" in line
    assert "label.cot" in line and "--cot" not in line
    line = brief("humans", {"import": {"written": 4}, "agreement": {"accuracy": 0.5, "n": 4}})
    assert "agrees on 50.0% of 4 pairs (95% CI" in line


def test_the_reward_evaluation_table_shows_intervals(capsys):
    from rich.console import Console

    from cai.cli.train_output import print_reward_eval

    m = {"n": 1, "accuracy": 1.0, "ece": 0.1, "ece_soft": 0.1,
         "margin": {k: 0.5 for k in ("mean", "p05", "p50", "p95")}}
    print_reward_eval({"by_source": {"human": m}, "all": m}, Console(width=200))
    out = capsys.readouterr().out
    assert "95% CI" in out and "1.00 [0.21, 1.00]" in out and "small sample" in out


def test_imported_rows_store_provenance_as_an_object(tmp_path, capsys):
    from cai.data.pairs import read_pairs

    sheet = tmp_path / "s.csv"
    sheet.write_text("prompt,chosen,rejected\nHi?,Hello there.,Go away.\n", encoding="utf-8")
    code, _, err = cli(capsys, "humans", "import", str(sheet), "--format", "csv", "--out", str(tmp_path / "o"))
    assert code == 0, err
    row = json.loads((tmp_path / "o" / "data.jsonl").read_text().splitlines()[0])
    assert isinstance(row["provenance"], dict) and row["provenance"]["format"] == "csv"
    [pair] = read_pairs(tmp_path / "o")  # read back: the same JSON text as before on the Python side
    assert json.loads(pair.provenance)["format"] == "csv"
    from datasets import load_from_disk

    assert json.loads(load_from_disk(str(tmp_path / "o" / "hf"))[0]["provenance"])["format"] == "csv"


def test_an_old_spelling_that_is_a_real_option_of_the_command_is_left_alone():
    from cai.cli.renamed import rewrite

    notes = []
    assert rewrite(["label", "--principles", "d"], echo=notes.append) == ["label", "--principles-dir", "d"]
    assert notes == ["note: --principles is now --principles-dir (the old spelling still works)"]
    assert rewrite(["x", "--principles", "3"], known={"--principles"}) == ["x", "--principles", "3"]
    assert rewrite(["humans", "import", "--", "--prompt-col"]) == ["humans", "import", "--", "--prompt-col"]


@pytest.mark.parametrize("change, phrase", [
    ({"format": "trl"}, "humans: prompt_column is read from a CSV labels file only"),
    ({"min_gold_accuracy": 0.8}, "humans: min_gold_accuracy applies to the labeling page's db"),
    ({"db": "page.db"}, "humans: give labels (a file to import) or db"),
])
def test_a_humans_field_that_would_be_ignored_is_refused(tmp_path, loop_recipe, capsys, change, phrase):
    loop_recipe["prompt_column"] = "question"
    sheet = tmp_path / "ratings.csv"
    sheet.write_text("q,chosen,rejected\nHi?,Hello.,Go away.\n", encoding="utf-8")
    loop_recipe["humans"] = {"labels": str(sheet), "format": "csv", "prompt_column": "q", **change}
    code, _, err = _run(capsys, tmp_path, loop_recipe, "--dry-run")
    assert code == 2 and phrase in err, err


@pytest.mark.parametrize("args", [
    ["humans", "import", "nope.csv", "--format", "csv", "--out", "o"],
    ["score", "nope.jsonl", "--model", "rm"],
    ["mix", "--input", "human=nope", "--out", "o"],
    ["train", "reward", "--data", "nope", "--model", "m", "--out", "o"],
])
def test_a_missing_relative_path_error_says_where_it_looked(tmp_path, capsys, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, *args)
    assert code == 2 and f"(looked at {tmp_path}/" in err, err
