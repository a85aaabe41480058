"""Faults a new user hit in `cai train grpo|rloo` and the one judge (issue 20), each on its own
small input: reward weights that are not a finite number >= 0, a hint naming --principles-dir
(now a flag of the command), a finished run rerun taking one more step, a rerun with another
judge mode resuming silently, identical completions scoring a little apart, groups/total under
gradient accumulation."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from cai.core.errors import CaiError
from cai.train.online import OnlineConfig, parse_reward

ROOT = Path(__file__).resolve().parents[1]


def _cfg(out, **kw) -> OnlineConfig:
    base = dict(model="m", prompts="p.jsonl", out=str(out), num_generations=2, batch_size=4, rewards=["length"],
                quiet=True)
    base.update(kw)
    return OnlineConfig.model_validate(base)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("spec", ["length=-1", "length=nan", "length=inf", "eos=-0.5"])
def test_a_weight_that_is_negative_or_not_finite_is_refused(spec):
    with pytest.raises(ValueError, match=r"finite number, 0 or more"):
        parse_reward(spec)


def test_yaml_weights_are_checked_too_and_all_zero_is_refused(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        _cfg(tmp_path, rewards=[{"name": "length", "weight": -1.0}])
    with pytest.raises(ValidationError, match="finite number"):
        _cfg(tmp_path, rewards=[{"name": "length", "weight": float("nan")}])
    with pytest.raises(ValidationError, match="every weight is 0"):
        _cfg(tmp_path, rewards=["length=0", "eos=0"])
    assert [r.weight for r in _cfg(tmp_path, rewards=["length=0", "eos=1"]).rewards] == [0.0, 1.0]  # 0: logged only


def test_a_rerun_with_another_judge_setting_is_refused(tmp_path):
    from cai.core.runs import check_resume

    out = tmp_path / "run"
    judge = {"constitution": "default", "few_shot": 0}
    check_resume(out, _cfg(out, rewards=["constitution"], constitution=judge).identity())
    check_resume(out, _cfg(out, rewards=["constitution"], constitution=judge | {"retries": 5}).identity())  # same
    with pytest.raises(CaiError, match="different reward_setup"):
        check_resume(out, _cfg(out, rewards=["constitution"], constitution=judge | {"mode": "groupwise"}).identity())
    with pytest.raises(CaiError, match="different reward_setup"):
        check_resume(out, _cfg(out, rewards=["constitution"], constitution=judge | {"constitution": "harmless"}).identity())


# ---------------------------------------------------------------- CLI


def test_principles_dir_is_a_flag_of_the_command_whose_error_names_it(tmp_path, capsys):
    from cai.cli.main import main

    (tmp_path / "constitution").mkdir()
    (tmp_path / "constitution" / "mine.yaml").write_text(
        "name: mine\nversion: 1.0.0\nprinciples:\n  ids: [be-brief]\nsampling:\n  strategy: all\n"
        "stages: [revision, feedback]\n")
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "hi"}\n')
    args = ["train", "grpo", "--model", "m", "--prompts", str(tmp_path / "prompts.jsonl"), "--out",
            str(tmp_path / "out"), "--num-generations", "2", "--batch-size", "2", "--reward", "constitution",
            "--constitution", str(tmp_path / "constitution" / "mine.yaml"), "--quiet"]
    assert main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert "pass --principles-dir" in err[-1]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "be-brief.md").write_text("---\nid: be-brief\nversion: 1.0.0\ntitle: Be brief\ntags: [style]\n---\n\nShort.\n\n"
                                      "## Critique\nToo long?\n\n## Revision\nShorten it.\n")
    assert main(args + ["--principles-dir", str(mine), "--out", str(tmp_path / "out2")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no principle with a '## Preference' section" in err[0]  # the folder was read


# ---------------------------------------------------------------- the judge


class Jitter:
    """Wraps a scripted backend: each answer moves by 1e-6 x its position in the batch, as a real
    backend's padding moves the last digits."""

    def __init__(self, inner):
        self.inner, self.config = inner, inner.config

    def score_choices(self, prompts, options):
        out = self.inner.score_choices(prompts, options)
        moved = []
        for i, p in enumerate(out):  # still normalised: what A gains, the last label loses
            last = list(p)[-1]
            moved.append({k: v + 1e-6 * i * ((k == "A") - (k == last)) for k, v in p.items()})
        return moved

    def describe(self):
        return self.inner.describe()


def _prefers_long(conv, labels):
    q = next(m["content"] for m in reversed(conv) if m["role"] == "user")
    a, b = q.split("(A)")[-1].split("(B)")
    if labels[0] == "A" and "(B)" in q:
        return {"A": 0.7, "B": 0.3} if len(a) > len(b) else {"A": 0.3, "B": 0.7}
    return {lab: 1.0 / len(labels) for lab in labels}


