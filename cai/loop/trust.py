"""Can the loop's numbers be trusted? The verdicts the loop report puts first, each with its figures.

The loop's labels, rewards and evaluations all flow from one judge (the AI labeler) and a reward
model. A headline such as "AI labeler vs humans 87.5%" or "reward model held-out accuracy 100%"
means little when the same run measured the labeler's answers following the order the responses
were shown in, or the reward model paying for padding. This module reads what the stages wrote and
returns plain sentences with their figures, so the page (and the terminal) never headline a number
that the figures beside it contradict:

- :func:`labeler_verdict`: the AI labeler's health (``judge_health`` of ``humans/agreement.json``,
  ``label/summary.json`` and ``generate/summary.json``; :class:`cai.judge.health.JudgeHealth`), its
  accuracy on people's pairs with a Wilson interval, and how a high accuracy and "close to noise"
  both hold when they do;
- :func:`reward_verdict`: the reward model's held-out accuracy beside its audit's verdict
  (:func:`cai.evals.reward_audit.audit_verdict`);
- :func:`online_rl_verdict`: a GRPO/RLOO reward's change split by source (``gain_by_source`` in its
  ``summary.json``) with its warnings;
- :func:`behavior_verdict`: the eval's own warnings (:func:`cai.evals.report.behavior_warnings`).

Every function takes the parsed JSON (or None) and never raises on missing or odd fields.
"""

from __future__ import annotations

from typing import Any

from cai.core.rates import MIN_N, rate_text, wilson
from cai.loop.figures import dig, finite


def _health(d: Any):
    """A :class:`JudgeHealth` from a summary's ``judge_health`` dict, or None."""
    h = dig(d, "judge_health")
    if not isinstance(h, dict):
        return None
    from cai.judge.health import JudgeHealth

    try:
        return JudgeHealth.from_dict(h)
    except (TypeError, KeyError, ValueError):
        return None


