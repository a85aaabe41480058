"""The per-step record and the reward-hacking monitor of a GRPO/RLOO run, as one TRL callback.

TRL logs every step (``logging_steps=1``); :class:`OnlineMonitor` turns each log into one row of
``OUT/metrics.jsonl`` with the keys PPO uses where they mean the same thing, so the loop report
reads both:

- ``objective/reward_mean`` / ``_std``: the weighted sum TRL optimises; ``rewards/NAME/mean`` /
  ``/std``: each source (TRL's own numbers);
- ``objective/kl``: TRL's KL to the reference (GRPO: the k3 estimator; RLOO: the sequence log-ratio),
  0 without a reference (``beta: 0``);
- ``groups/total`` and ``groups/zero_spread``: prompts whose K rewards are all equal (zero spread:
  they teach nothing, their advantage is 0), from TRL's ``frac_reward_zero_std``;
- ``response/length_mean``, ``response/clipped_frac``, ``response/distinct_n``, ``response/unique_frac``;
- ``rewards/NAME/group_std``: each source's spread *within* the groups of K completions (mean over
  the groups of the population std; GRPO and RLOO learn from this spread only), main process;
- ``judge/calls``, ``judge/judgements``, ``judge/seconds``: this step's judge work (main process);
  ``judge/health``: the constitution judge's health so far (status, n, failed, median label mass;
  the whole record is printed at the first step and kept in summary.json);
  ``time/NAME_s`` for every source, ``time/step_s``;
- ``monitor/warnings``: PPO's warnings (length growth, KL bound, negative KL, repetition) plus
  ``disagreement``: the constitution and the reward model, when both are rewards, correlate below
  ``min_judge_rm_corr`` over the completions of the last ``window`` steps (n shown).

A step that trains on an earlier step's generation (``steps_per_generation`` or ``num_iterations``
above 1) still gets its row: that generation's rewards again, 0 new groups, no judge work.
A resumed run replays the rows it keeps through the monitor, so its warnings continue.
"""

from __future__ import annotations

import math
import sys
import time

from transformers import TrainerCallback

from cai.train.ppo.metrics import MetricsLog
from cai.train.ppo.monitor import RewardHackingMonitor, _corr, repetition_stats


_ROLLOUT_KEYS = ("reward", "rewards/", "frac_reward_zero_std", "completions/")
"""TRL's log keys measured on a generation (the others, KL, loss, entropy, on every step)."""


