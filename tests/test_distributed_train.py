"""Training across processes gives one process's numbers: PPO whitening and gradient accumulation,
held-out reward evaluation. Each case runs under ``torchrun`` (gloo, CPU) with 2 processes and with
1 process on the same fixed batch (tests/distributed_cases.py) and compares the two."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
pytestmark = pytest.mark.slow


def torchrun(case: str, out: Path, nproc: int, *extra: str) -> list[dict]:
    """Run the case under torchrun; the JSON each process wrote, in rank order."""
    target = out / f"n{nproc}"
    target.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           str(HERE / "distributed_worker.py"), case, str(target), *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((target / f"{case}-{r}.json").read_text()) for r in range(nproc)]


def test_advantage_whitening_uses_every_process(tmp_path):
    [one] = torchrun("whiten", tmp_path, 1)
    shares = torchrun("whiten", tmp_path, 2)
    two = {**shares[0], **shares[1]}
    assert sorted(two) == sorted(one)
    for row in one:
        assert two[row] == pytest.approx(one[row], abs=1e-5), row
    # Each share whitened by its own statistics would not match (the rows differ in mean).
    import torch

    import distributed_cases as cases
    from cai.train.ppo.advantages import masked_whiten

    b = cases.batch()
    alone = masked_whiten(b["x"][0::2], b["mask"][0::2])
    assert alone[0].tolist() != pytest.approx(one["0"], abs=1e-3)
    assert torch.isfinite(alone).all()


def test_ppo_update_weights_every_token_equally(tmp_path):
    """One optimizer step with 2 accumulation micro-batches of unequal token counts: 2 processes
    (4 rows each) end with the parameters of 1 process (8 rows)."""
    [one] = torchrun("ppo_update", tmp_path, 1)
    two = torchrun("ppo_update", tmp_path, 2)
    assert two[0]["params"] == pytest.approx(two[1]["params"], abs=1e-7)  # DDP kept ranks in step
    assert two[0]["params"] == pytest.approx(one["params"], abs=1e-5)
    import distributed_cases as cases

    start = [p for p in cases.ToyPolicyValue().parameters()]
    moved = sum(abs(a - b) for a, b in zip(one["params"], [x for p in start for x in p.detach().flatten().tolist()]))
    assert moved > 1e-2  # the step did change the weights


@pytest.fixture(scope="module")
def tiny_rm(tiny_llama, tmp_path_factory):
    """The tiny Llama with a reward head (seeded), saved so every process loads the same weights."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model.config.pad_token_id = tokenizer.pad_token_id
    rm = tmp_path_factory.mktemp("rm") / "model"
    model.save_pretrained(rm)
    tokenizer.save_pretrained(rm)
    return rm


@pytest.mark.train
def test_reward_step_weights_pairs_across_micro_batches_and_processes(tmp_path, tiny_rm):
    """One SGD step on 8 weighted pairs: 1 process with all 8 in one batch, 1 process with 4
    accumulation micro-batches of 2, and 2 processes x 2 micro-batches of 2 all land on the same
    weights (the step's weighted mean over all 8 pairs, not a mean of micro-batch means)."""
    [one] = torchrun("reward_step", tmp_path, 1, str(tiny_rm))
    [accum] = torchrun("reward_step_accum", tmp_path, 1, str(tiny_rm))
    two = torchrun("reward_step", tmp_path, 2, str(tiny_rm))
    assert two[0]["processes"] == 2 and two[0]["sampled"] == 2 and accum["sampled"] == 4
    for other in (accum, two[0]):
        assert other["params_head"] == pytest.approx(one["params_head"], abs=1e-5)
        assert other["param_sum"] == pytest.approx(one["param_sum"], abs=1e-3)
        assert other["loss"] == pytest.approx(one["loss"], abs=1e-5)


def test_held_out_reward_eval_spans_processes(tmp_path, tiny_rm):
    """Every process scores a share with the DDP-wrapped model; all get the whole set's metrics."""
    rm = tiny_rm
    [one] = torchrun("reward_eval", tmp_path, 1, str(rm))
    two = torchrun("reward_eval", tmp_path, 2, str(rm))
    assert one["all"]["n"] == 7 and two[0]["all"]["n"] == two[1]["all"]["n"] == 7
    assert one["sequences_scored"] == 14
    # Each process scored its share (4 pairs, one a padding repeat) in as many forward passes as
    # the other: what FSDP / ZeRO-3, whose forward passes are collective, need.
    assert [m["sequences_scored"] for m in two] == [8, 8]
    assert two[0]["forward_passes"] == two[1]["forward_passes"]
    for metrics in two:
        assert metrics["all"]["margin"] == pytest.approx(one["all"]["margin"], abs=1e-5)
        assert metrics["all"]["accuracy"] == one["all"]["accuracy"]
        assert metrics["by_source"]["human"]["loss"] == pytest.approx(one["by_source"]["human"]["loss"], abs=1e-5)


@pytest.mark.parametrize("name, kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("zero2", "DEEPSPEED"),
                                        ("zero3", "DEEPSPEED")])
def test_accelerate_configs_load(name, kind):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(REPO / "recipes" / "accelerate" / f"{name}.yaml"))
    assert config.distributed_type == kind and config.mixed_precision == "bf16"
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == int(name[-1])



def test_online_rewards_of_two_processes_equal_one(tmp_path):
    """GRPO/RLOO rewards: each process judges its whole groups; the length guard's reference length
    is the mean over both processes' first batch, so every completion gets the reward one process gives it."""
    [one] = torchrun("online_rewards", tmp_path, 1)
    two = torchrun("online_rewards", tmp_path, 2)
    merged = {**two[0], **two[1]}
    assert set(two[0]).isdisjoint(two[1]) and merged.keys() == one.keys()
    for row, (judge, length) in one.items():
        assert merged[row] == pytest.approx([judge, length], abs=1e-9)
    assert any(length < 0 for _, length in one.values())  # the guard bites, so L_ref matters
