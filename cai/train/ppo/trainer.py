"""The PPO loop: rollout → rewards with a KL penalty → GAE → clipped updates → metrics → checkpoint.

Each step, read top to bottom in :meth:`PPOTrainer.step`:

1. sample one response per prompt (``generate``, seeded by seed/step/process);
2. score it: log-probabilities under the policy and the frozen reference, values, reward-model score;
3. per-token reward = −β·KL_t (policy‖reference), plus the (shaped) score on the last token;
4. advantages by GAE(γ, λ), whitened; returns = advantages + values;
5. ``ppo_epochs`` passes over shuffled minibatches: clipped policy loss + vf_coef·clipped value
   loss − entropy_coef·entropy, AdamW with gradient clipping (and optional accumulation; every
   token of the minibatch on every process weighs the same);
6. the KL controller updates β from this step's KL (mean over all processes);
7. metrics (gathered across processes) go to ``metrics.jsonl``, the live display and the monitor;
8. a checkpoint every ``save_every`` steps and after the last one.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import torch

from cai.core.errors import CaiError
from cai.train.ppo import checkpoint
from cai.train.ppo.advantages import gae, masked_mean, masked_whiten
from cai.train.ppo.config import PPOConfig
from cai.train.ppo.data import PromptOrder, load_prompt_rows, usable_prompts
from cai.train.ppo.kl import kl_per_token, make_controller
from cai.train.ppo.losses import logprobs_and_entropy, policy_loss, value_loss
from cai.train.ppo.metrics import LiveDisplay, MetricsLog, print_summary, summarize
from cai.train.ppo.models import PolicyWithValueHead, load_causal_lm, load_tokenizer, stop_token_ids
from cai.train.ppo.monitor import RewardHackingMonitor, repetition_stats
from cai.train.ppo.rewards import shape_scores, token_rewards
from cai.train.ppo.rollout import Rollout, encode_prompts, generate, prompt_budget, score_rollout
from cai.train.ppo.scoring import RewardScorer

log = logging.getLogger("cai.train.ppo")


def _seed(*parts: int) -> int:
    """A 63-bit seed from integers (seed, step, process, purpose), stable across runs."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFFFFFF)) * 1099511628211) % (1 << 63)
    return h


def _has_accelerator() -> bool:
    probe = getattr(torch, "accelerator", None)
    return bool(probe.is_available()) if probe is not None else torch.cuda.is_available()


