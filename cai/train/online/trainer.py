"""`cai train grpo|rloo`: TRL's GRPOTrainer / RLOOTrainer with cai's reward functions and monitor.

The trainer is TRL's; cai supplies the prompts (read as `cai generate` reads them), the reward
functions (:mod:`~cai.train.online.rewards`, :mod:`~cai.train.online.judging`), the TRL config
(CPU-safe), the per-step record and monitor (:mod:`~cai.train.online.callback`), resuming, and
the saved policy with its summary and provenance.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from cai.core.errors import CaiError, require
from cai.train.online.config import OnlineConfig


def prompt_dataset(cfg: OnlineConfig, model_path: str, funcs: list = (), quiet: bool = False, read: list | None = None):
    """The prompts as a TRL conversational dataset (one ``prompt`` column of chat messages) and the
    chat-template report: every prompt is checked, before the first rollout, against the policy's
    template and each reward model's (with a response), as PPO checks them
    (:mod:`cai.train.templates`): a refused system turn is merged, other refusals are left out, and
    so is a prompt that leaves no room for ``max_completion_length`` in the policy's context.
    ``read``: the prompt rows already read (:func:`read_prompts`)."""
    from datasets import Dataset

    from cai.backends.base import PromptRejected
    from cai.backends.chat import apply_template
    from cai.data.prompts import PromptReader
    from cai.train.online.rewards import RewardModelScore
    from cai.train.templates import template_rows, trainer_tokenizer

    if read is None:
        read = read_prompts(cfg)
    if not read:
        raise CaiError("no prompts", path=cfg.prompts)
    scorers = [f for f in funcs if isinstance(f, RewardModelScore)]

    tokenizer, template = trainer_tokenizer(model_path, cfg.trl)
    context = policy_context(model_path)

    def takes(row: dict) -> None:
        for f in scorers:
            apply_template(f.tokenizer, row["prompt"] + [{"role": "assistant", "content": "ok"}], tokenize=False)
        if context is not None:  # TRL does not cut prompts: one too long would fail a step hours in
            text = apply_template(tokenizer, row["prompt"], template, tokenize=False, add_generation_prompt=True)
            n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
            if n + cfg.max_completion_length > context:
                raise PromptRejected(f"prompt has {n} tokens, more than the {context - cfg.max_completion_length} "
                                     f"that leave max_completion_length ({cfg.max_completion_length}) in the "
                                     f"policy's context of {context}")

    rows, report = template_rows([{"prompt": r.messages} for r in read], [r.source for r in read], tokenizer,
                                 "prompt", template=template, also=takes, path=cfg.prompts, quiet=quiet)
    return Dataset.from_list(rows), report


def read_prompts(cfg: OnlineConfig) -> list:
    """Every prompt row of ``cfg.prompts`` (:class:`cai.data.prompts.PromptReader`)."""
    return list(cfg.reader())


def check_fills_a_step(n: int, cfg: OnlineConfig, args, what: str = "") -> None:
    """Refuse, before any model loads, prompts too few to fill one step: TRL's sampler takes
    ``generation_batch_size / num_generations`` distinct prompts per generation and drops a smaller
    remainder, so with fewer it takes no step at all and ends as if it had trained (trl#3020).
    ``n``: the prompt rows; ``what``: how they were counted (for the message). Raises CaiError."""
    if n == 0 and not what:
        raise CaiError("no prompts", path=cfg.prompts)
    batch = int(getattr(args, "generation_batch_size", None) or cfg.batch_size)
    need = max(batch // cfg.num_generations, 1)
    if n < need:
        raise CaiError(f"{n} prompt{'s' if n != 1 else ''}{what}, but one step needs {need} distinct prompts "
                       f"({batch} completions per generation / num_generations {cfg.num_generations}); TRL would "
                       "take no step and save the untrained policy. Add prompts, or lower batch_size"
                       + (f" to {n * cfg.num_generations}" if n and batch == cfg.batch_size else ""), path=cfg.prompts)


def forget_stepless_attempt(out: Path) -> bool:
    """An earlier attempt in ``out`` that never reached a checkpoint (it failed or was stopped before
    ``save_steps``) left its ``run.json`` but nothing to resume: drop it (and the length reference it
    measured), so a corrected rerun is not refused as "a run with a different ...". Takes the run
    folder's lock first. Returns True when something was dropped."""
    from cai.core.runs import lock_run

    if not (out / "run.json").is_file() or last_checkpoint(str(out)) is not None or (out / "policy").exists():
        return False
    lock_run(out)
    for name in ("run.json", "reference_length.json"):
        (out / name).unlink(missing_ok=True)
    return True


def policy_context(model_path: str) -> int | None:
    """The policy's context in tokens (``max_position_embeddings``), None when its config does not say."""
    from transformers import AutoConfig

    try:
        value = getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, int) and value > 0 else None


