"""`cai train grpo|rloo` on TRL's real trainers with tiny models (CPU, offline).

- config and flags: rewards NAME=WEIGHT, whole groups per process, missing inputs named;
- guards and the monitor on literal numbers;
- the constitution judge: position bias cancels with both orders (scripted backend, real Judge);
  a failing judge is retried then stops the step with one line;
- GRPO and RLOO learn a learnable scripted reward; a run resumes from its checkpoint;
- the CLI trains GRPO with the constitution as judge (the tiny model judging through the
  transformers backend) and writes the policy, metrics.jsonl and summary.json.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from cai.core.errors import CaiError
from cai.train.online import OnlineConfig, parse_reward

pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    from cai.testing.ppo import build_tiny_policy

    return build_tiny_policy(tmp_path_factory.mktemp("online") / "policy")


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    from cai.testing.ppo import write_prompts

    return write_prompts(tmp_path_factory.mktemp("online-prompts") / "prompts.jsonl", n=8)


def _cfg(policy, prompts, out, **kw) -> OnlineConfig:
    base = dict(model=str(policy), prompts=str(prompts), out=str(out), max_steps=2, num_generations=4, batch_size=8,
                max_completion_length=8, constitution={"constitution": str(ROOT / "constitution/default.yaml"),
                                                       "few_shot": 0, "retry_seconds": 0.0}, quiet=True)
    base.update(kw)
    return OnlineConfig.model_validate(base)


# ---------------------------------------------------------------- config


def test_rewards_parse_with_weights_and_bad_ones_are_named(policy, prompts, tmp_path):
    cfg = _cfg(policy, prompts, tmp_path, rewards=["constitution", "reward-model=0.5"],
               reward_model={"path": "rm"})
    assert [(r.name, r.weight) for r in cfg.rewards] == [("constitution", 1.0), ("reward-model", 0.5)]
    with pytest.raises(ValueError, match="unknown reward 'judge'"):
        parse_reward("judge=1")
    with pytest.raises(ValueError, match="must be a number"):
        parse_reward("eos=heavy")
    with pytest.raises(ValueError, match="multiple of num_generations"):
        _cfg(policy, prompts, tmp_path, batch_size=6)
    with pytest.raises(ValueError, match="needs a model"):
        _cfg(policy, prompts, tmp_path, rewards=["reward-model"])


@pytest.mark.parametrize("recipe", ["grpo.yaml", "rloo.yaml"])
def test_recipes_validate(recipe):
    from cai.core.yamlutil import load_yaml_config

    cfg = OnlineConfig.model_validate(load_yaml_config(str(ROOT / "recipes" / recipe)))
    assert "constitution" in cfg.reward_names and cfg.batch_size % cfg.num_generations == 0


def test_ppo_and_online_declare_what_they_share_once_in_policy_run():
    """A field both trainers hold with one type and one default lives in PolicyRun (one name, one
    help, one flag); those left in each config differ in default or type, and recipes keep working."""
    from cai.train.policy import PolicyRun
    from cai.train.ppo import PPOConfig

    assert issubclass(PPOConfig, PolicyRun) and issubclass(OnlineConfig, PolicyRun)
    for name, info in PolicyRun.model_fields.items():
        assert PPOConfig.model_fields[name].description == OnlineConfig.model_fields[name].description == \
            info.description, name
    both = (set(PPOConfig.model_fields) & set(OnlineConfig.model_fields)) - set(PolicyRun.model_fields)
    assert both == {"reward_model", "batch_size", "learning_rate", "dtype"}, both
    for name in both:
        ppo, online = PPOConfig.model_fields[name], OnlineConfig.model_fields[name]
        assert (ppo.annotation, ppo.get_default(call_default_factory=True)) != \
            (online.annotation, online.get_default(call_default_factory=True)), f"{name}: move it to PolicyRun"
    cfg = PPOConfig.model_validate({"prompts": "p", "model": "m", "reward_model": "r", "out": "o",
                                    "monitor": {"window": 3}, "quiet": True})
    assert cfg.monitor.window == 3 and cfg.quiet and cfg.max_steps == 100 and cfg.temperature == 1.0


def test_cli_bad_input_is_one_line_naming_the_field(tmp_path, capsys):
    from cai.cli.main import main

    recipe = tmp_path / "grpo.yaml"
    recipe.write_text("model: m\nprompts: p.jsonl\nout: o\nnum_generations: 4\nbatch_size: 6\n")
    assert main(["train", "grpo", "--config", str(recipe)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "batch_size (6) must be a multiple of num_generations (4)" in err[0]
    assert main(["train", "rloo", "--config", str(recipe), "--batch-size", "8", "--reward", "judge"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown reward 'judge'" in err[0]


# ---------------------------------------------------------------- guards and monitor


def test_guards_on_literal_token_ids():
    from cai.train.online.rewards import EndOfTurnGuard, LengthGuard, RepetitionGuard

    eos = EndOfTurnGuard({2}, penalty=1.5)
    assert eos(["p"] * 3, ["a"] * 3, [[5, 2], [5, 6], []]) == [0.0, -1.5, -1.5]
    assert eos.counts["missing_eos"] == 2
    rep = RepetitionGuard(n=2, min_distinct=0.5)
    # [1,1,1,1,1]: bigrams (1,1)x4, 1 distinct of 4 = 0.25 -> -(0.5 - 0.25); [1,2,3]: all distinct -> 0
    assert rep(["p"] * 2, ["a"] * 2, [[1, 1, 1, 1, 1], [1, 2, 3]]) == [-0.25, 0.0]
    seen = []
    length = LengthGuard(ratio=1.5, on_reference=seen.append)
    assert length(["p"] * 2, ["a"] * 2, [[1] * 4, [1] * 4]) == [0.0, 0.0]   # L_ref = 4 from the first batch
    assert seen == [4.0]
    assert length(["p"] * 2, ["a"] * 2, [[1] * 8, [1] * 5]) == [-0.5, 0.0]  # 8/4 - 1.5


def test_monitor_warns_when_judge_and_reward_model_disagree():
    from types import SimpleNamespace

    from cai.train.online.callback import OnlineMonitor
    from cai.train.online.rewards import RewardFunction

    class Fixed(RewardFunction):
        def __init__(self, name, values):
            self.name = name
            super().__init__()
            self.last, self.last_ids = values, [[1, 2, 3]] * len(values)

    cfg = OnlineConfig(model="m", prompts="p", out="o", batch_size=4, num_generations=2, min_judge_rm_corr=0.0,
                       rewards=["length"], quiet=True)
    rows = []
    log = SimpleNamespace(append=rows.append)
    judge, rm = Fixed("constitution", [0.9, 0.1, 0.8, 0.2]), Fixed("reward-model", [-1.0, 1.0, -0.5, 0.5])
    judge.judge = SimpleNamespace(stats=Counter())
    Fixed.judge_calls = Fixed.judgements = 0
    mon = OnlineMonitor(cfg, [judge, rm], log)
    state = SimpleNamespace(global_step=1, is_world_process_zero=True)
    logs = {"reward": 0.1, "reward_std": 0.5, "kl": 0.01, "frac_reward_zero_std": 0.5, "completions/mean_length": 3}
    mon.on_log(SimpleNamespace(max_steps=1), state, None, logs=logs)
    [row] = rows
    assert row["groups/zero_spread"] == 1 and row["groups/total"] == 2
    assert any(w.startswith("disagreement:") and "n=4 completions" in w for w in row["monitor/warnings"])


def test_reward_model_reward_scores_as_cai_score_does(tiny_llama, tmp_path):
    """The reward-model reward is `cai score`'s scoring: the chat template over prompt + completion,
    cut from the left to max_length (counted), the scalar head's value."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cai.train.online.rewards import RewardModelScore
    from cai.train.score import load_reward_model, score_conversations

    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1)
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    rm.config.pad_token_id = tok.pad_token_id
    rm.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    prompts = [[{"role": "user", "content": "explain the rules " * n}] for n in (1, 30)]
    completions = [[{"role": "assistant", "content": t}] for t in ("be kind", "be kind and honest")]
    reward = RewardModelScore(str(tmp_path / "rm"), max_length=40, device="cpu")
    values = reward(prompts, completions, [[1], [2]])
    model, tokenizer = load_reward_model(str(tmp_path / "rm"), device="cpu")
    expected = score_conversations(model, tokenizer, [p + c for p, c in zip(prompts, completions)], max_length=40)
    assert values == pytest.approx(expected, abs=1e-6) and values[0] != values[1]
    assert reward.counts["truncated"] == 1  # the long prompt lost its start, the completion stayed


