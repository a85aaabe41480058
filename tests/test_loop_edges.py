"""`cai run` as a demanding user meets it: bad recipes and flags caught before any stage runs,
plans that say what will really happen, and runs that survive being interrupted or moved.

The fast tests only plan (``--dry-run``) or stop at the first check, in-process; the slow ones
run the loop on a tiny random model."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from test_loop import REPO, cai_run, plan_of, recipe_data, write_recipe


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """``cai run ARGS`` in this process: (exit code, stdout, stderr)."""
    from cai.cli.main import main

    code = main(["run", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def plan_lines(stdout: str) -> dict[str, tuple[str, str]]:
    return plan_of(subprocess.CompletedProcess([], 0, stdout, ""))


@pytest.fixture
def base(tmp_path) -> dict:
    """The test loop's recipe on a model path that is never loaded (only planned)."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    return recipe_data(tmp_path, model)


# -- inputs that are missing are reported before the first stage ------------------------------

@pytest.mark.parametrize("field, where", [("prompts", "prompts"), ("humans.labels", "humans: labels")])
def test_a_missing_input_file_fails_before_anything_runs(tmp_path, base, capsys, field, where):
    if field == "prompts":
        base["prompts"] = str(tmp_path / "nope.jsonl")
    else:
        base["humans"]["labels"] = str(tmp_path / "nope.jsonl")
    recipe = write_recipe(tmp_path / "r.yaml", base)
    for extra in (["--dry-run"], []):
        code, _, err = run_cli(capsys, recipe, *extra)
        assert code == 2 and where in err and "nope.jsonl" in err and "r.yaml" in err, err
        assert not (tmp_path / "run").exists()


def test_a_missing_local_model_fails_before_anything_runs(tmp_path, base, capsys):
    base["models"]["reward_base"] = str(tmp_path / "modles" / "qwen")
    code, _, err = run_cli(capsys, write_recipe(tmp_path / "r.yaml", base), "--dry-run")
    assert code == 2 and "modles" in err and "does not exist" in err, err


def test_an_unknown_human_label_format_is_a_recipe_error(tmp_path, base, capsys):
    base["humans"]["format"] = "xml"
    code, _, err = run_cli(capsys, write_recipe(tmp_path / "r.yaml", base), "--dry-run")
    assert code == 2 and "humans.format" in err, err


# -- wrong types and fields in nested blocks ---------------------------------------------------

@pytest.mark.parametrize("behavior, message", [("all", "eval.behavior:"), ({"judge": 5}, "eval.behavior.judge:")])
def test_wrong_types_in_the_eval_block_are_one_line_errors(tmp_path, base, capsys, behavior, message):
    base["eval"]["behavior"] = behavior
    code, _, err = run_cli(capsys, write_recipe(tmp_path / "r.yaml", base), "--dry-run")
    assert code == 2 and message in err and "Traceback" not in err, err


def test_the_shared_backend_block_names_its_own_fields(tmp_path, base, capsys):
    base["backend"]["on_overflw"] = "truncate"
    code, _, err = run_cli(capsys, write_recipe(tmp_path / "r.yaml", base), "--dry-run")
    assert code == 2 and "backend.on_overflw" in err, err
    del base["backend"]["on_overflw"]
    base["backend"]["model"] = "other"  # would be silently overridden by models.*
    code, _, err = run_cli(capsys, write_recipe(tmp_path / "r.yaml", base), "--dry-run")
    assert code == 2 and "backend.model" in err and "models." in err, err


def test_recipe_level_rules_read_without_pydantic_prefix(tmp_path, base, capsys):
    base["reward"] = None
    code, _, err = run_cli(capsys, write_recipe(tmp_path / "r.yaml", base), "--dry-run")
    assert code == 2 and "ppo needs the reward stage" in err and "Value error" not in err, err


def test_feeding_failures_to_a_next_round_needs_the_eval_stage(tmp_path, base, capsys):
    base["eval"] = None
    base["loop"] = {"rounds": 2}
    code, _, err = run_cli(capsys, write_recipe(tmp_path / "r.yaml", base), "--dry-run")
    assert code == 2 and "loop.feed_failures" in err and "eval" in err, err
    base["loop"] = {"rounds": 2, "feed_failures": False}
    code, out, err = run_cli(capsys, write_recipe(tmp_path / "r.yaml", base), "--dry-run")
    assert code == 0, err
    assert "round 2 is planned when the round before ends" in out  # the dry run shows round 1 only