def trl_args(cfg: OnlineConfig, weights: list[float]):
    """TRL's GRPOConfig/RLOOConfig for ``cfg``; ``trl:`` keys last, then CPU safety without CUDA."""
    from trl import GRPOConfig, RLOOConfig

    from cai.train.config import build_trl_config, check_trl_keys

    cls = GRPOConfig if cfg.algorithm == "grpo" else RLOOConfig
    check_trl_keys(cfg, cls)
    kw: dict[str, Any] = dict(
        output_dir=cfg.out, max_steps=cfg.max_steps, per_device_train_batch_size=cfg.batch_size,
        num_generations=cfg.num_generations, beta=cfg.beta, learning_rate=cfg.learning_rate,
        max_completion_length=cfg.max_completion_length, temperature=cfg.temperature, seed=cfg.seed,
        logging_steps=1, save_strategy="steps", save_steps=cfg.save_steps, report_to="none", disable_tqdm=True,
        reward_weights=weights,
    )
    if cfg.dtype is not None:
        kw["model_init_kwargs"] = {"dtype": cfg.dtype}
    return build_trl_config(cls, kw, cfg.trl)


def eos_ids(model_path: str) -> set[int]:
    """End-of-turn token ids of the policy: its tokenizer's EOS and its generation config's."""
    from transformers import AutoTokenizer, GenerationConfig

    ids = {AutoTokenizer.from_pretrained(model_path).eos_token_id}
    try:
        eos = GenerationConfig.from_pretrained(model_path).eos_token_id
        ids |= set(eos if isinstance(eos, list) else [eos])
    except OSError:
        pass
    return {i for i in ids if i is not None}


def build_rewards(cfg: OnlineConfig, model_path: str, judge=None) -> list:
    """The reward functions of ``cfg.rewards``, in order. ``judge`` may pass an opened judge."""
    from cai.train.online import rewards as R
    from cai.train.online.judging import ConstitutionJudgeReward

    out: list = []
    for spec in cfg.rewards:
        if spec.name == "constitution":
            if judge is None:
                from cai.train.online.judge_link import open_judge

                judge = open_judge(cfg.constitution)
            c = cfg.constitution
            out.append(ConstitutionJudgeReward(judge, mode=c.mode, num_generations=cfg.num_generations,
                                               retries=c.retries,
                                               retry_seconds=c.retry_seconds))
        elif spec.name == "reward-model":
            rm = cfg.reward_model
            out.append(R.RewardModelScore(rm.path, max_length=rm.max_length, batch_size=rm.batch_size))
        elif spec.name == "guard":
            out.append(R.GuardClassifierReward(cfg.guard_model))
        elif spec.name == "eos":
            out.append(R.EndOfTurnGuard(eos_ids(model_path), cfg.guards.eos_penalty))
        elif spec.name == "repetition":
            out.append(R.RepetitionGuard(cfg.guards.ngram, cfg.guards.min_distinct))
        else:
            ref = Path(cfg.out) / "reference_length.json"
            known = json.loads(ref.read_text())["tokens"] if ref.exists() else None
            out.append(R.LengthGuard(cfg.guards.length_ratio, known,
                                     on_reference=lambda n, ref=ref: _write_reference(ref, n)))
    return out


def _write_reference(path: Path, tokens: float) -> None:
    """Keep L_ref beside the checkpoints (every process measured the same value; the main one writes)."""
    from accelerate import PartialState

    from cai.core.runs import write_atomic

    if PartialState().is_main_process:
        write_atomic(path, [json.dumps({"tokens": tokens}) + "\n"])


def _close_judges(funcs: list, judge) -> None:
    """Free the backend of a judge this run opened (not one passed in)."""
    if judge is None:
        for f in funcs:
            if (close := getattr(getattr(f, "judge", None), "close", None)) is not None:
                close()