def labeler_verdict(agreement: dict | None, label: dict | None, generate: dict | None = None,
                    model: str | None = None) -> dict | None:
    """``{"trusted": bool | None, "level", "text", "explain", "health": [(where, JudgeHealth)]}`` for
    the AI labeler, or None when no stage judged anything.

    Not trusted when any health record is weak or unhealthy, when its position consistency is
    below one half (its answers follow the order shown), or when its accuracy on people's pairs is
    not shown above chance (the Wilson interval's lower end at or below 0.5, or fewer than ``MIN_N``
    pairs). ``explain`` says how a high accuracy and those findings both hold."""
    healths = [(where, h) for where, d in (("on people's pairs (humans/agreement.json)", agreement),
                                           ("labeling (label/summary.json)", label),
                                           ("verifying revisions (generate/summary.json)", generate))
               if (h := _health(d)) is not None and h.n]
    acc, n = finite(dig(agreement, "accuracy")), finite(dig(agreement, "n"))
    consistency = finite(dig(agreement, "position_consistency"))
    checked = finite(dig(agreement, "position_checked"))
    if consistency is None:
        consistency, checked = finite(dig(label, "position_consistency")), finite(dig(label, "position_checked"))
    if not healths and acc is None and consistency is None:
        return None
    reasons, seen = [], {}
    for where, h in healths:  # one sentence per distinct finding, naming every place it was seen
        if h.status in ("weak", "unhealthy"):
            seen.setdefault((h.status, tuple(h.reasons)), []).append(where)
    for (status, why), wheres in seen.items():
        reasons.append(f"its health {' and '.join(wheres)} is {status}: " + "; ".join(why))
    said = any("position consistency" in r for r in reasons)
    if consistency is not None and checked and consistency < 0.5 and not said:
        reasons.append(f"position consistency {rate_text(consistency, int(checked), of='pairs')}: on most pairs its "
                       "two orders pick different responses, so its answers follow the order shown, not the responses")
    chance = None
    if acc is not None and n:
        low, high = wilson(acc * n, int(n))
        chance = n < MIN_N or low <= 0.5
        if chance:
            reasons.append(f"its accuracy on people's pairs, {rate_text(acc, int(n), of='pairs')}, is not shown to be "
                           f"better than a coin flip (the interval reaches {low:.0%})")
    kappa_d = dig(agreement, "kappa")  # a number, or {"kappa", "low", "high", "n"}
    kappa = finite(dig(kappa_d, "kappa")) if isinstance(kappa_d, dict) else finite(kappa_d)
    k_low, k_high = (finite(dig(kappa_d, "low")), finite(dig(kappa_d, "high"))) if isinstance(kappa_d, dict) else (None, None)
    explain = None
    if acc is not None and acc >= 0.7 and reasons:
        explain = (f"How an accuracy of {acc:.1%} and these findings both hold: accuracy counts a pair as agreeing "
                   "whenever the labeler's p, averaged over both orders, leans toward the person's pick, however "
                   "slightly. When the two orders disagree, each order's vote cancels the other and the average "
                   "sits near 0.5, so the lean is small and close to chance"
                   + (f"; on {int(n)} pairs the accuracy's 95% interval is {wilson(acc * n, int(n))[0]:.0%}-"
                      f"{wilson(acc * n, int(n))[1]:.0%}" if n else "")
                   + (f"; Cohen's kappa {kappa:.2f}" if kappa is not None else "")
                   + (f" [{k_low:.2f}, {k_high:.2f}]" if kappa is not None and None not in (k_low, k_high) else "")
                   + ". The preference labels it writes for training are those same near-0.5 averages on every "
                     "pair whose orders disagree: little signal beyond noise.")
    if reasons:
        return {"trusted": False, "level": "bad", "health": healths, "explain": explain,
                "text": f"The AI labeler (the judge{f', {model}' if model else ''}) is not to be trusted: "
                        + "; ".join(reasons) + "."}
    if healths and all(h.status == "healthy" for _, h in healths) and chance is False:
        return {"trusted": True, "level": "ok", "health": healths, "explain": None,
                "text": f"The AI labeler passed its checks: accuracy {rate_text(acc, int(n), of='pairs')} on people's "
                        "pairs, health healthy."}
    return {"trusted": None, "level": "warn", "health": healths, "explain": None,
            "text": "The AI labeler is not checked against people's labels here (no human pairs, or too few): "
                    "treat its labels as unverified" + (f"; its health: {healths[0][1].status}" if healths else "") + "."}


def reward_verdict(reward_eval: dict | None, audit: dict | None) -> dict | None:
    """``{"level", "text", "accuracy", "audit"}``: the reward model's held-out accuracy (with its n
    and interval, "too few to estimate" below ``MIN_N``) beside its audit's verdict; the audit
    leads when it fails. None when neither exists."""
    acc, n = finite(dig(reward_eval, "all", "accuracy")), finite(dig(reward_eval, "all", "n"))
    accuracy = f"held-out accuracy {rate_text(acc, int(n), of='pairs')}" if acc is not None and n else None
    verdict = None
    if isinstance(audit, dict):
        verdict = audit.get("verdict")
        if not isinstance(verdict, dict):
            from cai.evals.reward_audit import audit_verdict

            biases = [b for b in audit.get("biases") or [] if isinstance(b, dict)]
            verdict = audit_verdict(biases) if biases else None
    if accuracy is None and verdict is None:
        return None
    if verdict and verdict.get("status") in ("fails", "doubtful"):
        text = (f"The reward model's audit {verdict['status']}: it {verdict['text']}. "
                + (f"Its {accuracy} does not outweigh that." if accuracy else ""))
        return {"level": "bad" if verdict["status"] == "fails" else "warn", "text": text.strip(),
                "accuracy": accuracy, "audit": verdict}
    if accuracy and n is not None and n < MIN_N:
        return {"level": "warn", "accuracy": accuracy, "audit": verdict,
                "text": f"The reward model's {accuracy}: too few held-out pairs to say how good it is"
                        + (f"; its audit {verdict['status']}" if verdict else "") + "."}
    return {"level": "ok", "accuracy": accuracy, "audit": verdict,
            "text": "The reward model: " + "; ".join(x for x in (accuracy, f"audit {verdict['status']}: {verdict['text']}"
                                                                 if verdict else None) if x) + "."}