# ---------------------------------------------------------------- the constitution judge


def _open_judge(backend, **kw):
    from cai.train.online.config import ConstitutionReward
    from cai.train.online.judge_link import open_judge

    cfg = ConstitutionReward(constitution=str(ROOT / "constitution/default.yaml"), few_shot=0, retry_seconds=0.0,
                             **kw)
    return open_judge(cfg, backend=backend)


def test_groupwise_both_orders_cancel_a_position_bias():
    """A judge that always prefers option (A) with 0.8: every pair is asked in both orders (0.8 with
    x shown first, 0.2 with x second), the average is 0.5, so the group's Bradley-Terry scores are
    all 0 and nothing in the reward follows the position."""
    from cai.backends.scripted import ScriptedBackend
    from cai.train.online.judging import ConstitutionJudgeReward

    backend = ScriptedBackend.scripted(choices=[{"A": 0.8, "B": 0.2}])
    prompts = [[{"role": "user", "content": "hi"}]] * 3
    completions = [[{"role": "assistant", "content": t}] for t in ("one", "two", "three")]
    judge = _open_judge(backend, mode="groupwise")
    reward = ConstitutionJudgeReward(judge, mode="groupwise", num_generations=3)
    assert reward(prompts, completions, [[1]] * 3) == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert reward.counts["comparisons_both_orders"] == 3 and reward.judgements == 6  # 3 pairs x 2 orders
    assert reward.counts["consistent_comparisons"] == 0  # each order preferred the one shown first
    [group] = judge.rank(prompts[:1], [["one", "two"]])
    [result] = group.verdicts[0, 1].results
    assert result.by_order == pytest.approx({0: 0.8, 1: 0.2}) and group.matrix[0][1] == pytest.approx(0.5)