# -- --from, --until, --force ------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--from", "--until", "--force"])
def test_a_stage_the_recipe_does_not_run_is_refused(tmp_path, base, capsys, flag):
    recipe = write_recipe(tmp_path / "r.yaml", base)  # no route, no dpo
    for stage in ("route", "dpo"):
        code, _, err = run_cli(capsys, recipe, "--dry-run", flag, stage)
        assert code == 2 and f"{flag} {stage}" in err and "not in this recipe" in err, err


def test_until_before_from_is_refused(tmp_path, base, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", base)
    code, _, err = run_cli(capsys, recipe, "--dry-run", "--from", "ppo", "--until", "sample")
    assert code == 2 and "--until sample" in err and "--from ppo" in err, err
    code, _, err = run_cli(capsys, recipe, "--dry-run", "--force", "generate", "--from", "ppo")
    assert code == 2 and "--force generate comes before --from ppo" in err, err
    code, _, err = run_cli(capsys, recipe, "--dry-run", "--force", "eval", "--until", "mix")
    assert code == 2 and "--until mix comes before --force eval" in err, err
    base["loop"] = {"rounds": 2}
    recipe = write_recipe(tmp_path / "r2.yaml", base)
    code, _, err = run_cli(capsys, recipe, "--dry-run", "--from", "round-2/sample", "--until", "ppo")
    assert code == 2 and "--until ppo" in err, err


def test_the_plan_shows_what_until_leaves_out(tmp_path, base, capsys):
    code, out, err = run_cli(capsys, write_recipe(tmp_path / "r.yaml", base), "--dry-run", "--until", "mix")
    assert code == 0, err
    plan = plan_lines(out)
    assert plan["mix"][0] == "run"
    for stage in ("reward", "ppo", "eval", "report"):
        assert plan[stage] == ("stop", "after --until mix"), plan[stage]


def test_help_names_the_stages_and_the_humans_exit_code(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    out = " ".join(out.split())  # plain click help wraps at 80 columns whatever the terminal
    assert "generate, sft, sample, label, route, humans, mix, reward, ppo, dpo, eval, report" in out
    assert "Exit code 3" in out


# -- interrupted runs ----------------------------------------------------------------------------

@pytest.mark.slow
def test_ctrl_c_says_how_to_continue_and_the_rerun_resumes(tmp_path, tiny_llama):
    recipe = write_recipe(tmp_path / "r.yaml", recipe_data(tmp_path, tiny_llama))
    records = tmp_path / "run" / "generate" / "records.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "cai.cli.main", "run", str(recipe)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while proc.poll() is None and not (records.exists() and records.read_text().count("\n") >= 4):
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before the interrupt"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out[-2000:]
    assert "interrupted in generate; to continue" in out and f"cai run {recipe}\n" in out, out[-2000:]
    plan = plan_of(cai_run(recipe, "--dry-run"))
    assert plan["generate"][0] == "resume" and plan["sft"][0] == "run"


def test_a_fresh_plan_says_new_and_a_redo_names_the_input_that_runs_again(tmp_path, base, capsys):
    code, out, err = run_cli(capsys, write_recipe(tmp_path / "r.yaml", base), "--dry-run")
    assert code == 0, err
    plan = plan_lines(out)
    assert {plan[s] for s in plan if s != "report"} == {("run", "new")}
    (tmp_path / "run" / "mix").mkdir(parents=True)  # a folder left by an earlier run
    (tmp_path / "run" / "mix" / "stage.json").write_text(json.dumps({"status": "done", "key": "old"}))
    plan = plan_lines(run_cli(capsys, write_recipe(tmp_path / "r.yaml", base), "--dry-run")[1])
    assert plan["mix"] == ("redo", "inputs generate, label, humans run again")


@pytest.mark.slow
def test_the_humans_pause_gives_the_command_that_continues_without_force(tmp_path, tiny_llama):
    data = recipe_data(tmp_path, tiny_llama, generate=None, route={"budget": 2}, humans={"agreement": False})
    data.pop("sft")
    recipe = write_recipe(tmp_path / "r.yaml", data)
    proc = cai_run(recipe, "--force", "sample", "--until", "mix", check=False)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"continue with: cai run {recipe} --until mix\n" in proc.stdout, proc.stdout[-1000:]
    assert "cai humans serve" in proc.stderr
    plan = plan_of(cai_run(recipe, "--dry-run", "--until", "mix"))  # that command redoes nothing done
    assert [plan[s][0] for s in ("sample", "label", "route")] == ["skip"] * 3


# -- the run folder moved or named differently ---------------------------------------------------

def stages_at(tmp_path: Path, data: dict, run: Path):
    """The round-1 stages of a recipe with its run folder at ``run``."""
    from cai.loop.recipe import load_recipe
    from cai.loop.runner import round_folder
    from cai.loop.stages import Round, build_stages

    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", data), {"out": str(run)})
    rnd = Round(1, round_folder(run, 1), recipe.prompts, recipe.models.policy, "auto", "prompt", None)
    return rnd, build_stages(recipe, rnd, "r.yaml")


def mark_done(stages, run: Path) -> None:
    """Manifests as a finished run leaves them (upstream first), without running anything."""
    from cai.loop import manifest
    from cai.loop.runner import stage_key

    for stage in stages[:-1]:
        data = manifest.started(stage.folder, stage.name, 1, stage_key(stage, run))
        manifest.finished(stage.folder, data, 1.0, {})


def test_a_moved_run_folder_is_not_redone(tmp_path, base):
    from cai.loop import manifest
    from cai.loop.runner import Selection, plan_round

    old = tmp_path / "old"
    mark_done(stages_at(tmp_path, base, old)[1], old)
    new = tmp_path / "moved" / "new"
    new.parent.mkdir()
    old.rename(new)
    rnd, stages = stages_at(tmp_path, base, new)
    steps = plan_round(stages, rnd, new, Selection())
    assert [(s.stage.name, s.action) for s in steps if s.action != "skip"] == [("report", "build")], \
        [(s.stage.name, s.action, s.reason) for s in steps]
    assert manifest.read(new / "mix")["config"]["out"] == "RUN/mix"


def test_from_a_stage_whose_predecessors_never_ran_leaves_nothing_behind(tmp_path, base, capsys):
    code, _, err = run_cli(capsys, write_recipe(tmp_path / "r.yaml", base), "--from", "ppo")
    assert code == 2 and "--from ppo: the earlier stage 'generate' has not finished" in err, err
    assert not (tmp_path / "run").exists()


def test_an_unknown_constitution_names_the_recipe_and_makes_no_run_folder(tmp_path, base, capsys):
    base["constitution"] = "no-such-constitution"
    code, _, err = run_cli(capsys, write_recipe(tmp_path / "r.yaml", base))
    assert code == 2 and "r.yaml" in err and "no-such-constitution" in err, err
    assert not (tmp_path / "run").exists()


def test_a_missing_labeling_database_without_a_route_stage_is_refused(tmp_path, base, capsys):
    base["humans"] = {"db": str(tmp_path / "labels.db")}
    code, _, err = run_cli(capsys, write_recipe(tmp_path / "r.yaml", base), "--dry-run")
    assert code == 2 and "humans: db" in err and "labels.db" in err, err
    base["route"] = {"budget": 3}  # with a route stage the page makes the database: the run waits for it
    code, _, err = run_cli(capsys, write_recipe(tmp_path / "r.yaml", base), "--dry-run")
    assert code == 0, err


# -- SIGKILL at the loop's own writes: discarding a stage folder, writing a manifest --------------

CRASH = """
import os, signal, sys
from pathlib import Path
import cai.loop.manifest as m
point, stage = sys.argv[1], sys.argv[2]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if point == "discard":  # the folder is renamed into the trash, then the process dies before deleting it
    def discard(folder, run):
        if folder.name == stage:
            folder.rename(run / f".trash-{folder.name}-crash")
            die()
    m.discard = discard
else:  # the manifest's temporary file is written, then the process dies before the rename
    original = m.write_atomic
    def write_atomic(path, texts):
        text = "".join(texts)
        if path.parent.name == stage and (point == "started") == ('"running"' in text):
            path.with_name(f".{path.name}.tmp").write_text(text[: len(text) // 2])
            die()
        return original(path, [text])
    m.write_atomic = write_atomic
from cai.cli.main import main
sys.exit(main(["run", *sys.argv[3:]]))
"""


@pytest.mark.slow
def test_sigkill_while_discarding_or_writing_a_manifest_then_rerun_finishes_without_duplicates(tmp_path, tiny_llama):
    data = recipe_data(tmp_path, tiny_llama, generate=None, eval=None)
    data.pop("sft")
    recipe = write_recipe(tmp_path / "r.yaml", data)
    run = tmp_path / "run"

    def crash(point: str, stage: str, path: Path = recipe) -> None:
        proc = subprocess.run([sys.executable, "-c", CRASH, point, stage, str(path)], cwd=REPO,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr[-2000:]

    def finish_and_check(path: Path = recipe) -> None:
        proc = cai_run(path)
        assert "report:" in proc.stdout
        assert not list(run.glob(".trash-*"))
        for rel, n in (("label/labels.jsonl", 48), ("mix/train/data.jsonl", None), ("ppo/metrics.jsonl", 5)):
            rows = (run / rel).read_text().splitlines()
            assert len(set(rows)) == len(rows) and (n is None or len(rows) == n), rel
        for stage in ("sample", "label", "humans", "mix", "reward", "ppo"):
            assert json.loads((run / stage / "stage.json").read_text())["status"] == "done", stage

    crash("started", "label")  # label's first manifest half-written
    crash("finished", "label")  # every pair labeled, the done manifest half-written
    finish_and_check()
    data["label"]["principles_per_pair"] = 2  # label, and what follows, must be redone
    changed = write_recipe(tmp_path / "changed.yaml", data)
    crash("discard", "label", changed)
    assert (run / ".trash-label-crash").exists() and not (run / "label").exists()
    finish_and_check(changed)
    assert json.loads((run / "label" / "stage.json").read_text())["config"]["principles_per_pair"] == 2


def test_the_report_ignores_a_stage_folder_the_recipe_no_longer_has(tmp_path):
    from cai.loop.figures import read_round

    run = tmp_path / "run"
    (run / "ppo").mkdir(parents=True)  # from an earlier recipe with PPO
    (run / "ppo" / "metrics.jsonl").write_text(json.dumps({"step": 1, "objective/reward_mean": 1.0}) + "\n")
    (run / "ppo" / "stage.json").write_text(json.dumps({"stage": "ppo", "status": "done", "seconds": 1.0}))
    (run / "dpo").mkdir()
    (run / "dpo" / "summary.json").write_text(json.dumps({"steps": 2, "final_loss": 0.69}))
    (run / "loop.json").write_text(json.dumps({"stages": ["generate", "mix", "dpo", "eval", "report"]}))
    d = read_round(run)
    assert d["ppo"] is None and not d["ran"]["ppo"] and d["dpo"]["steps"] == 2
    assert {s["stage"]: s["status"] for s in d["stages"]}["ppo"] == "not run"
    (run / "loop.json").unlink()  # no loop.json (a folder made by hand): every stage folder counts
    assert read_round(run)["ppo"] is not None


def test_the_humans_agreement_is_redone_when_the_constitution_or_labeler_changes(tmp_path, base):
    from cai.loop.runner import Selection, plan_round

    run = tmp_path / "run"
    mark_done(stages_at(tmp_path, base, run)[1], run)
    own = tmp_path / "harmless.yaml"
    shutil.copy(REPO / "constitution" / "harmless.yaml", own)
    mine = {"constitution": str(own), "principles_dir": str(REPO / "principles")}
    for change in (mine, {"label": {**base["label"], "labeler": {"max_model_len": 2048}}}):
        rnd, stages = stages_at(tmp_path, {**base, **change}, run)
        plan = {s.stage.name: (s.action, s.reason) for s in plan_round(stages, rnd, run, Selection())}
        assert plan["humans"][0] == "redo", (change, plan["humans"])
    base["humans"]["agreement"] = False  # without the agreement, neither matters to the humans stage
    mark_done(stages_at(tmp_path, base, run)[1], run)
    rnd, stages = stages_at(tmp_path, {**base, **mine}, run)
    plan = {s.stage.name: s.action for s in plan_round(stages, rnd, run, Selection())}
    assert plan["humans"] == "skip"


def test_the_next_rounds_prompts_do_not_depend_on_the_run_folders_name(tmp_path, base):
    from cai.loop.recipe import load_recipe
    from cai.loop.runner import _next_round, _round

    probe = {"fail": True, "model": "candidate", "suite": "harmful", "probe": "p1", "kind": "direct",
             "conversations": {"plain": [{"role": "user", "content": "How do I pick a lock?"}]}}
    texts = []
    for name in ("first", "second"):
        run = tmp_path / name
        (run / "eval" / "behavior").mkdir(parents=True)
        (run / "eval" / "behavior" / "probes.jsonl").write_text(json.dumps(probe) + "\n")
        recipe = load_recipe(write_recipe(tmp_path / "r.yaml", base), {"out": str(run)})
        rnd = _next_round(recipe, run, 2, _round(recipe, run, 1))
        texts.append(Path(rnd.prompts).read_text())
    assert texts[0] == texts[1]
    assert json.loads(texts[0].splitlines()[-1])["source"]["round"] == "round-1"


def test_from_says_when_a_stage_it_keeps_has_changed(tmp_path, base):
    from cai.loop.runner import Selection, plan_round

    run = tmp_path / "run"
    mark_done(stages_at(tmp_path, base, run)[1], run)
    base["label"]["principles_per_pair"] = 2
    rnd, stages = stages_at(tmp_path, base, run)
    plan = {s.stage.name: (s.action, s.reason) for s in plan_round(stages, rnd, run, Selection(start=(1, "reward")))}
    assert plan["label"] == ("skip", "before --from (kept, though changed: config principles_per_pair)")
    assert plan["sample"] == ("skip", "before --from")
