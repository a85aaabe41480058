"""The SL-CAI exports train unchanged with TRL's SFT, DPO and reward trainers (one step each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cai.sl import run_generate
from sl_helpers import EchoCritic
from test_generate import config, write_prompts

pytest.importorskip("trl")
pytestmark = [pytest.mark.train, pytest.mark.slow]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    prompts = write_prompts(tmp / "p.jsonl", 4)
    backend = EchoCritic()
    run_generate(config(tmp, prompts), backends=(backend, backend))
    return tmp / "run"


@pytest.fixture(scope="module")
def tiny_path(tiny_llama):
    return str(tiny_llama)


def _common(tmp: Path) -> dict:
    return dict(output_dir=str(tmp), max_steps=1, per_device_train_batch_size=2, use_cpu=True, bf16=False,
                report_to=[], save_strategy="no", logging_steps=1, learning_rate=1e-4)


def _train_one_step(trainer) -> None:
    result = trainer.train()
    assert result.global_step == 1
    assert result.training_loss == result.training_loss  # not NaN


def test_sft_on_export(run_dir, tiny_path, tmp_path):
    from datasets import load_from_disk
    from trl import SFTConfig, SFTTrainer

    ds = load_from_disk(str(run_dir / "sft" / "hf"))
    trainer = SFTTrainer(model=tiny_path, args=SFTConfig(**_common(tmp_path), max_length=256), train_dataset=ds)
    _train_one_step(trainer)


def test_dpo_on_export(run_dir, tiny_path, tmp_path):
    from datasets import load_from_disk
    from trl import DPOConfig, DPOTrainer

    ds = load_from_disk(str(run_dir / "preferences" / "hf"))
    trainer = DPOTrainer(model=tiny_path, args=DPOConfig(**_common(tmp_path), max_length=256), train_dataset=ds)
    _train_one_step(trainer)


def test_reward_on_export(run_dir, tiny_path, tmp_path):
    from datasets import load_from_disk
    from trl import RewardConfig, RewardTrainer

    ds = load_from_disk(str(run_dir / "preferences" / "hf"))
    trainer = RewardTrainer(model=tiny_path, args=RewardConfig(**_common(tmp_path), max_length=256), train_dataset=ds)
    _train_one_step(trainer)