@pytest.mark.parametrize("group_score", ["bradley-terry", "win-rate"])
def test_identical_completions_get_identical_group_scores(group_score):
    from cai.backends.scripted import ScriptedBackend
    from cai.judge import GroupItem, Judge

    backend = Jitter(ScriptedBackend.scripted(score=_prefers_long))
    same = "Mix flour and water."
    item = GroupItem([{"role": "user", "content": "bread?"}], [same, same, "No.", same], "Which is better?")
    [g] = Judge(backend, group_score=group_score, dedupe=True).groupwise([item])
    # equal to the last bits of 1 - (1 - p): well below the 1e-6 the batch positions move each answer
    assert g.scores[1] == pytest.approx(g.scores[0], abs=1e-12) and g.scores[3] == pytest.approx(g.scores[0], abs=1e-12)
    assert g.matrix[3][2] == pytest.approx(g.matrix[0][2], abs=1e-12) and g.scores[2] != pytest.approx(g.scores[0])


def test_identical_completions_get_identical_ratings():
    from cai.backends.scripted import ScriptedBackend
    from cai.judge import RATINGS_5, Judge, PointItem

    backend = Jitter(ScriptedBackend.scripted(choices=[{"1": 0.1, "2": 0.1, "3": 0.2, "4": 0.3, "5": 0.3}]))
    prompt = [{"role": "user", "content": "bread?"}]
    judge = Judge(backend, scale=RATINGS_5, dedupe=True)  # as the RL reward opens it
    a, b, c = judge.pointwise([PointItem(prompt, t, "Is it helpful?") for t in ("Mix.", "Mix.", "No.")])
    assert a.score == b.score
    assert judge.stats["prompts"] == 2  # the duplicate was not sent again


# ---------------------------------------------------------------- training (tiny, 1-2 steps)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    pytest.importorskip("trl")
    from cai.testing.ppo import build_tiny_policy

    return build_tiny_policy(tmp_path_factory.mktemp("break-online") / "policy")


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    from cai.testing.ppo import write_prompts

    return write_prompts(tmp_path_factory.mktemp("break-online-prompts") / "prompts.jsonl", n=8)


def _steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_finished_run_rerun_takes_no_more_steps(policy, prompts, tmp_path):
    import torch
    from safetensors.torch import load_file

    from cai.train.online import train_online

    out = tmp_path / "run"
    cfg = _cfg(out, model=str(policy), prompts=str(prompts), max_steps=1, save_steps=1, max_completion_length=4,
               learning_rate=1e-2, rewards=["repetition", "length"])
    train_online(cfg)
    trained = load_file(out / "policy" / "model.safetensors")
    summary = train_online(cfg)
    assert summary["resumed_from"].endswith("checkpoint-1") and _steps(out) == [1]
    assert not (out / "checkpoint-2").exists()
    again = load_file(out / "policy" / "model.safetensors")
    assert all(torch.equal(trained[k], again[k]) for k in trained)  # the checkpoint's policy, not the base


def test_groups_total_counts_the_generation_batch(policy, prompts, tmp_path):
    from cai.train.online import train_online

    out = tmp_path / "ga"
    cfg = _cfg(out, model=str(policy), prompts=str(prompts), max_steps=1, max_completion_length=4,
               rewards=["repetition"], trl={"gradient_accumulation_steps": 2})
    train_online(cfg)
    [row] = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert row["groups/total"] == 4  # 4 completions x 2 accumulation steps generated at once, groups of 2


def test_monitor_without_generation_batch_keeps_its_count():
    from types import SimpleNamespace

    from cai.train.online.callback import OnlineMonitor

    cfg = _cfg("o")
    log = SimpleNamespace(append=lambda row: None)
    assert OnlineMonitor(cfg, [], log).groups == 2 and OnlineMonitor(cfg, [], log, world_size=2).groups == 4
    assert OnlineMonitor(cfg, [], log, generation_batch=16).groups == 8


@pytest.mark.parametrize("mode", ["pointwise", "groupwise"])
def test_the_rl_reward_gives_identical_completions_one_reward(mode):
    """Through the reward TRL calls: a group of identical completions has no spread to learn from."""
    from cai.backends.scripted import ScriptedBackend
    from cai.train.online.config import ConstitutionReward
    from cai.train.online.judge_link import open_judge
    from cai.train.online.judging import ConstitutionJudgeReward

    backend = Jitter(ScriptedBackend.scripted(choices=[{"1": 0.1, "2": 0.1, "3": 0.2, "4": 0.3, "5": 0.3}]
                                              if mode == "pointwise" else [], score=None if mode == "pointwise"
                                              else _prefers_long))
    judge = open_judge(ConstitutionReward(constitution=str(ROOT / "constitution/default.yaml"), few_shot=0,
                                          mode=mode, retry_seconds=0.0), backend=backend)
    reward = ConstitutionJudgeReward(judge, mode=mode, num_generations=4)
    prompts = [[{"role": "user", "content": "bread?"}]] * 4
    values = reward(prompts, [[{"role": "assistant", "content": t}] for t in ("Mix.", "Mix.", "No, never.", "Mix.")],
                    [[1]] * 4)
    assert values[1] == pytest.approx(values[0], abs=1e-12) and values[3] == pytest.approx(values[0], abs=1e-12)
    assert values[2] != pytest.approx(values[0])