class OnlineMonitor(TrainerCallback):
    def __init__(self, cfg, rewards: list, log: MetricsLog, *, world_size: int = 1, console=None,
                 generation_batch: int | None = None):
        self.cfg, self.rewards, self.log = cfg, rewards, log
        # groups per generation, over all processes: TRL generates batch_size x steps_per_generation
        # (gradient_accumulation_steps by default) completions per process at once
        self.groups = (generation_batch or cfg.batch_size * world_size) // cfg.num_generations
        self.monitor = RewardHackingMonitor(cfg.monitor, kl_bound=None)
        self.kl_history: list[float] = []
        self.pairs: list[list[tuple[float, float]]] = []  # per step: (constitution, reward-model) per completion
        self.seen = {id(r): (0, 0, 0.0) for r in rewards}
        self.last_time = time.perf_counter()
        self.console = console
        self.on_warning = None
        self.spread: dict[str, float | None] = {}  # the last generation's within-group std per source
        self.health_shown = False

    def replay(self, rows: list[dict]) -> None:
        """Feed kept rows of a resumed run through the monitor (no output)."""
        for row in rows:
            self._observe(row)

    def _observe(self, row: dict) -> tuple[list[str], list[str]]:
        self.kl_history.append(row["objective/kl"])
        recent = self.kl_history[-self.cfg.monitor.window:]
        mean = sum(recent) / len(recent)
        row_for_monitor = dict(row)
        if self.cfg.algorithm == "rloo" and len(recent) > 1:  # RLOO's KL is the k1 log-ratio: it may go negative
            sd = math.sqrt(sum((k - mean) ** 2 for k in recent) / (len(recent) - 1))
            row_for_monitor.update({"objective/kl_k1": row["objective/kl"], "objective/kl_k1_std": sd,
                                    "rollout/samples": 1})
        return self.monitor.observe(row_for_monitor)

    def _disagreement(self) -> str | None:
        window = self.pairs[-self.cfg.monitor.window:]
        xs = [a for step in window for a, _ in step]
        ys = [b for step in window for _, b in step]
        if len(xs) < 4:
            return None
        corr = _corr(xs, ys)
        if corr < self.cfg.min_judge_rm_corr:
            return (f"disagreement: the constitution judge and the reward model correlate {corr:.2f} < "
                    f"{self.cfg.min_judge_rm_corr:g} over the last {len(window)} steps (n={len(xs)} completions)")
        return None

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        fresh = "reward" in logs  # this step generated (and rewarded) completions
        if fresh:
            self.rollout = {k: v for k, v in logs.items() if k.startswith(_ROLLOUT_KEYS)}
        elif "loss" in logs and "train_runtime" not in logs and getattr(self, "rollout", None):
            # steps_per_generation or num_iterations above 1: this step trained on the last generation
            # again; its row repeats that generation's rewards, with no new groups and no judge work
            logs = {**self.rollout, **logs}
        else:  # the end-of-training summary log
            return
        now = time.perf_counter()
        row: dict = {"step": state.global_step,
                     "objective/reward_mean": float(logs["reward"]), "objective/reward_std": float(logs["reward_std"]),
                     "objective/kl": float(logs.get("kl") or 0.0), "objective/beta": self.cfg.beta}
        if fresh:
            self.spread = {r.name: group_std(r.last, self.cfg.num_generations) for r in self.rewards}
        for r in self.rewards:
            for stat in ("mean", "std"):
                value = logs.get(f"rewards/{r.name}/{stat}")
                row[f"rewards/{r.name}/{stat}"] = None if value is None else float(value)
            row[f"rewards/{r.name}/group_std"] = self.spread.get(r.name)
        row["groups/total"] = self.groups if fresh else 0
        row["groups/zero_spread"] = int(round(float(logs.get("frac_reward_zero_std", 0.0)) * row["groups/total"]))
        row["response/length_mean"] = float(logs.get("completions/mean_length", 0.0))
        row["response/clipped_frac"] = float(logs.get("completions/clipped_ratio", 0.0))
        ids = next((r.last_ids for r in self.rewards if r.last_ids), [])
        row.update(repetition_stats(ids, self.cfg.monitor.ngram))
        row["policy/entropy"] = float(logs.get("entropy", 0.0))
        row["loss/policy"] = float(logs.get("loss", 0.0))
        for r in self.rewards:
            calls, judgements, seconds = self.seen[id(r)]
            row[f"time/{r.name}_s"] = round(r.seconds - seconds, 4)
            if r.name == "constitution":
                row["judge/calls"] = r.judge_calls - calls
                row["judge/judgements"] = r.judgements - judgements
                row["judge/seconds"] = round(r.seconds - seconds, 4)
                if (health := getattr(r.judge, "health", None)) is not None:
                    row["judge/health"] = {"status": health.status, "n": health.n, "failed": health.failed,
                                           "label_mass_median": health.label_mass.median}
                    if not self.health_shown and state.is_world_process_zero and not self.cfg.quiet:
                        self.health_shown = True  # the first step of this run: the whole record
                        for line in health.lines("constitution judge", principles=False):
                            self._out(line)
            self.seen[id(r)] = (getattr(r, "judge_calls", 0), getattr(r, "judgements", 0), r.seconds)
        row["time/step_s"] = round(now - self.last_time, 4)
        self.last_time = now
        by_name = {r.name: r for r in self.rewards}
        if "constitution" in by_name and "reward-model" in by_name and fresh:
            self.pairs.append(list(zip(by_name["constitution"].last, by_name["reward-model"].last)))
        warnings, new = self._observe(row)
        if "constitution" in by_name and "reward-model" in by_name and self.cfg.monitor.enabled:
            if msg := self._disagreement():
                warnings.append(msg)
                if "disagreement" not in self.monitor.active:
                    new.append(msg)
                self.monitor.active.add("disagreement")
        row["monitor/warnings"] = warnings
        if state.is_world_process_zero:
            self.log.append(row)
            self._print(row, new, args.max_steps)

    def _print(self, row: dict, new: list[str], total: int) -> None:
        if self.cfg.quiet:
            return
        judge = f"  judge {row['judge/judgements']} in {row['judge/seconds']:.2f}s" if "judge/calls" in row else ""
        line = (f"{self.cfg.algorithm} step {row['step']}/{total}  reward {row['objective/reward_mean']:+.3f}  "
                f"kl {row['objective/kl']:.4f}  len {row['response/length_mean']:.0f}  "
                f"zero-spread {row['groups/zero_spread']}/{row['groups/total']}{judge}  {row['time/step_s']:.2f}s")
        self._out(line)
        for w in new:
            self._out(f"warning {w}")

    def _out(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, markup=False, soft_wrap=True)
        else:
            print(text, file=sys.stderr, flush=True)


def group_std(values: list[float], k: int) -> float | None:
    """Mean over consecutive groups of ``k`` values (TRL's order: a prompt's K completions are
    adjacent) of each group's population standard deviation; None without a whole group. The
    spread GRPO/RLOO learn from: a source that is constant within every group moves no advantage."""
    n = len(values) // k
    if not n:
        return None
    total = 0.0
    for g in range(n):
        block = values[g * k:(g + 1) * k]
        mean = sum(block) / k
        total += math.sqrt(sum((v - mean) ** 2 for v in block) / k)
    return total / n
