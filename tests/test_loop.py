"""`cai run`: the whole loop from one recipe on a tiny random model (real transformers, TRL,
datasets): a straight run, a rerun that skips everything, config changes that redo a stage and
what follows, bad recipes, the humans pause, rounds, and SIGKILL inside three stages."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

TOPICS = ["fix a flat bike tyre", "bake bread without yeast", "apologise to a friend", "learn to swim as an adult",
          "pick a first programming language", "keep basil alive", "write a cover letter", "save on heating",
          "start running safely", "explain fractions to a child", "clean a cast iron pan", "plan a cheap trip"]


def write_prompts(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"How do I {TOPICS[i % len(TOPICS)]}? (case {i})"}) + "\n"
                            for i in range(n)))
    return path


def write_humans(path: Path) -> Path:
    rows = [("How do I boil an egg?", "Simmer it for nine minutes, then cool it in cold water.", "Eggs are food."),
            ("What is the capital of France?", "Paris.", "Maybe Lyon, I am not sure."),
            ("How can I sleep better?", "Keep a regular bedtime and no screens for an hour before.", "Sleep less."),
            ("How do I pick a strong password?", "Use four or more random words and a password manager.", "password1")]
    path.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n" for p, c, r in rows))
    return path


def recipe_data(tmp: Path, model: Path, **changes) -> dict:
    """A small loop: fixed chunks (no time-bounded ones), so an interrupted stage resumes on the same
    batches as a straight run and gives the same rows."""
    data = {
        "out": str(tmp / "run"),
        "prompts": str(write_prompts(tmp / "prompts.jsonl", 16)),
        "models": {"policy": str(model)},
        "backend": {"backend": "transformers", "on_overflow": "truncate"},
        "seed": 3,
        "generate": {"rounds": 1, "chunk_size": 4, "flush_seconds": None,
                     "sampling": {"temperature": 0.8, "max_tokens": 12, "stop": ["e"]}},
        "sft": {"max_steps": 2, "batch_size": 2, "max_length": 256},
        "sample": {"n": 3, "chunk_size": 4, "flush_seconds": None, "sampling": {"temperature": 1.0, "max_tokens": 10}},
        "label": {"few_shot": 0, "chunk_size": 4, "flush_seconds": None, "principles_per_pair": 1},
        "humans": {"labels": str(write_humans(tmp / "humans.jsonl"))},
        "mix": {"test_size": 0.25},
        "reward": {"max_steps": 3, "batch_size": 2, "max_length": 256},
        "ppo": {"max_steps": 5, "batch_size": 2, "mini_batch_size": 2, "max_new_tokens": 6, "ppo_epochs": 1,
                "save_every": 1},
        "eval": {"behavior": {"limit": 1, "suites": ["harmful", "over-refusal"], "sampling": {"max_tokens": 8},
                              "n_boot": 200},
                 "reward_model": {"suites": ["harmful"], "n_boot": 200}},
    }
    for key, value in changes.items():
        data[key] = value
    return data


def write_recipe(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cai_run(*args, timeout=900, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "cai.cli.main", "run", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def plan_of(proc: subprocess.CompletedProcess) -> dict[str, tuple[str, str]]:
    """``{stage: (action, reason)}`` from the plan a run prints first."""
    plan = {}
    for line in proc.stdout.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[0].rstrip(".").isdigit():
            plan[parts[1]] = (parts[2], parts[3] if len(parts) > 3 else "")
    return plan


@pytest.fixture(scope="module")
def straight(tmp_path_factory, tiny_llama):
    """One uninterrupted loop; returns (recipe path, run folder)."""
    tmp = tmp_path_factory.mktemp("loop")
    recipe = write_recipe(tmp / "recipe.yaml", recipe_data(tmp, tiny_llama))
    proc = cai_run(recipe)
    assert "report:" in proc.stdout
    # off a terminal: plain lines, the plan, each stage's header and result, PPO step by step
    log = proc.stdout + proc.stderr
    assert "\r" not in log and "round 1 · stage 1/10: generate (run: new)" in log
    assert "ppo: steps 5/5 (100%) (step 5) reward" in log and "✓ ppo" in log
    return recipe, tmp / "run"


# -- what a finished run holds ------------------------------------------------------------------

@pytest.mark.slow
def test_straight_run_writes_every_stage_then_a_rerun_skips_all(straight):
    recipe, run = straight
    for stage in ("generate", "sft", "sample", "label", "humans", "mix", "reward", "ppo", "eval"):
        m = json.loads((run / stage / "stage.json").read_text())
        assert m["status"] == "done" and m["output_id"] and m["seconds"] >= 0, stage
    assert (run / "ppo" / "policy" / "config.json").exists()
    assert (run / "eval" / "behavior" / "summary.json").exists()
    assert (run / "eval" / "reward-model" / "summary.json").exists()
    assert (run / "report.html").exists()
    sample = json.loads((run / "sample" / "stage.json").read_text())
    assert sample["inputs"]["stage:sft"] == json.loads((run / "sft" / "stage.json").read_text())["output_id"]
    mix = json.loads((run / "mix" / "mix.json").read_text())
    assert set(mix["sources"]) == {"ai-revision", "ai-feedback", "human"}
    before = {s: (run / s / "stage.json").read_text() for s in ("generate", "ppo", "eval")}
    again = cai_run(recipe)
    assert all(action == "skip" for stage, (action, _) in plan_of(again).items() if stage != "report")
    assert "1 stage(s) run, 9 skipped" in again.stdout and "(report " in again.stdout  # only the page is rebuilt
    assert before == {s: (run / s / "stage.json").read_text() for s in before}


@pytest.mark.slow
def test_changed_config_redoes_that_stage_and_everything_after_it(straight, tmp_path):
    recipe, _run = straight
    data = yaml.safe_load(recipe.read_text())
    data["label"]["principles_per_pair"] = 2
    changed = write_recipe(tmp_path / "changed.yaml", data)
    plan = plan_of(cai_run(changed, "--dry-run"))
    assert [plan[s][0] for s in ("generate", "sft", "sample")] == ["skip"] * 3
    assert plan["label"] == ("redo", "changed: config principles_per_pair")
    # the human pairs' agreement check labels the way the label stage does, so it is redone too
    assert plan["humans"] == ("redo", "changed: config agreement.principles_per_pair")
    assert plan["mix"][0] == "redo" and "label" in plan["mix"][1]
    assert [plan[s][0] for s in ("reward", "ppo", "eval")] == ["redo"] * 3
    # a changed prompts file reaches generate, sample and ppo, and what follows them
    data = yaml.safe_load(recipe.read_text())
    prompts = Path(data["prompts"])
    edited = tmp_path / "prompts.jsonl"
    edited.write_text(prompts.read_text() + json.dumps({"prompt": "One more question?"}) + "\n")
    data["prompts"] = str(edited)
    plan = plan_of(cai_run(write_recipe(tmp_path / "prompts.yaml", data), "--dry-run"))
    assert plan["generate"][0] == "redo" and "config prompts" in plan["generate"][1]
    assert plan["humans"][0] == "skip"
    # --force and --from
    plan = plan_of(cai_run(recipe, "--dry-run", "--force", "reward"))
    assert plan["mix"][0] == "skip" and plan["reward"] == ("redo", "--force")
    assert plan["ppo"] == ("redo", "after forced reward")
    plan = plan_of(cai_run(recipe, "--dry-run", "--from", "ppo"))
    assert plan["reward"] == ("skip", "before --from") and plan["ppo"][0] == "skip"


def test_bad_recipes_fail_before_any_model_time_with_one_line(tmp_path, tiny_llama):
    base = recipe_data(tmp_path, tiny_llama)
    cases = [
        ({"generate": {"sampling": {"temprature": 0.5}}}, "generate.sampling.temprature: unknown field (did you mean 'temperature'?)"),
        ({"sample": {"out": "elsewhere"}}, "sample.out: set by cai run"),
        ({"reward": {"max_steps": "many"}}, "reward.max_steps:"),
        ({"dpo": {"beta": 0.1}}, "give a ppo block or a dpo block, not both"),
        ({"eval": {"behavior": {"limit": 0}}}, "eval.behavior.limit:"),
        ({"stages": []}, "stages: unknown field"),
        ({"humans": {}}, "humans: give labels"),
    ]
    for change, message in cases:
        data = {**base, **change}
        path = write_recipe(tmp_path / "bad.yaml", data)
        proc = cai_run(path, "--dry-run", check=False)
        assert proc.returncode == 2, (change, proc.stdout, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr, (change, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "bad.yaml" in proc.stderr
        assert not (tmp_path / "run").exists()
    proc = cai_run(write_recipe(tmp_path / "ok.yaml", base), "--force", "rewards", check=False)
    assert proc.returncode == 2 and "unknown stage 'rewards'" in proc.stderr


# -- interrupted anywhere, the rerun gives the straight run's rows ------------------------------

def _rows(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


VOLATILE_KEYS = {"created_at", "seconds", "time/step_s", "train_seconds", "imported_at", "started_at", "finished_at",
                 "train_runtime", "train_samples_per_second", "train_steps_per_second", "runtime",
                 "samples_per_second", "steps_per_second", "resumed_from", "generation"}


def _same(a, b, where="") -> None:
    """Equal up to float noise (1e-4 relative), timings, and the run folder's own path."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = {k for k in (set(a) | set(b)) - VOLATILE_KEYS if not k.startswith("time/")}
        for k in sorted(keys):
            _same(a.get(k), b.get(k), f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6), where
    elif isinstance(a, str) and isinstance(b, str) and a.startswith("{") and b.startswith("{"):
        _same(json.loads(a), json.loads(b), where)  # provenance stored as a JSON string
    elif isinstance(a, str) and isinstance(b, str):
        assert a.replace("/straight/", "/R/") == b.replace("/killed/", "/R/"), where
    else:
        assert a == b, where


