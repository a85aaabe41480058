"""`cai train grpo` and `cai train rloo`: TRL's GRPO/RLOO with cai's reward functions. Parses
flags, calls :func:`cai.train.online.train_online`."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, merge_overrides, validate_config
from cai.core.errors import CaiError


def _command(algorithm: str):
    def command(
        prompts: Optional[str] = typer.Option(None, help="Prompts: JSONL, CSV, an HF dataset folder or HH transcripts."),
        prompt_format: Optional[str] = typer.Option(None, help="Prompt file format: auto, jsonl, csv, hf or hh."),
        prompt_column: Optional[str] = typer.Option(None, help="Column with the prompt text (default: prompt; a messages column is used when present)."),
        id_column: Optional[str] = typer.Option(None, help="Column with stable prompt ids (default: content hash)."),
        system_prompt: Optional[str] = typer.Option(None, help="A system message put before every prompt."),
        model: Optional[str] = typer.Option(None, help="Policy: folder, hub id, .gguf file or known name; the reference is a frozen copy."),
        out: Optional[str] = typer.Option(None, help="Output folder (rerun the same command to resume)."),
        reward: list[str] = typer.Option([], "--reward", help="Reward source NAME or NAME=WEIGHT (repeatable): constitution, reward-model, guard=PATH (a cai guard train folder), length, eos, repetition."),
        constitution: Optional[str] = typer.Option(None, help="Constitution of the constitution reward (YAML or a name under constitution/)."),
        principles_dir: Optional[str] = typer.Option(None, help="Principles folder of the constitution reward."),
        judge_mode: Optional[str] = typer.Option(None, "--judge-mode", help="pointwise (rate each completion) or groupwise (compare the K completions)."),
        feedback_model: Optional[str] = typer.Option(None, help="Judge model (default: smollm2-135m-instruct)."),
        backend: str = typer.Option("auto", help="Judge backend: auto, vllm, transformers or openai."),
        backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value judge backend option (repeatable)."),
        min_label_mass: Optional[float] = typer.Option(None, help="Label-mass floor of the judge (default: CAI_MIN_LABEL_MASS or 0.1); a judgement below it stops the step."),
        judge_health: Optional[str] = typer.Option(None, "--judge-health", help="warn (default) or error: what an unhealthy judge does."),
        reward_model: Optional[str] = typer.Option(None, help="Reward model folder (`cai train reward`) for the reward-model reward."),
        max_steps: Optional[int] = typer.Option(None, help="Optimizer steps."),
        num_generations: Optional[int] = typer.Option(None, help="Completions per prompt (the group)."),
        batch_size: Optional[int] = typer.Option(None, help="Completions per process per step (a multiple of --num-generations)."),
        beta: Optional[float] = typer.Option(None, help="KL coefficient to the reference (0: none)."),
        learning_rate: Optional[float] = typer.Option(None, help="AdamW learning rate."),
        max_completion_length: Optional[int] = typer.Option(None, help="Most tokens per completion."),
        seed: Optional[int] = typer.Option(None, help="Seed."),
        quiet: Optional[bool] = typer.Option(None, "--quiet/--no-quiet", help="No per-step lines."),
        config: Optional[str] = typer.Option(None, "--config", help="YAML recipe; flags override it."),
    ) -> None:
        from cai.train.online import OnlineConfig, train_online
        from cai.train.online.summary import print_run_summary

        data = load_yaml_config(config)
        if data.get("algorithm", algorithm) != algorithm:
            raise CaiError(f"algorithm: the recipe says {data['algorithm']}, the command is `cai train {algorithm}`",
                           path=config)
        data["algorithm"] = algorithm
        merge_overrides(data, {"prompts": prompts, "prompt_format": prompt_format, "prompt_column": prompt_column,
                               "id_column": id_column, "system_prompt": system_prompt, "model": model, "out": out, "max_steps": max_steps,
                               "num_generations": num_generations, "batch_size": batch_size, "beta": beta,
                               "learning_rate": learning_rate, "max_completion_length": max_completion_length,
                               "seed": seed, "quiet": quiet, "rewards": reward or None})
        for block in ("constitution", "reward_model"):
            if not isinstance(data.get(block, {}), dict):
                data[block] = {}  # let validation name the field
        merge_overrides(data.setdefault("constitution", {}), {"constitution": constitution, "mode": judge_mode,
                                                                "principles_dir": principles_dir,
                                                                "min_label_mass": min_label_mass,
                                                                "judge_health": judge_health})
        merge_overrides(data.setdefault("reward_model", {}), {"path": reward_model})
        if feedback_model or backend_option or backend != "auto" or "feedback" in data["constitution"]:
            data["constitution"]["feedback"] = backend_config(data["constitution"].get("feedback"), backend,
                                                              feedback_model, backend_option, required=True)
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