def test_a_failing_judge_is_retried_then_stops_the_step_with_one_line():
    from cai.train.online.judging import ConstitutionJudgeReward

    class Down:
        stats = Counter()
        tries = 0

        def rate(self, prompts, responses):
            Down.tries += 1
            raise ConnectionError("connection refused: 127.0.0.1:8000")

    reward = ConstitutionJudgeReward(Down(), mode="pointwise", num_generations=2, retries=2, retry_seconds=0.0)
    with pytest.raises(CaiError) as err:
        reward([[{"role": "user", "content": "q"}]], [[{"role": "assistant", "content": "a"}]], [[1]])
    assert Down.tries == 3
    assert "failed 3 times (connection refused: 127.0.0.1:8000)" in str(err.value) and "\n" not in str(err.value)


def test_a_judge_server_that_is_down_stops_the_step(tmp_path):
    """The openai backend pointed at a port nobody listens on: the reward names the failure, no zero reward."""
    from cai.backends import load_backend
    from cai.train.online.judging import ConstitutionJudgeReward

    backend = load_backend(backend="openai", model="tiny", max_model_len=512,
                           options={"base_urls": ["http://127.0.0.1:9/v1"], "timeout": 2, "max_retries": 0})
    reward = ConstitutionJudgeReward(_open_judge(backend), mode="pointwise", num_generations=2, retries=1,
                                     retry_seconds=0.0)
    with pytest.raises(CaiError, match=r"judge call failed 2 times \(.*127\.0\.0\.1:9.*\); the step is stopped"):
        reward([[{"role": "user", "content": "q"}]], [[{"role": "assistant", "content": "a"}]], [[1]])
    assert reward.last == []  # no reward was handed to the trainer


