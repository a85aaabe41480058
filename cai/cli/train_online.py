"""`cai train grpo` and `cai train rloo`: TRL's GRPO/RLOO with cai's reward functions. Parses
flags, calls :func:`cai.train.online.train_online`."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.cli.train_ppo import MONITOR_FIELDS, MONITOR_FLAGS, POLICY_FIELDS, PROMPT_FIELDS
from cai.core.errors import CaiError
from cai.train.online.config import OnlineConfig

_ONLINE_FIELDS = [
    *PROMPT_FIELDS, *POLICY_FIELDS, "guard_model", "num_generations", "batch_size", "beta", "learning_rate",
    "max_completion_length", "save_steps", "dtype", "min_judge_rm_corr", "min_judge_spread",
]
_NESTED = {
    "constitution": ["constitution", "principles_dir", "mode", "scale", "group_score", "principles_per_completion",
                     "few_shot", "seed", "retries", "retry_seconds", "min_label_mass", "judge_health"],
    "reward_model": ["path", "max_length", "batch_size"],
    "guards": ["length_ratio", "eos_penalty", "ngram", "min_distinct"],
    "monitor": MONITOR_FIELDS,
}
_FLAGS = {
    "constitution.mode": "--judge-mode", "constitution.seed": "--constitution-seed",
    "reward_model.path": "--reward-model", "reward_model.max_length": "--reward-model-max-length",
    "reward_model.batch_size": "--reward-model-batch-size",
    "guards.ngram": "--guards-ngram", "guards.min_distinct": "--guards-min-distinct",
    **MONITOR_FLAGS,
}


def _command(algorithm: str):
    @takes_fields(OnlineConfig, _ONLINE_FIELDS, nested=_NESTED, flags=_FLAGS, prefixed=("monitor",))
    def command(
        reward: list[str] = typer.Option([], "--reward", help="Reward source NAME or NAME=WEIGHT (repeatable): constitution, reward-model, guard=PATH (a cai guard train folder), length, eos, repetition (default: constitution)."),
        feedback_model: Optional[str] = typer.Option(None, help="Judge model of the constitution reward (default: smollm2-135m-instruct)."),
        backend: str = typer.Option("auto", help="Judge backend: auto, vllm, transformers or openai."),
        backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value judge backend option (repeatable)."),
        config: Optional[str] = typer.Option(None, "--config", help="YAML recipe; flags override it."),
        *, fields: dict,
    ) -> None:
        from cai.train.online import train_online
        from cai.train.online.summary import print_run_summary

        data = load_yaml_config(config)
        if data.get("algorithm", algorithm) != algorithm:
            raise CaiError(f"algorithm: the recipe says {data['algorithm']}, the command is `cai train {algorithm}`",
                           path=config)
        data["algorithm"] = algorithm
        for block in ("constitution", "reward_model", "guards", "monitor"):
            if not isinstance(data.get(block, {}), dict):
                data[block] = {}  # let validation name the field
        apply_fields(data, fields)
        if reward:
            data["rewards"] = list(reward)  # --reward NAME=WEIGHT: the field's text form, parsed by the model
        if feedback_model or backend_option or backend != "auto" or "feedback" in data.get("constitution", {}):
            judge = data.setdefault("constitution", {})
            judge["feedback"] = backend_config(judge.get("feedback"), backend, feedback_model, backend_option,
                                               required=True)
        try:
            cfg = validate_config(OnlineConfig, data, config)
        except ValueError as exc:  # a --reward that does not parse
            raise CaiError(str(exc).splitlines()[0], path=config) from None
        summary = train_online(cfg)
        from accelerate import PartialState

        if PartialState().is_main_process:  # one summary under torchrun / accelerate launch
            print_run_summary(summary)

    command.__doc__ = {
        "grpo": "GRPO (TRL GRPOTrainer): group-normalised advantages over K completions per prompt, rewarded by the "
                "constitution as judge, a reward model and guards.",
        "rloo": "RLOO (TRL RLOOTrainer): a leave-one-out baseline over K completions per prompt, rewarded by the "
                "constitution as judge, a reward model and guards.",
    }[algorithm]
    command.__name__ = algorithm
    return command


grpo = _command("grpo")
rloo = _command("rloo")
