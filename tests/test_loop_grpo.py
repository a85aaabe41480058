"""`cai run` with a ``grpo:``/``rloo:`` block: the recipes plan, the recipe rules hold, and a tiny loop
(SL-CAI → GRPO with the constitution as the only reward → eval) trains and reports its curves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *args) -> tuple[int, str, str]:
    from cai.cli.main import main

    code = main(["run", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def plan(stdout: str) -> dict[str, str]:
    rows = {}
    for line in stdout.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[0].rstrip(".").isdigit():
            rows[parts[1]] = parts[2]
    return rows


@pytest.mark.parametrize("recipe", ["loop-grpo.yaml", "loop-grpo-gpu.yaml"])
def test_grpo_loop_recipes_plan(capsys, tmp_path, recipe):
    code, out, err = run_cli(capsys, ROOT / "recipes" / recipe, "--dry-run", "--out", tmp_path / "run")
    assert code == 0, err
    assert plan(out) == {"generate": "run", "sft": "run", "grpo": "run", "eval": "run", "report": "build"}


def _recipe(tmp_path, **changes) -> Path:
    data = yaml.safe_load((ROOT / "recipes/loop-grpo.yaml").read_text())
    data.update(changes, prompts=str(ROOT / "recipes/prompts.jsonl"))
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"dpo": {}}, "give one policy trainer (ppo, grpo, rloo or dpo), not grpo and dpo"),
    ({"grpo": {"rewards": ["constitution", "reward-model"]}}, "grpo: the reward-model reward needs the reward stage"),
    ({"grpo": {"model": "x"}}, "grpo.model: set by cai run"),
    ({"grpo": {"batch_size": 6}}, "grpo: batch_size (6) must be a multiple of num_generations (4)"),
])
def test_grpo_block_mistakes_are_one_line(capsys, tmp_path, changes, message):
    code, _, err = run_cli(capsys, _recipe(tmp_path, **changes), "--dry-run", "--out", tmp_path / "run")
    assert code != 0 and len(err.strip().splitlines()) == 1 and message in err, err


def test_rloo_block_with_the_reward_model_needs_and_gets_the_reward_stage(capsys, tmp_path):
    data = {"out": str(tmp_path / "run"), "prompts": str(ROOT / "recipes/prompts.jsonl"), "humans": None,
            "rloo": {"rewards": ["constitution", "reward-model=0.5"]}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    code, out, err = run_cli(capsys, path, "--dry-run")
    assert code == 0, err
    stages = plan(out)
    assert stages["rloo"] == "run" and stages["reward"] == "run" and "ppo" not in stages


@pytest.mark.slow
def test_tiny_grpo_loop_trains_and_reports_reward_and_kl(tmp_path, tiny_llama):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"How do I {t}?"}) + "\n"
                               for t in ("boil an egg", "fix a bike", "learn chess", "sleep better")))
    data = {
        "out": str(tmp_path / "run"), "prompts": str(prompts), "models": {"policy": str(tiny_llama)},
        "backend": {"backend": "transformers", "on_overflow": "truncate"}, "seed": 1,
        "generate": {"rounds": 1, "sampling": {"temperature": 0.8, "max_tokens": 8}},
        "sample": None, "label": None, "mix": None, "reward": None,
        "grpo": {"rewards": ["constitution", "eos=0.5"], "constitution": {"few_shot": 0},
                 "max_steps": 2, "num_generations": 2, "batch_size": 4, "max_completion_length": 6, "save_steps": 1},
        "eval": {"behavior": {"limit": 1, "suites": ["harmful"], "sampling": {"max_tokens": 6}, "n_boot": 100}},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "cai.cli.main", "run", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["judge/judgements"] == 4 for r in rows)
    assert (run / "grpo" / "policy" / "config.json").exists()
    grpo_id = json.loads((run / "grpo" / "stage.json").read_text())["output_id"]
    assert json.loads((run / "eval" / "stage.json").read_text())["inputs"]["stage:grpo"] == grpo_id  # eval of the GRPO policy
    page = (run / "report.html").read_text()
    assert "GRPO (2 steps)" in page and "GRPO: reward and KL per step" in page
    assert "reward (weighted sum of its reward sources)" in page