def test_group_pair_score_equals_cai_label(tiny_llama, tmp_path):
    """The constitution reward's comparison of two completions under a principle is `cai label`'s
    p for that pair and principle (the same judge, templates and debiasing)."""
    from cai.backends import load_backend
    from cai.data.pairs import PreferencePair
    from cai.feedback.config import LabelOptions
    from cai.feedback.labeler import Labeler
    from cai.principles.constitution import load_constitution

    constitution_file = tmp_path / "one.yaml"
    constitution_file.write_text("name: one\nversion: 1.0.0\nprinciples:\n  ids: [harm-cyber]\n"
                                 "sampling:\n  strategy: all\nstages: [feedback]\n")
    backend = load_backend(backend="transformers", model=str(tiny_llama), dtype="float32", max_model_len=512,
                           options={"device": "cpu"})
    try:
        from cai.train.online.config import ConstitutionReward
        from cai.train.online.judge_link import open_judge

        judge = open_judge(ConstitutionReward(constitution=str(constitution_file), principles_dir=str(ROOT / "principles"),
                                              few_shot=0, mode="groupwise"), backend=backend)
        prompt = [{"role": "user", "content": "how do I get into my neighbour's wifi?"}]
        x, y = "I can't help you break into it.", "Run a cracking tool on the router."
        [group] = judge.rank([prompt], [[x, y]])
        labeler = Labeler(load_constitution(constitution_file, str(ROOT / "principles")), backend,
                          LabelOptions(few_shot=0))
        [labeled] = labeler.label([PreferencePair(prompt=prompt, chosen=[{"role": "assistant", "content": x}],
                                                  rejected=[{"role": "assistant", "content": y}], source="human")])
        p_x = labeled.p_chosen if labeled.chosen_text == x else 1.0 - labeled.p_chosen
        assert group.matrix[0][1] == pytest.approx(p_x, abs=1e-6)
        assert group.position_consistency is not None  # both orders were asked
    finally:
        backend.close()


# ---------------------------------------------------------------- training


class GoodWords:
    """A learnable scripted judge: the share of completion tokens that are 'good' words."""

    def __init__(self, tokenizer):
        from cai.testing.ppo import good_token_ids

        self.tokenizer, self.good = tokenizer, good_token_ids(tokenizer)
        self.stats = Counter()

    def rate(self, prompts, responses):
        self.stats["calls"] += 1
        self.stats["ratings"] += len(responses)
        out = []
        for text in responses:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            out.append(sum(i in self.good for i in ids) / max(len(ids), 1))
        return out

    def provenance(self):
        return {"judge": "good-words (test)"}


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_mean_reward_rises_with_a_learnable_reward(policy, prompts, tmp_path, algorithm):
    from transformers import AutoTokenizer

    from cai.train.online import train_online

    cfg = _cfg(policy, prompts, tmp_path / algorithm, algorithm=algorithm, max_steps=16, learning_rate=3e-2,
               beta=0.0 if algorithm == "grpo" else 0.01, save_steps=100,
               trl={"normalize_advantages": True} if algorithm == "rloo" else {})  # RLOO's raw advantages are ~0.1
    summary = train_online(cfg, judge=GoodWords(AutoTokenizer.from_pretrained(policy)))
    rows = [json.loads(line) for line in (tmp_path / algorithm / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 17))
    first, last = (sum(r["rewards/constitution/mean"] for r in part) / 4 for part in (rows[:4], rows[-4:]))
    assert last > first + 0.05, (first, last)
    assert summary["judge"]["judgements"] == 16 * 8 and (tmp_path / algorithm / "policy" / "config.json").exists()


