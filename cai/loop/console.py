"""What `cai run` prints: the plan, a header per stage (with elapsed time and ETA), one line per
finished stage, and the end (every stage's time, the report's path)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from cai.core.progress import duration, is_plain

if TYPE_CHECKING:
    from cai.loop.runner import Step
    from cai.loop.stages import Round


def header(console: Console, rnd: Round, k: int, n: int, step: Step, loop_started: float, todo: list[Step]) -> None:
    elapsed = duration(time.monotonic() - loop_started)
    rest = todo[todo.index(step):]
    left = [s.stage.name for s in rest[1:]]
    known = [s.estimate for s in rest if s.stage.name != "report"]
    eta = f" · ETA {duration(sum(known))} (last run's times)" if known and None not in known else ""
    title = (f"round {rnd.index} · stage {k}/{n}: {step.stage.name} ({step.action}: {step.reason}) · "
             f"elapsed {elapsed}{eta}" + (f" · then {', '.join(left)}" if left else ""))
    if is_plain(console):
        console.print(f"{time.strftime('%H:%M:%S')} cai run: {title}", highlight=False, markup=False, soft_wrap=True)
    else:
        console.rule(escape(title), align="left")


def print_plan(console: Console, rnd: Round, steps: list[Step], rounds: int) -> None:
    console.print(f"cai run → {rnd.folder} (round {rnd.index} of {rounds}):", highlight=False, markup=False)
    for k, s in enumerate(steps, 1):
        console.print(f"  {k:>2}. {s.stage.name:<9} {s.action:<7} {s.reason}", highlight=False, markup=False, soft_wrap=True)


def brief(name: str, s: dict) -> str:
    """One line of a stage's summary (every rate with its n and 95% interval)."""
    from cai.core.rates import rate_text

    try:
        if name == "generate":
            line = f"{s['records']} records, {s['revised']} revised, {s['failed']} failed"
            v = s.get("verify")
            if v:  # --verify: how many revisions the judge found better than their drafts
                lo, hi = v["interval"]
                line += (f", judge: {v['better']} of {v['judged']} revisions better ({lo:.0%}-{hi:.0%}), "
                         f"{v['not_better']} kept out")
            return line
        if name == "sample":
            return f"{s['prompts']} prompts, {s['pairs']} pairs"
        if name == "label":
            from cai.core.rates import position_bias_warning

            checked = s.get("position_checked") or s["pairs"]
            warning = position_bias_warning(s["position_consistency"], checked)
            if warning:  # in a recipe the labeler's options are label fields, not flags
                from cai.loop.inputs import reword

                warning = reword(warning, "label")
            health = _health_warning(s, "labeler")
            return (f"{s['pairs']} labeled pairs, position consistency {rate_text(s['position_consistency'], checked)}"
                    + (f"\n  {warning}" if warning else "") + (f"\n  {health}" if health else ""))
        if name == "mix":
            return f"train {s['splits']['train']}, test {s['splits']['test']} pairs"
        if name in ("sft", "reward", "dpo"):
            held = (s.get("eval") or {}).get("all", {}) if name == "reward" else {}
            acc = held.get("accuracy")
            return f"{s['steps']} steps, final loss {s['final_loss']:.4f}" + (
                f", held-out accuracy {rate_text(acc, held.get('n'), of='pairs')}" if isinstance(acc, float) else "")
        if name in ("ppo", "grpo", "rloo"):
            reward, kl = s["objective/reward_mean"], s["objective/kl"]
            line = (f"{s['steps']} steps, mean reward {reward['start']:.3f} → {reward['end']:.3f}, "
                    f"KL {kl['start']:.3f} → {kl['end']:.3f}")
            from cai.loop.trust import online_rl_verdict

            split = online_rl_verdict(s, name)  # GRPO/RLOO: the change by source, and its warnings
            if split:
                line += "\n  " + split["text"]
            return line
        if name == "humans":
            got = s.get("import") or s.get("export") or {}
            agree = s.get("agreement") or {}
            line = f"{got.get('written', '?')} human pairs" + (
                f", AI labeler agrees on {rate_text(agree['accuracy'], agree['n'], of='pairs')}"
                if isinstance(agree.get("accuracy"), float) else "")
            from cai.loop.trust import labeler_verdict

            verdict = labeler_verdict(agree, None) if agree else None
            return line + (f"\n  warning: {verdict['text']}" if verdict and verdict["trusted"] is False else "")
        if name == "route":
            return f"{s['counts']['selected']} pairs for people"
        if name == "eval":
            from cai.evals.report import behavior_warnings

            line = f"{len(s['behavior']['results'])} behaviour metrics" + (
                f", {len(s['reward_model']['biases'])} reward-model biases" if "reward_model" in s else "")
            verdict = (s.get("reward_model") or {}).get("verdict")
            if verdict:
                line += f"\n  reward-model audit: {verdict['status']}: {verdict['text']}"
            return line + "".join(f"\n  warning: {w}" for w in behavior_warnings(s["behavior"]))
        if name == "report":
            return s["report"]
    except (KeyError, TypeError):
        pass
    return ", ".join(f"{k}={v}" for k, v in s.items() if isinstance(v, int | float | str))[:200]


def _health_warning(s: dict, who: str) -> str | None:
    """The judge health record's one-line warning from a stage summary (None when healthy or absent)."""
    if not isinstance(s.get("judge_health"), dict):
        return None
    from cai.judge.health import JudgeHealth

    try:
        return JudgeHealth.from_dict(s["judge_health"]).warning(who)
    except (TypeError, KeyError, ValueError):
        return None


def print_end(console: Console, rounds: list[dict], seconds: float, run: Path) -> None:
    ran = [(r["round"], e) for r in rounds for e in r["stages"] if "seconds" in e]
    skipped = sum(1 for r in rounds for e in r["stages"] if e["action"] == "skip")
    line = ", ".join(f"{e['stage']}{'' if rnd == 1 else f'@{rnd}'} {duration(e['seconds'])}" for rnd, e in ran)
    console.print(f"cai run: {len(ran)} stage(s) run, {skipped} skipped in {duration(seconds)}"
                  + (f" ({line})" if line else ""), highlight=False, soft_wrap=True)
    last = rounds[-1]
    if last.get("stopped"):
        console.print(f"stopped after {last['stopped']}; rerun without it to continue", highlight=False)
    else:
        report = run / "report.html"  # one page over every round, in the run folder
        if report.exists():
            console.print(f"report: {report}", highlight=False, markup=False, soft_wrap=True)  # a path to copy: never wrapped