def online_rl_verdict(summary: dict | None, trainer: str) -> dict | None:
    """GRPO/RLOO: ``{"level", "text", "sources": [...], "warnings": [...]}`` from its summary.json:
    the optimised reward's change and each source's weighted share of it, with the run's own
    warnings (the constitution reward's spread too small, the gain from another source). None
    without per-source figures."""
    gains = dig(summary, "gain_by_source")
    if not isinstance(gains, dict) or not gains:
        return None
    sources = []
    for name, g in gains.items():
        if isinstance(g, dict):
            sources.append({"source": str(name), **{k: finite(g.get(k)) for k in
                                                    ("weight", "start", "end", "change", "weighted_change")}})
    total = dig(summary, "objective/reward_mean")
    start, end = finite(dig(total, "start")), finite(dig(total, "end"))
    warnings = [str(w) for w in dig(summary, "reward_warnings") or []]
    parts = ", ".join(f"{s['source']} {s['start']:+.3f} → {s['end']:+.3f} ({s['weighted_change']:+.3f} weighted)"
                      for s in sources if None not in (s["start"], s["end"], s["weighted_change"]))
    head = (f"{trainer.upper()} reward {start:+.3f} → {end:+.3f}, by source: " if None not in (start, end)
            else f"{trainer.upper()} reward by source: ") + parts
    health = _health(summary)
    if health is not None and health.status in ("weak", "unhealthy"):
        warnings.append(f"the constitution judge is {health.status}: " + "; ".join(health.reasons))
    return {"level": "bad" if warnings else "ok", "text": head + ("." if not warnings else ". " + " ".join(
        w[0].upper() + w[1:] + ("" if w.endswith(".") else ".") for w in warnings)), "sources": sources,
        "warnings": warnings}


def behavior_verdict(summary: dict | None) -> list[str]:
    """The evaluation's own warnings (weak eval judge, headline fallen back to the detector, low
    agreement with people), as :func:`cai.evals.report.behavior_warnings` gives them."""
    if not isinstance(summary, dict) or not isinstance(summary.get("results"), list):
        return []
    from cai.evals.report import behavior_warnings

    try:
        return behavior_warnings(summary)
    except (KeyError, TypeError, AttributeError):
        return []


def round_verdicts(d: dict) -> dict:
    """Everything :mod:`cai.loop.report` shows first for one round (see the module docstring):
    ``{"labeler", "reward", "online", "behavior": [...], "items": [{"level", "text"}]}``."""
    labeler = labeler_verdict(d.get("agreement"), d.get("label"), d.get("generate"), d.get("judge_model"))
    reward = reward_verdict(d.get("reward_eval"), d.get("audit"))
    online = online_rl_verdict(d.get("rl_summary"), d.get("trainer") or "grpo")
    behavior = behavior_verdict(d.get("behavior"))
    ppo = d.get("ppo") if (d.get("trainer") or "ppo") == "ppo" else None
    if reward and reward.get("audit") and reward["audit"].get("status") in ("fails", "doubtful") and ppo:
        rewards = [x for r in ppo if isinstance(r, dict) and (x := finite(r.get("objective/reward_mean"))) is not None]
        if len(rewards) >= 2:  # PPO's reward is this model's score: its rise may be what the audit found
            reward = {**reward, "text": reward["text"] + f" PPO's reward ({rewards[0]:.3f} → {rewards[-1]:.3f}) is this "
                      "model's score, so a rise in it may be bought with what the audit found, not a better policy."}
    items = [{"level": v["level"], "text": v["text"]} for v in (labeler, reward, online) if v]
    if labeler and labeler.get("explain"):  # right after the labeler's verdict it explains
        items.insert(1, {"level": "warn", "text": labeler["explain"]})
    items += [{"level": "warn", "text": "Evaluation: " + w} for w in behavior]
    return {"labeler": labeler, "reward": reward, "online": online, "behavior": behavior, "items": items}