def _kill_when(cmd: list[str], ready, stage_folder: Path, timeout=600) -> None:
    """Start ``cai run``, SIGKILL it as soon as ``ready()`` holds, and check the stage was mid-run."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None and not ready():
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before the kill point"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert json.loads((stage_folder / "stage.json").read_text())["status"] == "running", stage_folder


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
def test_sigkill_inside_three_stages_then_rerun_equals_a_straight_run(tmp_path, tiny_llama):
    recipe = write_recipe(tmp_path / "recipe.yaml", recipe_data(tmp_path, tiny_llama))
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    cai_run(recipe, "--out", straight)
    cmd = [sys.executable, "-m", "cai.cli.main", "run", str(recipe), "--out", str(killed)]
    _kill_when(cmd, lambda: _lines(killed / "generate" / "records.jsonl") >= 4, killed / "generate")
    assert 4 <= _lines(killed / "generate" / "records.jsonl") < 16
    _kill_when(cmd, lambda: _lines(killed / "label" / "labels.jsonl") >= 4, killed / "label")
    ckpts = killed / "ppo" / "checkpoints"
    _kill_when(cmd, lambda: ckpts.exists() and any(p.name.startswith("step") for p in ckpts.iterdir()),
               killed / "ppo")
    assert not (killed / "ppo" / "summary.json").exists()
    last = cai_run(recipe, "--out", killed)
    plan = plan_of(last)
    assert plan["ppo"][0] == "resume" and plan["generate"][0] == "skip"
    for rel in ("generate/records.jsonl", "sample/samples.jsonl", "sample/pairs.jsonl", "label/labels.jsonl",
                "mix/train/data.jsonl", "mix/test/data.jsonl", "ppo/metrics.jsonl", "eval/behavior/probes.jsonl",
                "eval/reward-model/pairs.jsonl"):
        a, b = _rows(straight / rel), _rows(killed / rel)
        assert len({json.dumps(r, sort_keys=True) for r in b}) == len(b), f"{rel}: duplicated rows"
        _same(a, b, rel)
    for rel in ("reward/eval.json", "eval/behavior/summary.json"):
        _same(json.loads((straight / rel).read_text()), json.loads((killed / rel).read_text()), rel)
    assert json.loads((killed / "ppo" / "summary.json").read_text())["resumed_from"] >= 1
    for stage in ("generate", "label"):  # continued, not started over
        assert json.loads((killed / stage / "summary.json").read_text())["resumed_from"] >= 4, stage


# -- people in the loop, and later rounds ---------------------------------------------------------

@pytest.mark.slow
def test_humans_stage_waits_for_the_labeling_page_then_continues(tmp_path, tiny_llama):
    from cai.humans.store import LabelStore
    from cai.data.pairs import read_pairs

    data = recipe_data(tmp_path, tiny_llama, route={"budget": 3}, humans={"agreement": False})
    recipe = write_recipe(tmp_path / "recipe.yaml", data)
    run = tmp_path / "run"
    proc = cai_run(recipe, "--until", "mix", check=False)
    assert proc.returncode == 3, proc.stderr[-2000:]
    db = run / "human-labels.db"
    assert f"cai humans serve {run / 'route'} --db {db}" in proc.stderr and "rerun" in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("paused: the humans stage waits") and "error:" not in proc.stderr  # not an error
    assert json.loads((run / "route" / "stage.json").read_text())["status"] == "done"
    # a person labels two of the routed pairs on the page (the store the page writes to)
    store = LabelStore(db)
    store.add_tasks(read_pairs(run / "route"), source=str(run / "route"))
    for choice in ("A", "B"):
        task = store.next_task("ana")
        store.label("ana", task.pair_id, choice)
    proc = cai_run(recipe, "--until", "mix")
    plan = plan_of(proc)
    assert plan["route"][0] == "skip" and plan["humans"] == ("redo", "changed: input db")
    mix = json.loads((run / "mix" / "mix.json").read_text())
    assert mix["sources"]["human"]["read"] == 2
    # one more label changes the db: humans and what follows are redone, nothing before
    task = store.next_task("ana")
    store.label("ana", task.pair_id, "tie")
    plan = plan_of(cai_run(recipe, "--dry-run"))
    assert plan["label"][0] == "skip" and plan["humans"] == ("redo", "changed: input db")


@pytest.mark.slow
def test_second_round_starts_from_the_trained_policy_with_the_failed_probes(tmp_path, tiny_llama):
    data = recipe_data(tmp_path, tiny_llama, loop={"rounds": 2, "max_new_prompts": 3})
    data.pop("sft")
    recipe = write_recipe(tmp_path / "recipe.yaml", data)
    run = tmp_path / "run"
    proc = cai_run(recipe)
    assert f"report: {run / 'report.html'}" in proc.stdout  # one page over both rounds, named at the end
    info = json.loads((run / "round-2" / "round.json").read_text())
    assert info["policy"] == str(run / "ppo" / "policy") and info["recipe_prompts"] == 16
    failed = [r for r in _rows(run / "eval" / "behavior" / "probes.jsonl") if r["model"] == "candidate" and r["fail"]]
    assert info["failed_probes_added"] == min(3, len(failed))
    rows = _rows(run / "round-2" / "prompts.jsonl")
    added = [r for r in rows if "suite" in r["source"]]
    assert len(rows) == 16 + len(added)
    for r in added:
        assert r["source"]["round"] == "round-1" and r["messages"][-1]["role"] == "user"
    gen = json.loads((run / "round-2" / "generate" / "stage.json").read_text())
    assert gen["config"]["policy"]["model"] == "RUN/ppo/policy"  # paths in the run folder: RUN/...
    assert len(_rows(run / "round-2" / "generate" / "records.jsonl")) == len(rows)
    assert "round-2" in (run / "report.html").read_text() or "round 2" in (run / "report.html").read_text().lower()