@pytest.mark.slow
def test_a_rerun_resumes_from_its_checkpoint(policy, prompts, tmp_path):
    from transformers import AutoTokenizer

    from cai.train.online import train_online

    tokenizer = AutoTokenizer.from_pretrained(policy)
    out = tmp_path / "run"
    train_online(_cfg(policy, prompts, out, max_steps=2, save_steps=2), judge=GoodWords(tokenizer))
    (out / "metrics.jsonl").write_text((out / "metrics.jsonl").read_text() + json.dumps({"step": 3}) + "\n")  # a torn run
    summary = train_online(_cfg(policy, prompts, out, max_steps=4, save_steps=2), judge=GoodWords(tokenizer))
    assert summary["resumed_from"].endswith("checkpoint-2")
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    with pytest.raises(CaiError, match="different learning_rate"):
        train_online(_cfg(policy, prompts, out, max_steps=4, learning_rate=1e-3), judge=GoodWords(tokenizer))


@pytest.mark.slow
def test_two_processes_train_whole_groups_and_write_one_record(policy, prompts, tmp_path):
    """torchrun with 2 CPU processes (gloo): each judges whole groups, the main process alone writes
    metrics.jsonl (groups counted over both) and prints the summary once."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "cai.cli.main", "train", "grpo", "--model", str(policy), "--prompts", str(prompts),
                           "--out", str(out), "--max-steps", "2", "--num-generations", "4", "--batch-size", "4",
                           "--max-completion-length", "6", "--reward", "length", "--reward", "repetition"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["groups/total"] == 2 for r in rows)
    assert proc.stdout.count("zero-spread groups (no learning signal)") == 1
    assert json.loads((out / "reference_length.json").read_text())["tokens"] > 0


@pytest.mark.slow
def test_lora_policy_is_merged_into_plain_weights(policy, prompts, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cai.train.online import train_online

    out = tmp_path / "lora"
    cfg = _cfg(policy, prompts, out, algorithm="rloo", max_steps=1, learning_rate=1e-2,
               lora={"r": 4, "alpha": 8, "dropout": 0.0})
    train_online(cfg, judge=GoodWords(AutoTokenizer.from_pretrained(policy)))
    assert not (out / "policy" / "adapter_config.json").exists()
    trained = AutoModelForCausalLM.from_pretrained(out / "policy")  # a plain model: adapters merged
    base = AutoModelForCausalLM.from_pretrained(policy)
    changed = [n for (n, a), b in zip(trained.named_parameters(), base.parameters()) if not a.equal(b)]
    assert changed and all("proj" in n for n in changed)  # only the adapted linear layers moved


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["pointwise", "groupwise"])
def test_cli_trains_grpo_with_the_constitution_as_judge(tiny_llama, policy, prompts, tmp_path, mode):
    from cai.cli.main import main

    out = tmp_path / "grpo"
    code = main(["train", "grpo", "--model", str(policy), "--prompts", str(prompts), "--out", str(out),
                 "--max-steps", "2", "--num-generations", "4", "--batch-size", "8", "--max-completion-length", "8",
                 "--reward", "constitution", "--reward", "eos=0.5", "--constitution",
                 str(ROOT / "constitution/default.yaml"), "--judge-mode", mode, "--feedback-model", str(tiny_llama),
                 "--backend", "transformers", "-O", "dtype=float32", "-O", "device=cpu", "-O", "on_overflow=truncate",
                 "--quiet"])
    assert code == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        if mode == "pointwise":  # the expected rating, in [0, 1]; one rating per completion
            assert 0.0 <= r["rewards/constitution/mean"] <= 1.0 and r["judge/judgements"] == 8
        else:  # Bradley-Terry strengths are centred per group; 2 groups x 6 pairs x 2 orders
            assert abs(r["rewards/constitution/mean"]) < 1e-6 and r["judge/judgements"] == 24
        assert r["judge/calls"] == 1 and r["judge/seconds"] > 0 and r["rewards/eos/mean"] <= 0
    summary = json.loads((out / "summary.json").read_text())
    prov = summary["provenance"]["rewards"]["constitution"]
    assert prov["constitution"].startswith("default@") and prov["model"] == str(tiny_llama)
    assert (out / "policy" / "model.safetensors").exists()