def test_a_prompt_too_long_for_the_policy_is_left_out_up_front(policy, tmp_path):
    """TRL does not cut prompts; the judge would reject the row and stop the run at whatever step
    first drew it. It is left out before the first rollout, named by file line."""
    from cai.train.online.trainer import prompt_dataset

    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in ("hello there", "word " * 1100, "write a poem")))
    dataset, report = prompt_dataset(_cfg(tmp_path, model=str(policy), prompts=str(path), max_completion_length=16),
                                     str(policy))
    assert [row["prompt"][-1]["content"] for row in dataset] == ["hello there", "write a poem"]
    [why] = report["rejected_rows"]
    assert why.startswith(f"{path}:2: prompt has ") and "policy's context of 1024" in why


@pytest.mark.parametrize("trl", [{"steps_per_generation": 2}, {"num_iterations": 2}])
def test_metrics_have_one_row_per_step_when_a_generation_serves_two(policy, prompts, tmp_path, trl):
    from cai.train.online import train_online

    out = tmp_path / "spg"
    cfg = _cfg(out, model=str(policy), prompts=str(prompts), max_steps=3, max_completion_length=4,
               rewards=["repetition"], trl=trl)
    summary = train_online(cfg)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[1]["rewards/repetition/mean"] == rows[0]["rewards/repetition/mean"]  # step 2 trained on step 1's
    per_generation = 4 * trl.get("steps_per_generation", 1) // 2
    assert [r["groups/total"] for r in rows] == [per_generation, 0, per_generation]
    assert summary["groups"]["n"] == 2 * per_generation


@pytest.mark.parametrize("flags, expected", [
    (["--reward", "length"], "error: rewards: a source appears twice (length, length)"),
    (["--reward", "reward-model"], "error: reward_model.path: the reward-model reward needs a model (--reward-model)"),
    (["--num-generations", "3"], "error: batch_size (4) must be a multiple of num_generations (3)"),
])
def test_a_rule_over_several_fields_is_one_line_without_an_empty_field(tmp_path, capsys, flags, expected):
    from cai.cli.main import main

    args = ["train", "grpo", "--model", "m", "--prompts", "p.jsonl", "--out", str(tmp_path / "o"), "--batch-size", "4",
            "--num-generations", "2", "--reward", "length"]
    assert main(args + flags) != 0
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(expected)


def test_a_metrics_line_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    from cai.train.ppo.metrics import MetricsLog

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "objective/rew')
    log = MetricsLog(path)
    log.truncate(2)
    assert [r["step"] for r in log.read()] == [1, 2]
    path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(CaiError, match="line 2 is not JSON"):
        log.truncate(2)


def test_a_backend_field_put_under_options_is_named_there(tmp_path, capsys):
    from cai.cli.main import main

    recipe = tmp_path / "grpo.yaml"
    recipe.write_text("model: m\nprompts: p.jsonl\nout: o\nnum_generations: 2\nbatch_size: 2\n"
                      "constitution:\n  constitution: default\n  feedback: {backend: transformers, model: judge, "
                      "options: {device: cpu, dtype: float32}}\n")
    assert main(["train", "grpo", "--config", str(recipe)]) != 0
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "constitution.feedback: options.dtype: Extra inputs are not permitted (transformers backend); dtype is a " \
           "field of the backend block itself" in line


def test_a_completion_the_judge_cannot_take_is_not_retried():
    """Too long for the judge's context: asking again gives the same answer after 2 + 4 s of waits."""
    from cai.backends.base import RowsRejected
    from cai.train.online.judging import ConstitutionJudgeReward

    class TooLong:
        stats = Counter()
        tries = 0

        def rate(self, prompts, responses):
            TooLong.tries += 1
            raise RowsRejected({0: "prompt has 1072 tokens, more than the 1023 that fit the context of 1024"})

    reward = ConstitutionJudgeReward(TooLong(), mode="pointwise", num_generations=2, retries=2, retry_seconds=5.0)
    with pytest.raises(CaiError, match=r"cannot take this step's completions \(row 0: prompt has 1072 tokens") as err:
        reward([[{"role": "user", "content": "q"}]], [[{"role": "assistant", "content": "a"}]], [[1]])
    assert TooLong.tries == 1 and "zero reward" in str(err.value) and reward.last == []


@pytest.mark.parametrize("flags", [["--min-p", "0.7"], ["--verify-sft"], ["--feedback-model", "judge"]])
def test_a_verify_setting_without_verify_is_refused(tmp_path, capsys, flags):
    """`cai generate --min-p 0.7` without --verify judged nothing and exported every pair at 1.0."""
    from cai.cli.main import main

    (tmp_path / "p.jsonl").write_text('{"prompt": "hi"}\n')
    assert main(["generate", "--constitution", "default", "--prompts", str(tmp_path / "p.jsonl"), "--out",
                 str(tmp_path / "o"), "--model", "m", *flags]) != 0
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "only read with verify: true (--verify)" in line and not (tmp_path / "o").exists()