class PPOTrainer:
    def __init__(self, cfg: PPOConfig, accelerator=None):
        from accelerate import Accelerator
        from transformers import GenerationConfig

        self.cfg = cfg
        # cpu=True without an accelerator: that is what makes accelerate use gloo under torchrun.
        self.acc = accelerator or Accelerator(cpu=cfg.cpu or not _has_accelerator(), mixed_precision=cfg.mixed_precision)
        self.out = Path(cfg.out)
        rows = load_prompt_rows(cfg)  # before any model: bad input fails fast

        device = self.acc.device
        self.tokenizer = load_tokenizer(cfg.model, padding_side="left")
        policy = load_causal_lm(cfg.model, "float32")
        self.saved_generation_config = policy.generation_config
        self.stop_ids = stop_token_ids(policy, self.tokenizer)
        # A fresh generation config: the model's own may carry repetition penalties or top-k that
        # would make the sampler differ from the distribution PPO optimises.
        self.generation_config = GenerationConfig(
            do_sample=True, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k,
            top_p=cfg.top_p, eos_token_id=self.stop_ids, pad_token_id=self.tokenizer.pad_token_id,
            bos_token_id=self.tokenizer.bos_token_id)
        policy.generation_config = self.generation_config
        self.max_prompt_length = prompt_budget(policy.config, cfg.max_prompt_length, cfg.max_new_tokens, cfg.model)
        for warning in cfg.sampling_warnings() if self.acc.is_main_process else []:
            log.warning(warning)
        torch.manual_seed(_seed(cfg.seed, 0, 0, 1))  # value head initialisation
        model = PolicyWithValueHead(policy, cfg.value_head_init_std)
        self.ref_model = load_causal_lm(cfg.model, cfg.dtype).to(device).requires_grad_(False)
        self.scorer = RewardScorer(cfg.reward_model, device, cfg.dtype, cfg.reward_max_length)
        self.prompts, self.rejected_prompts = usable_prompts(rows, self.tokenizer, self.scorer)  # before a rollout
        for why in self.rejected_prompts[:20] if self.acc.is_main_process else []:
            log.warning("prompt left out: %s", why)
        if not self.prompts:
            raise CaiError(f"no prompt is usable: the chat templates rejected all {len(rows)} "
                           f"(first: {self.rejected_prompts[0]})", path=cfg.prompts)
        self.order = PromptOrder(len(self.prompts), cfg.seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, eps=cfg.adam_eps,
                                      weight_decay=cfg.weight_decay)
        self.model, self.optimizer = self.acc.prepare(model, optimizer)
        self.model.eval()  # dropout off; gradients flow regardless

        self.kl_ctl = make_controller(cfg.kl)
        bound = cfg.kl.max_kl or (cfg.kl.warn_factor * cfg.kl.target if cfg.kl.controller == "adaptive" else None)
        self.monitor = RewardHackingMonitor(cfg.monitor, bound)
        self.metrics = MetricsLog(self.out / "metrics.jsonl")
        self.display = LiveDisplay(cfg.max_steps, 0, enabled=False)

    # ------------------------------------------------------------------ one PPO step
    def step(self, step: int) -> dict:
        cfg, acc = self.cfg, self.acc
        t0 = time.perf_counter()
        idx = self.order.indices(step, cfg.batch_size, acc.process_index, acc.num_processes)
        prompts = [self.prompts[i] for i in idx]
        query, query_mask = encode_prompts(self.tokenizer, prompts, self.max_prompt_length, acc.device)
        policy = acc.unwrap_model(self.model).policy
        response = generate(policy, query, query_mask, cfg, self.generation_config,
                            _seed(cfg.seed, step, acc.process_index, 2))
        t_gen = time.perf_counter()
        ro = score_rollout(self.model, self.ref_model, self.scorer, prompts, self.tokenizer, query, query_mask,
                           response, self.stop_ids, cfg, acc.autocast)
        t_rollout = time.perf_counter()

        # Rewards: −β·KL per token, plus the shaped reward-model score on each response's last token.
        beta = self.kl_ctl.beta
        kl = kl_per_token(ro.logprobs, ro.ref_logprobs, cfg.kl.estimator) * ro.mask          # (B, T)
        scores = shape_scores(ro.raw_scores, ro.ended, cfg.score_scale, cfg.missing_eos_penalty, cfg.score_clip)  # (B,)
        rewards = token_rewards(kl, scores, ro.mask, beta)                                     # (B, T)
        # Whitening statistics are those of every process's tokens together (one batch, not N).
        if cfg.whiten_rewards:
            rewards = masked_whiten(rewards, ro.mask, shift_mean=False, reduce_sum=self._sum)
        advantages, returns = gae(rewards, ro.values, ro.mask, cfg.gamma, cfg.lam)            # (B, T) each
        if cfg.whiten_advantages:
            advantages = masked_whiten(advantages, ro.mask, reduce_sum=self._sum)

        train_stats = self._update(step, ro, advantages, returns)
        t_update = time.perf_counter()

        # Metrics over all processes; β is updated from the global mean KL so ranks stay in step.
        g = acc.gather
        kl_seq = g(kl.sum(1))                                                                  # (N,)
        kl_k1 = g((ro.logprobs - ro.ref_logprobs).mul(ro.mask).sum(1))
        kl_k3 = g(kl_per_token(ro.logprobs, ro.ref_logprobs, "k3").mul(ro.mask).sum(1))
        raw = g(ro.raw_scores)
        shaped = g(scores)
        lengths = g(ro.lengths.float())
        ended = g(ro.ended.float())
        reward_cut = g(ro.reward_cut.float())
        ent_sum = acc.reduce((ro.entropy * ro.mask).sum(), "sum")
        tok_sum = acc.reduce(ro.mask.sum(), "sum")
        gen_tokens = float(lengths.sum())
        kl_mean = float(kl_seq.mean())
        self.kl_ctl.update(kl_mean, int(kl_seq.numel()))

        responses = [row[: int(m.sum())].tolist() for row, m in zip(ro.response, ro.mask)]
        rep = repetition_stats(responses, cfg.monitor.ngram)
        rep = {k: float(acc.reduce(torch.tensor(v, device=acc.device), "mean")) for k, v in rep.items()}
        step_s = t_update - t0
        m = {
            "step": step,
            "objective/reward_mean": float(raw.mean()),
            "objective/reward_std": float(raw.std()) if raw.numel() > 1 else 0.0,
            "objective/score_mean": float(shaped.mean()),
            "objective/kl": kl_mean,
            "objective/kl_k1": float(kl_k1.mean()),
            "objective/kl_k1_std": float(kl_k1.std()) if kl_k1.numel() > 1 else 0.0,
            "objective/kl_k3": float(kl_k3.mean()),
            "objective/non_score_reward": -beta * kl_mean,
            "objective/rlhf_reward": float(shaped.mean()) - beta * kl_mean,
            "objective/beta": beta,
            "policy/entropy": float(ent_sum / tok_sum.clamp(min=1)),
            **train_stats,
            "response/length_mean": float(lengths.mean()),
            "response/eos_frac": float(ended.mean()),
            "response/reward_input_cut": int(reward_cut.sum()),
            **rep,
            "rollout/samples": int(raw.numel()),
            "time/generate_s": t_gen - t0,
            "time/rollout_s": t_rollout - t0,
            "time/update_s": t_update - t_rollout,
            "time/step_s": step_s,
            "time/tokens_per_s": gen_tokens / step_s,
            "time/samples_per_s": raw.numel() / step_s,
        }
        warnings, new = self.monitor.observe(m)
        m["monitor/warnings"] = warnings
        m["monitor/warning_count"] = len(warnings)
        for w in new if acc.is_main_process else []:  # logged when a warning starts; stored every step
            if self.display.enabled:
                self.display.warn(f"step {step}: {w}")
            else:
                log.warning("step %d: %s", step, w)
        if step == 1 or step % 10 == 0:
            m["sample/response"] = ro.texts[0][:200]
        return m

    def _sum(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over all processes."""
        return self.acc.reduce(t, "sum") if self.acc.num_processes > 1 else t

    def _update(self, step: int, ro: Rollout, advantages, returns) -> dict:
        """``ppo_epochs`` passes of clipped PPO updates over shuffled minibatches of the rollout.

        Each optimizer step's loss is the mean over every response token of the minibatch on every
        process: a micro-batch's token-mean loss is weighted by its share of those tokens (times
        the process count, which DDP's gradient averaging divides back out), so micro-batches and
        processes with more tokens count for more, as in one process with no accumulation.
        """
        cfg, acc = self.cfg, self.acc
        input_ids, attention_mask, P = ro.input_ids, ro.attention_mask, ro.query.shape[1]
        B = input_ids.shape[0]
        micro = cfg.mini_batch_size // cfg.gradient_accumulation_steps
        gen = torch.Generator().manual_seed(_seed(cfg.seed, step, acc.process_index, 3))
        sums: dict[str, float] = {}
        n_updates = 0
        params = list(self.model.parameters())
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(B, generator=gen).to(input_ids.device)
            for start in range(0, B, cfg.mini_batch_size):
                mb = order[start : start + cfg.mini_batch_size]
                parts = mb.split(micro)
                tokens = self._sum(ro.mask[mb].sum().float()).clamp(min=1)  # minibatch, all processes
                for k, ix in enumerate(parts):
                    sync = k == len(parts) - 1
                    with contextlib.nullcontext() if sync else acc.no_sync(self.model):
                        with acc.autocast():
                            logits, values = self.model(input_ids[ix], attention_mask[ix], P)
                        logp, ent = logprobs_and_entropy(logits / cfg.temperature, ro.response[ix])
                        mask = ro.mask[ix]
                        pg_loss, pg_stats = policy_loss(logp, ro.logprobs[ix], advantages[ix], mask, cfg.cliprange)
                        v_loss, v_stats = value_loss(values.float(), ro.values[ix], returns[ix], mask, cfg.cliprange_value)
                        entropy = masked_mean(ent, mask)
                        loss = pg_loss + cfg.vf_coef * v_loss - cfg.entropy_coef * entropy
                        acc.backward(loss * (mask.sum() * acc.num_processes / tokens))
                    for key, value in (("loss/policy", pg_loss), ("loss/value", v_loss), ("loss/total", loss),
                                       ("policy/clipfrac", pg_stats["clipfrac"]), ("policy/approxkl", pg_stats["approxkl"]),
                                       ("policy/ratio_mean", pg_stats["ratio_mean"]), ("value/clipfrac", v_stats["clipfrac"]),
                                       ("policy/entropy_update", entropy)):
                        sums[key] = sums.get(key, 0.0) + float(value.detach()) / len(parts)
                if cfg.max_grad_norm is not None:
                    norm = acc.clip_grad_norm_(params, cfg.max_grad_norm)
                    sums["policy/grad_norm"] = sums.get("policy/grad_norm", 0.0) + float(norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                n_updates += 1
        stats = torch.tensor([v / n_updates for v in sums.values()], device=acc.device)
        stats = acc.reduce(stats, "mean")
        out = dict(zip(sums, map(float, stats)))
        out["value/mean"] = float(acc.reduce(masked_mean(ro.values, ro.mask), "mean"))
        out["value/returns_mean"] = float(acc.reduce(masked_mean(returns, ro.mask), "mean"))
        return out

    # ------------------------------------------------------------------ the run
    def _resume(self) -> int:
        """Load the newest checkpoint (if any) and cut metrics.jsonl back to its step."""
        import json

        from cai.core.runs import by_content

        run_file = self.out / "run.json"
        identity = by_content(self.cfg.identity())  # a .gguf model by its content, not its path
        if run_file.exists():
            previous = json.loads(run_file.read_text())
            diffs = [k for k in identity if previous.get(k) != identity[k]]
            if diffs:
                raise CaiError(f"{self.out} holds a PPO run with a different {', '.join(diffs)}; "
                               "use a new --out folder to start another run")
        ckpt = checkpoint.latest(self.out / "checkpoints")
        start = 0
        if ckpt is not None:
            state = checkpoint.load(ckpt, self.acc, self.model, self.optimizer)
            self.kl_ctl.load_state_dict(state["kl_controller"])
            self.monitor.load_state_dict(state["monitor"])
            start = int(state["step"])
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            run_file.write_text(json.dumps(identity, indent=2))
            self.metrics.truncate(start)
        self.acc.wait_for_everyone()
        return start

    def _save(self, step: int) -> None:
        state = {"kl_controller": self.kl_ctl.state_dict(), "monitor": self.monitor.state_dict()}
        checkpoint.save(self.out / "checkpoints", step, self.acc, self.model, self.optimizer, state,
                        self.cfg.keep_checkpoints)

    def train(self) -> dict:
        """Run (or resume) to ``max_steps``; write the final policy and ``summary.json``; return the summary."""
        import json

        cfg, acc = self.cfg, self.acc
        start = self._resume()
        if start:
            log.info("resuming from step %d", start)
        self.display = LiveDisplay(cfg.max_steps, start, acc.is_main_process and not cfg.quiet)
        with self.display:
            for step in range(start + 1, cfg.max_steps + 1):
                m = self.step(step)
                if acc.is_main_process:
                    self.metrics.append(m)
                self.display.update(m)
                if step % cfg.save_every == 0 or step == cfg.max_steps:
                    self._save(step)
        summary = summarize(self.metrics.read()) if acc.is_main_process else {}
        self._export()
        if acc.is_main_process:
            summary["resumed_from"] = start
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def _export(self) -> None:
        """The trained policy (with its tokenizer) in ``OUT/policy`` and the value head beside it."""
        acc = self.acc
        acc.wait_for_everyone()
        if acc.is_main_process:
            model = acc.unwrap_model(self.model)
            model.policy.generation_config = self.saved_generation_config
            model.policy.save_pretrained(self.out / "policy")
            model.policy.generation_config = self.generation_config
            self.tokenizer.save_pretrained(self.out / "policy")
            torch.save(model.value_head.state_dict(), self.out / "policy" / "value_head.pt")
        acc.wait_for_everyone()


def train_ppo(cfg: PPOConfig, show_summary: bool = False) -> dict:
    """Train (or resume) a PPO run described by ``cfg``; returns the summary (main process)."""
    trainer = PPOTrainer(cfg)
    summary = trainer.train()
    if show_summary and trainer.acc.is_main_process and not cfg.quiet:
        print_summary(summary, cfg.out)
    return summary