def last_checkpoint(out: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(out) if Path(out).is_dir() else None


def train_online(cfg: OnlineConfig, *, judge=None, callbacks: list | None = None) -> dict:
    """Train ``cfg.model`` with GRPO or RLOO against ``cfg.rewards``; returns the summary (also
    ``OUT/summary.json``). Rerunning the same config resumes from the newest ``OUT/checkpoint-*``
    (``metrics.jsonl`` is cut back to that step). ``judge`` may pass an opened judge (tests)."""
    require("trl", extra="train", purpose=f"cai train {cfg.algorithm}")
    from cai.core.errors import quiet_trl_vllm_range

    quiet_trl_vllm_range()  # GRPO/RLOO are where TRL checks vLLM (five warnings a run): one note instead
    from accelerate import PartialState
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer, RLOOTrainer

    from cai.core.runs import check_resume, write_json
    from cai.models import resolve_model
    from cai.train.config import peft_config
    from cai.train.online.callback import OnlineMonitor
    from cai.train.online.summary import summarize_run
    from cai.train.ppo.metrics import MetricsLog
    from cai.train.run import save_model

    out = Path(cfg.out)
    args = trl_args(cfg, [r.weight for r in cfg.rewards])  # sets up the distributed state (gloo on CPU)
    state = PartialState()
    read = read_prompts(cfg)
    check_fills_a_step(len(read), cfg, args)  # before the judge, the policy or a run folder
    if state.is_main_process:
        if forget_stepless_attempt(out) and not cfg.quiet:
            print(f"note: {out} held an attempt that reached no checkpoint; starting afresh", file=sys.stderr)
        check_resume(out, cfg.identity())
    model_path = resolve_model(cfg.model)
    funcs = build_rewards(cfg, model_path, judge)
    try:
        dataset, checked = prompt_dataset(cfg, model_path, funcs, quiet=not state.is_main_process, read=read)
        if len(dataset) < len(read):
            check_fills_a_step(len(dataset), cfg, args, what=f" of {len(read)} left after the template checks")
    except BaseException:
        _close_judges(funcs, judge)
        raise
    log = MetricsLog(out / "metrics.jsonl")
    monitor = OnlineMonitor(cfg, funcs, log, world_size=state.num_processes,
                            generation_batch=getattr(args, "generation_batch_size", None))
    resume = last_checkpoint(cfg.out)
    if resume is not None:
        step = int(Path(resume).name.split("-")[-1])
        if state.is_main_process:
            log.truncate(step)
        monitor.replay(log.read()[:step])
    elif state.is_main_process:
        log.truncate(0)
    provenance = {f.name: f.judge.provenance() for f in funcs if getattr(f, "judge", None) is not None}
    cls = GRPOTrainer if cfg.algorithm == "grpo" else RLOOTrainer
    lora = peft_config(cfg, "CAUSAL_LM") if cfg.lora else None
    trainer = cls(model=model_path, reward_funcs=funcs, args=args, train_dataset=dataset, peft_config=lora,
                  callbacks=[monitor, *(callbacks or [])])
    trainer.remove_callback(PrinterCallback)  # the monitor prints one line per step
    done = resume is not None and step >= cfg.max_steps  # a finished run rerun: Trainer would take one more step
    try:
        if done:
            trainer._load_from_checkpoint(resume)  # the policy as trained, saved again below
        else:
            trainer.train(resume_from_checkpoint=resume)
    finally:
        _close_judges(funcs, judge)
    if not done and trainer.state.global_step <= (step if resume is not None else 0):
        raise CaiError(f"cai train {cfg.algorithm} took no optimizer step (TRL's sampler found no full batch of "
                       "prompts); no policy was saved", path=cfg.prompts)
    policy = out / "policy"
    save_model(trainer, str(policy))
    summary = summarize_run(cfg, log.read(), funcs, resumed_from=resume)
    summary["provenance"] = {"policy": model_path, "rewards": provenance}
    summary["chat_template"] = checked
    summary["trl"] = dict(cfg.trl)  # the TRL fields the recipe set beyond cai's (none of cai's own)
    if state.is_main_process:
        write_json(out / "summary.json", summary)
    return summary
