"""Faults found in `cai train grpo|rloo` and the TRL trainers' passthrough (issues 26 and 28, field
cases #1, #2, #4, #5), each on its own small input: a NaN judgement or one below the label-mass
floor trained as a reward, the judge's health unseen, a gain from a guard read as the
constitution's, ``trl:`` replacing what cai checked, too few prompts to fill a step saved as a
trained policy, the missing --prompt-column flag, an attempt that took no step blocking its folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cai.core.errors import CaiError
from cai.train.online import OnlineConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = str(ROOT / "constitution/default.yaml")
RATING = {"1": 0.05, "2": 0.05, "3": 0.2, "4": 0.3, "5": 0.4}


def _cfg(out, **kw) -> OnlineConfig:
    base = dict(model="m", prompts="p.jsonl", out=str(out), num_generations=2, batch_size=4, rewards=["length"],
                quiet=True)
    base.update(kw)
    return OnlineConfig.model_validate(base)


class Mass:
    """Wraps a scripted backend: every row carries label mass ``mass`` (NaN: NaN log-probs, whose
    probabilities are NaN too), as the transformers backend reports it."""

    def __init__(self, inner, mass: float):
        self.inner, self.config, self.mass = inner, inner.config, mass

    def score_choices(self, prompts, options):
        from cai.backends.choices import ChoiceProbs

        rows = self.inner.score_choices(prompts, options)
        nan = self.mass != self.mass
        return [ChoiceProbs({k: float("nan") if nan else v for k, v in p.items()}, mass=self.mass) for p in rows]

    def describe(self):
        return self.inner.describe()


def _first_is_better(conv, labels):
    """Always answers (A): every comparison follows the order shown."""
    return {lab: (0.9 if lab == "A" else 0.1 / (len(labels) - 1)) for lab in labels}


def _reward(mode: str, mass: float, *, k: int = 2, score=None, **judge):
    from cai.backends.scripted import ScriptedBackend
    from cai.train.online.config import ConstitutionReward
    from cai.train.online.judge_link import open_judge
    from cai.train.online.judging import ConstitutionJudgeReward

    inner = ScriptedBackend.scripted(choices=[RATING] if mode == "pointwise" else [], score=score)
    cfg = ConstitutionReward(constitution=DEFAULT, few_shot=0, mode=mode, retry_seconds=0.0,
                             principles_per_completion=1, **judge)
    return ConstitutionJudgeReward(open_judge(cfg, backend=Mass(inner, mass)), mode=mode, num_generations=k,
                                   retries=2, retry_seconds=0.0)


def _call(reward, texts):
    prompts = [[{"role": "user", "content": "How do I fix a flat tyre?"}]] * len(texts)
    return reward(prompts, [[{"role": "assistant", "content": t}] for t in texts], [[1, 2]] * len(texts))


TEXTS = ["Patch the tube.", "Buy a new bike, obviously, and never ride again."]


# ---------------------------------------------------------------- #1: a NaN judge


@pytest.mark.parametrize("mode", ["pointwise", "groupwise"])
def test_a_nan_judgement_stops_the_step_naming_nan(mode):
    """TRL sums NaN rewards to 0 (nansum); RLOO groupwise died with '3 validation errors for PrincipleScore'."""
    reward = _reward(mode, float("nan"), score=_first_is_better if mode == "groupwise" else None)
    with pytest.raises(CaiError) as err:
        _call(reward, TEXTS)
    line = str(err.value)
    assert "\n" not in line and "NaN" in line and "(nan " in line and "before any optimizer step" in line
    assert reward.last == []  # nothing handed to TRL


def test_a_reward_function_never_hands_trl_a_nan():
    from cai.train.online.rewards import RewardFunction

    class Broken(RewardFunction):
        name = "broken"

        def score(self, prompts, completions, completion_ids, **kwargs):
            return [0.5, float("nan"), None]

    with pytest.raises(CaiError, match=r"reward 'broken' is NaN or infinite for 2 of 3 completions \(first: row 1"):
        Broken()(["p"] * 3, ["c"] * 3, [[1]] * 3)


# ---------------------------------------------------------------- #5: a judge that is not answering


def test_a_judgement_below_the_label_mass_floor_is_a_failure_not_a_reward():
    reward = _reward("pointwise", 4e-20, min_label_mass=0.1)
    with pytest.raises(CaiError, match=r"2 of 2 completions failed \(below_label_mass 2\); first: label mass 4e-20 "
                                       r"< floor 0.1"):
        _call(reward, TEXTS)
    healthy = _reward("pointwise", 0.95, min_label_mass=0.1)
    values = _call(healthy, TEXTS)
    expected = sum(RATING[str(k)] * (k - 1) / 4 for k in range(1, 6))
    assert values == pytest.approx([expected, expected])
    assert healthy.judge.health.label_mass.median == pytest.approx(0.95)


@pytest.mark.parametrize("policy", ["warn", "error"])
def test_an_unhealthy_judge_warns_or_stops_as_on_unhealthy_says(policy, capsys):
    """A groupwise judge that always answers (A): its comparisons follow the order shown."""
    reward = _reward("groupwise", 0.9, k=4, score=_first_is_better, on_unhealthy=policy, min_label_mass=0.1)
    texts = ["a", "bb bb", "ccc ccc ccc", "dddd dddd dddd dddd"]
    if policy == "error":
        with pytest.raises(CaiError, match=r"constitution judge health: unhealthy .*position consistency 0.0% of"):
            _call(reward, texts)
        return
    values = _call(reward, texts)
    _call(reward, texts)
    warned = [line for line in capsys.readouterr().err.splitlines() if "health: unhealthy" in line]
    assert len(values) == 4 and len(warned) == 1 and warned[0].startswith("warning: constitution judge health")


# ---------------------------------------------------------------- issue 26 item 4: gains by source


def test_a_gain_from_a_guard_is_not_read_as_the_constitutions():
    """The field case: reward +0.139 -> +0.266 while the constitution moved 0.639 -> 0.641."""
    from cai.train.online.summary import summarize_run

    cfg = _cfg("o", rewards=["constitution", "eos"], constitution={"constitution": DEFAULT})
    const = [0.639, 0.639, 0.641, 0.641]  # the summary's start and end: means over the first and last 2 steps
    total = [0.139, 0.139, 0.266, 0.266]
    rows = [{"step": i + 1, "objective/reward_mean": t, "objective/kl": 0.0, "objective/beta": 0.05,
             "response/length_mean": 8.0, "policy/entropy": 1.0, "time/step_s": 1.0, "groups/total": 2,
             "groups/zero_spread": 0, "rewards/constitution/mean": c, "rewards/eos/mean": t - c,
             "rewards/constitution/group_std": 0.002, "monitor/warnings": []}
            for i, (c, t) in enumerate(zip(const, total))]
    summary = summarize_run(cfg, rows, [])
    gains = summary["gain_by_source"]
    assert gains["constitution"]["weighted_change"] == pytest.approx(0.002)
    assert gains["eos"]["weighted_change"] == pytest.approx(0.125)
    assert sum(g["weighted_change"] for g in gains.values()) == pytest.approx(
        summary["objective/reward_mean"]["end"] - summary["objective/reward_mean"]["start"])
    spread, source = summary["reward_warnings"]
    assert "barely varies within groups (mean within-group std 0.0020 < 0.01, 4 steps, n=8 groups)" in spread
    assert "came from 'eos' (+0.125), not the constitution (0.639 -> 0.641, +0.002)" in source


def test_group_std_is_the_spread_within_groups_not_over_the_batch():
    from cai.train.online.callback import group_std

    assert group_std([0.2, 0.2, 0.9, 0.9], 2) == 0.0  # all the batch's spread lies between groups
    assert group_std([0.0, 1.0, 0.5, 0.5], 2) == pytest.approx(0.25)
    assert group_std([0.3], 2) is None


# ---------------------------------------------------------------- #4: trl: replacing what cai set


@pytest.mark.parametrize("trl, field", [({"reward_weights": [-1.0, 5.0]}, "rewards"), ({"reward_weights": [1.0]}, "rewards"),
                                        ({"num_generations": 8}, "num_generations"),
                                        ({"per_device_train_batch_size": 2}, "batch_size"),
                                        ({"logging_steps": 10}, "log row every step"),
                                        ({"generation_kwargs": {"temperature": 0.1}}, "`temperature`")])
def test_a_trl_key_that_cai_sets_is_refused_in_one_line(trl, field):
    pytest.importorskip("trl")
    from trl import GRPOConfig

    from cai.train.config import check_trl_keys

    with pytest.raises(CaiError) as err:
        check_trl_keys(_cfg("o", rewards=["eos=1", "length=0.5"], trl=trl), GRPOConfig)
    key = next(iter(trl))
    key += "." + next(iter(trl[key])) if isinstance(trl[key], dict) else ""
    assert "\n" not in str(err.value) and str(err.value).startswith(f"trl.{key}: cai sets this itself")
    assert field in str(err.value)
    check_trl_keys(_cfg("o", trl={"gradient_accumulation_steps": 2, "steps_per_generation": 2,
                                  "generation_kwargs": {"top_k": 50}}), GRPOConfig)


@pytest.mark.parametrize("recipe, cls, trl", [("SFTRecipe", "SFTConfig", {"learning_rate": 1.0}),
                                              ("DPORecipe", "DPOConfig", {"beta": 5.0}),
                                              ("DPORecipe", "DPOConfig", {"loss_type": ["ipo"]}),
                                              ("RewardRecipe", "RewardConfig", {"max_length": 8})])
def test_every_trainer_refuses_a_trl_key_its_recipe_sets(recipe, cls, trl):
    trl_mod = pytest.importorskip("trl")
    from cai.train import config as C

    r = getattr(C, recipe)(model="m", data="d", out="o", trl=trl)
    with pytest.raises(CaiError, match=rf"^trl.{next(iter(trl))}: cai sets this itself \(set the field"):
        C.check_trl_keys(r, getattr(trl_mod, cls))
    C.check_trl_keys(getattr(C, recipe)(model="m", data="d", out="o", trl={"warmup_steps": 0.1}), getattr(trl_mod, cls))


# ---------------------------------------------------------------- #2: too few prompts for one step


def test_too_few_prompts_for_one_step_are_refused_before_anything_loads(tmp_path):
    pytest.importorskip("trl")
    from cai.train.online import train_online

    (tmp_path / "one.jsonl").write_text('{"id": "only", "prompt": "Suggest a name for a grey cat."}\n')
    out = tmp_path / "run"
    cfg = _cfg(out, model=str(tmp_path / "no-such-model"), prompts=str(tmp_path / "one.jsonl"), num_generations=4,
               batch_size=8, rewards=["eos"])
    with pytest.raises(CaiError, match=r"one.jsonl: 1 prompt, but one step needs 2 distinct prompts .* lower "
                                       r"batch_size to 4"):
        train_online(cfg)
    assert not out.exists()  # no run folder, no policy/


def test_sft_that_cannot_fill_one_step_is_refused_before_the_model_loads(tmp_path, tiny_llama):
    pytest.importorskip("trl")
    from cai.train.config import SFTRecipe
    from cai.train.sft import train_sft

    data = tmp_path / "sft.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}) + "\n")
    recipe = SFTRecipe(model=str(tiny_llama), data=str(data), out=str(tmp_path / "o"), batch_size=4,
                       trl={"dataloader_drop_last": True})
    with pytest.raises(CaiError, match=r"1 training rows, but one step needs 4 .*dataloader_drop_last"):
        train_sft(recipe)
    assert not (tmp_path / "o").exists()


def test_a_run_that_took_no_step_is_not_saved_as_trained():
    from cai.train.limits import check_took_a_step

    with pytest.raises(CaiError, match="took no optimizer step"):
        check_took_a_step(0, "d.jsonl")
    check_took_a_step(1, "d.jsonl")


# ---------------------------------------------------------------- issue 28 item 8


def test_an_attempt_that_reached_no_checkpoint_does_not_block_its_folder(tmp_path):
    from cai.core.runs import check_resume
    from cai.train.online.trainer import forget_stepless_attempt

    out = tmp_path / "run"
    check_resume(out, _cfg(out, num_generations=2).identity())  # the first try failed at step 1
    assert forget_stepless_attempt(out)
    check_resume(out, _cfg(out, num_generations=4, batch_size=8).identity())  # the corrected try goes on
    (out / "checkpoint-1").mkdir()
    (out / "checkpoint-1" / "trainer_state.json").write_text("{}")
    assert not forget_stepless_attempt(out)  # a run with something to resume keeps its identity
    with pytest.raises(CaiError, match="different num_generations"):
        check_resume(out, _cfg(out, num_generations=2).identity())


def test_train_grpo_has_the_prompt_column_flag_its_errors_name(tmp_path, capsys):
    from cai.cli.main import main

    (tmp_path / "p.jsonl").write_text('{"question": "hi"}\n{"question": "bye"}\n')
    args = ["train", "grpo", "--model", str(tmp_path / "no-model"), "--prompts", str(tmp_path / "p.jsonl"), "--out",
            str(tmp_path / "o"), "--num-generations", "2", "--batch-size", "2", "--reward", "eos", "--quiet"]
    assert main(args) != 0
    assert "pass --prompt-column" in capsys.readouterr().err
    assert main(args + ["--prompt-column", "question"]) != 0
    err = capsys.readouterr().err
    assert "prompt-column" not in err and "No such option" not in err and "no-model" in err  # read; the model is next


# ---------------------------------------------------------------- #5 in a run: health at the first step


def test_a_run_records_the_judges_health_and_its_gain_by_source(tmp_path, capsys):
    pytest.importorskip("trl")
    from cai.backends.scripted import ScriptedBackend
    from cai.testing.ppo import build_tiny_policy, write_prompts
    from cai.train.online import train_online
    from cai.train.online.judge_link import open_judge

    policy = build_tiny_policy(tmp_path / "policy")
    prompts = write_prompts(tmp_path / "prompts.jsonl", n=4)
    out = tmp_path / "run"
    cfg = _cfg(out, model=str(policy), prompts=str(prompts), max_steps=1, max_completion_length=4,
               rewards=["constitution", "eos=0.5"], quiet=False,
               constitution={"constitution": DEFAULT, "few_shot": 0, "principles_per_completion": 1,
                             "min_label_mass": 0.1})
    judge = open_judge(cfg.constitution, backend=Mass(ScriptedBackend.scripted(choices=[RATING]), 0.9))
    summary = train_online(cfg, judge=judge)
    [row] = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert row["judge/health"]["n"] == 4 and row["judge/health"]["failed"] == 0
    assert row["judge/health"]["label_mass_median"] == pytest.approx(0.9)
    assert row["rewards/constitution/group_std"] == 0.0  # the scripted judge rates every completion alike
    saved = json.loads((out / "summary.json").read_text())
    assert saved["judge_health"]["label_mass"]["median"] == pytest.approx(0.9) and saved["trl"] == {}
    assert set(saved["gain_by_source"]) == {"constitution", "eos"}
    assert any("barely varies within groups" in w for w in summary["reward_warnings"])
    err = capsys.readouterr().err
    assert "constitution judge health: unknown (n 4 judgements)" in err and "label mass: median 0.9" in err
