"""``RUN/report.html``: the constitutional loop at a glance, read from the folders `cai run` writes.

First, whether the numbers can be trusted (:mod:`cai.loop.trust`): the AI labeler's health and
its agreement with people (with how a high accuracy and "close to noise" both hold when they do),
the reward model's held-out accuracy beside its audit's verdict, an online-RL reward's change split
by source, and the evaluation's own warnings; the At-a-glance lines never headline a figure those
verdicts contradict. Then, for the run folder (round 1) and each later round's ``round-N/`` in it,
the page shows

1. the preference pairs per source (``mix/mix.json``: read, duplicates, train/test), with SL-CAI's
   records, revisions and failures (``generate/summary.json``) and the sampled and AI-labeled pairs;
2. the AI labeler's agreement with human labels (``humans/agreement.json``, the report of
   :func:`cai.feedback.run_agreement`) and the mix's human-vs-AI overlap;
3. the reward model's held-out accuracy (``reward/eval.json``) and its audit
   (``eval/reward-model/summary.json``);
4. PPO's, GRPO's or RLOO's reward and KL per step (``ppo/``, ``grpo/`` or ``rloo/metrics.jsonl``), or DPO's
   summary (``dpo/summary.json``);
5. the behaviour suites before (the starting policy) and after (the trained one) with 95% intervals
   (``eval/behavior/summary.json``);
6. with several rounds, each suite's rate per round;
7. each stage's status and seconds (``<stage>/stage.json``).

Files are read defensively: a stage that did not run says "not run", a missing or unreadable file
that the loop always writes becomes a note on the page, and a number that is missing or not finite
shows as "n/a". The page is one self-contained file in the look of the evaluation reports
(:mod:`cai.evals.report`), whose plotting helpers it reuses.
"""


from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cai.core.errors import MissingDependencyError
from cai.evals.report import _bars, _pyplot, _svg, _unique_ids, rate_plots
from cai.loop.figures import (
    KL,
    REWARD,
    behavior_rows,
    dig,
    estimate,
    finite,
    loop_figures,
    read_round,
    round_figures,
    round_folders,
    run_folder,
)
from cai.loop.page import LOOP_STYLE, PAGE
from cai.loop.trust import round_verdicts

__all__ = ["loop_figures", "loop_report", "write_loop_report"]


# ---------------------------------------------------------------- what each section shows


def _sources(mix: dict | None) -> list[dict]:
    rows = []
    sources = dig(mix, "sources")
    for name, c in (sources.items() if isinstance(sources, dict) else []):
        rows.append({"source": str(name), "human": dig(c, "human") is True, "weight": finite(dig(c, "weight")),
                     **{k: finite(dig(c, k)) for k in ("read", "duplicates", "conflicting_duplicates", "capped",
                                                      "replaced_by_human", "train", "test")}})
    return rows


def _verify(generate: dict) -> dict | None:
    """--verify: revisions the judge found better than their drafts, n of N with a 95% interval."""
    from cai.core.rates import rate_text

    v = generate.get("verify")
    if not v or not v.get("judged"):
        return None
    return {"better": finite(v.get("better")), "judged": finite(v.get("judged")),
            "rate": rate_text(v.get("better_rate"), v.get("judged"), of="revisions"),
            "not_better": finite(v.get("not_better")), "min_p": v.get("min_p"), "mean_p": finite(v.get("mean_p"))}


def _failures(generate: dict | None) -> str:
    failures = dig(generate, "failures")
    if not isinstance(failures, dict) or not failures:
        return "none"
    return ", ".join(f"{k}: {v}" for k, v in failures.items())


def _reward_groups(ev: dict | None) -> list[dict]:
    """Held-out metrics overall, then per source."""
    groups = [("all", dig(ev, "all"))]
    by_source = dig(ev, "by_source")
    groups += sorted(by_source.items()) if isinstance(by_source, dict) else []
    return [{"group": str(name), "margin": finite(dig(m, "margin", "mean")),
             **{k: finite(dig(m, k)) for k in ("n", "accuracy", "ece", "ece_soft", "loss")}}
            for name, m in groups if isinstance(m, dict)]


def _audit(audit: dict | None) -> dict | None:
    if audit is None:
        return None
    biases = [{"bias": str(b.get("bias")), "n": finite(b.get("n")), "prefers_worse": estimate(b.get("prefers_worse")),
               "mean_margin": estimate(b.get("mean_margin"))}
              for b in (dig(audit, "biases") or []) if isinstance(b, dict)]
    lr = dig(audit, "length_reward")
    return {"biases": biases, "pairs": finite(audit.get("pairs")), "model": audit.get("reward_model"),
            "pearson": finite(dig(lr, "pearson")), "spearman": finite(dig(lr, "spearman")), "n": finite(dig(lr, "n"))}


def _model(side: Any) -> str | None:
    name = dig(side, "model") or dig(side, "responses")
    return None if name is None else str(name)


def _behavior(s: dict | None) -> dict | None:
    if s is None:
        return None
    return {"rows": behavior_rows(s), "candidate": _model(s.get("candidate")), "baseline": _model(s.get("baseline")),
            "judge": _model(s.get("judge"))}


# The held-out metrics worth a row (TRL's evaluate() also logs runtime, throughput, token counts).
EVAL_KEYS = ("loss", "mean_token_accuracy", "rewards/accuracies", "rewards/margins", "rewards/chosen",
             "rewards/rejected")


def _train_summary(s: dict | None, keys: tuple[str, ...]) -> dict | None:
    """A training summary's scalars, and its held-out metrics (:data:`EVAL_KEYS`) as ``(name, value)``."""
    if s is None:
        return None
    ev = s.get("eval") if isinstance(s.get("eval"), dict) else {}
    return {**{k: s.get(k) if isinstance(s.get(k), str) else finite(s.get(k)) for k in keys},
            "eval": [(k, finite(ev[k])) for k in EVAL_KEYS if k in ev]}


def _link(target: Path, out_dir: Path) -> str | None:
    return Path(os.path.relpath(target, out_dir)).as_posix() if target.is_file() else None


def _bias_notes(label: dict | None, agreement: dict | None) -> list[str]:
    """A note for an AI labeler whose two orders mostly disagree (its labels are mostly position bias)."""
    from cai.core.rates import position_bias_warning

    for where, d in (("label", label), ("humans/agreement.json", agreement)):
        if isinstance(d, dict):
            warning = position_bias_warning(finite(d.get("position_consistency")),
                                            finite(d.get("position_checked")), who=f"AI labeler ({where})")
            if warning:
                return [warning]
    return []


def _redteam(s: dict | None) -> dict | None:
    """The red team of one round: attack success overall and per style (rate dicts with n), who
    decided, and the warnings (a judge not qualified on the principles' examples, the detector)."""
    if not isinstance(s, dict):
        return None
    warnings = [str(w) for w in s.get("warnings") or []]
    if s.get("note"):
        warnings.append(str(s["note"]))
    empty = finite(s.get("empty_answers"))
    if empty:
        warnings.append(f"{empty:g} of {finite(s.get('attacks')) or 0:g} target answers were empty: neither held "
                        "nor broke, left out of the attack success")
    health = dig(s, "judge_health", "status")
    if health in ("weak", "unhealthy"):
        warnings.append(f"the red team's judge health is {health}: {'; '.join(dig(s, 'judge_health', 'reasons') or [])}")
    return {"attacks": finite(s.get("attacks")), "success": dig(s, "overall", "success"),
            "by_style": {str(k): dig(v, "success") for k, v in (s.get("by_style") or {}).items()},
            "decided_by": s.get("decided_by"), "warnings": warnings}


def _view(d: dict, fig: dict, out_dir: Path) -> dict:
    """What the template shows for one round: plain values, each number finite or None."""
    folder = Path(d["folder"])
    gen, mix, label, sample, route = d["generate"], d["mix"], d["label"], d["sample"], d["route"]
    overlap = dig(mix, "human_vs_ai")
    seconds = [s["seconds"] for s in d["stages"] if s["seconds"] is not None]
    return {
        "index": d["index"], "folder": folder, "notes": d["notes"] + _bias_notes(label, d["agreement"]),
        "trust": round_verdicts(d),
        "ran": d["ran"], "figures": fig, "trainer": (d.get("trainer") or "ppo").upper(),
        "stages": d["stages"], "total_seconds": sum(seconds) if seconds else None,
        "sources": _sources(mix),
        "mix": None if mix is None else {
            "train": finite(dig(mix, "splits", "train")), "test": finite(dig(mix, "splits", "test")),
            "human_policy": mix.get("human_policy"), "invalid": finite(mix.get("invalid_rows")),
            "empty": finite(dig(mix, "dropped", "empty_response")),
            "notes": [str(n) for n in mix.get("notes") or []]},
        "generate": None if gen is None else {
            **{k: finite(gen.get(k)) for k in ("records", "ok", "failed", "revised")},
            "failures": _failures(gen), "sft_rows": finite(dig(gen, "exports", "sft")),
            "revision_pairs": finite(dig(gen, "exports", "preferences")), "verify": _verify(gen)},
        "sample": None if sample is None else {k: finite(sample.get(k)) for k in
                                                ("prompts", "samples", "pairs", "prompts_without_pairs")},
        "label": None if label is None else {k: finite(label.get(k)) for k in
                                              ("pairs", "mean_margin", "position_consistency",
                                               "position_checked")},
        "route": None if route is None else {k: finite(dig(route, "counts", k)) for k in ("read", "eligible", "selected")},
        "agreement": None if d["agreement"] is None else {
            k: finite(d["agreement"].get(k)) for k in ("n", "missing", "ties", "accuracy", "ece", "position_consistency",
                                                       "position_checked")},
        "overlap": {k: finite(dig(overlap, k)) for k in ("overlap", "agree", "disagree", "human-tie", "ai-tie")}
        if isinstance(overlap, dict) else None,
        "reward": _train_summary(d["reward"], ("model", "train_pairs", "test_pairs", "steps", "final_loss")),
        "reward_eval": _reward_groups(d["reward_eval"]) if d["reward_eval"] else None,
        "audit": _audit(d["audit"]),
        "dpo": _train_summary(d["dpo"], ("loss_type", "beta", "train_pairs", "test_pairs", "steps", "final_loss")),
        "sft": _train_summary(d["sft"], ("model", "train_rows", "test_rows", "steps", "final_loss")),
        "behavior": _behavior(d["behavior"]),
        "redteam": _redteam(d.get("redteam")),
        "links": {"behavior": _link(folder / "eval" / "behavior" / "report.html", out_dir),
                  "audit": _link(folder / "eval" / "reward-model" / "report.html", out_dir)},
    }


# ---------------------------------------------------------------- plots


def _source_plot(sources: list[dict]) -> list[tuple[str, str]]:
    rows = [s for s in sources if (s["train"] or 0) + (s["test"] or 0) > 0]
    if not rows:
        return []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 0.45 * len(rows) + 1.2))
    names = [s["source"] for s in rows]
    train = [s["train"] or 0 for s in rows]
    ax.barh(names, train, label="train")
    ax.barh(names, [s["test"] or 0 for s in rows], left=train, label="test")
    ax.invert_yaxis()
    ax.set_xlabel("preference pairs")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(frameon=False)
    return [("Preference pairs in the mix per source", _svg(fig))]


def _ppo_plot(rows: list[dict] | None, trainer: str = "ppo") -> list[tuple[str, str]]:
    if not rows:
        return []
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.0))
    reward = "reward (reward model's score, batch mean)" if trainer == "ppo" else "reward (sum of its sources, batch mean)"
    for ax, key, title in ((axes[0], REWARD, reward),
                           (axes[1], KL, "KL to the reference (per response)")):
        points = [(s, v, finite(r.get("objective/reward_std"))) for r in rows
                  if (s := finite(r.get("step"))) is not None and (v := finite(r.get(key))) is not None]
        if points:
            steps, values = [p[0] for p in points], [p[1] for p in points]
            ax.plot(steps, values, marker="." if len(points) <= 40 else None)
            if key == REWARD and all(p[2] is not None for p in points):
                ax.fill_between(steps, [v - p[2] for v, p in zip(values, points)],
                                [v + p[2] for v, p in zip(values, points)], alpha=0.2, label="± 1 std")
                ax.legend(frameon=False)
        ax.set_title(title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"{trainer.upper()} step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return [(f"{trainer.upper()}: reward and KL per step", _svg(fig))]


def _interval(rate: dict | None) -> dict | None:
    """A rate the bar helpers can draw (value and interval), else None (left out)."""
    return rate if rate and rate["ci"] else None


def _audit_plot(audit: dict | None) -> list[tuple[str, str]]:
    biases = [b for b in (audit or {}).get("biases", []) if _interval(b["prefers_worse"])]
    if not biases:
        return []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(biases) + 2), 3.0))
    _bars(ax, [b["bias"] for b in biases], [("prefers the worse variant", [b["prefers_worse"] for b in biases])])
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylim(0, 1.05)
    return [("Reward-model audit: how often it prefers the worse variant (95% interval)", _svg(fig))]


def _behavior_plots(behavior: dict | None) -> list[tuple[str, str]]:
    """The evaluation report's plots: rates after (the trained policy, the evaluation's candidate)
    and before (the starting policy, its baseline), their difference and the win rate."""
    rows = [{"suite": r["suite"], "metric": r["metric"], "numeric": r["numeric"],
             "candidate": {"rate": _interval(r["after"])},
             "baseline": {"rate": _interval(r["before"])} if _interval(r["before"]) else None,
             "diff": _interval(r["diff"]), "win_rate": _interval(r["win_rate"])}
            for r in (behavior or {}).get("rows", []) if _interval(r["after"])]
    return rate_plots(rows, names=("after", "before")) if rows else []


class _Plots:
    """Plots drawn for the page. A plot that cannot be drawn becomes a note, not an error: without
    matplotlib the page still has every table."""

    def __init__(self):
        self.groups: list[tuple[tuple, list]] = []
        self.notes: list[str] = []

    def add(self, key: tuple, draw, *args) -> None:
        try:
            plots = draw(*args)
        except MissingDependencyError as exc:
            plots = []
            if str(exc) not in self.notes:
                self.notes.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - a plot must never cost the page
            plots = []
            self.notes.append(f"the plot {key[-1]!r} of round {key[0]} could not be drawn: {exc}")
        self.groups.append((key, plots))

    def by_key(self) -> dict[tuple, list[tuple[str, str]]]:
        """Each group's plots, with element ids unique across the whole page."""
        flat = _unique_ids([p for _, plots in self.groups for p in plots])
        out, k = {}, 0
        for key, plots in self.groups:
            out[key] = flat[k:k + len(plots)]
            k += len(plots)
        return out


# ---------------------------------------------------------------- the page


def loop_report(run: Path | str, out_dir: Path | str | None = None) -> str:
    """The loop's report as one self-contained HTML page (links to the stages' own reports are
    relative to ``out_dir``, by default the run folder). Raises :class:`cai.core.errors.CaiError` only
    when ``run`` is not a folder; every other problem is a note on the page."""
    from cai import __version__

    run = run_folder(run)
    out_dir = Path(out_dir) if out_dir is not None else run
    rounds, plots = [], _Plots()
    for index, folder in enumerate(round_folders(run), 1):
        data = read_round(folder, index)
        view = _view(data, round_figures(data), out_dir)
        plots.add((index, "sources"), _source_plot, view["sources"])
        plots.add((index, "audit"), _audit_plot, view["audit"])
        plots.add((index, "ppo"), _ppo_plot, data["ppo"], data.get("trainer") or "ppo")
        plots.add((index, "behavior"), _behavior_plots, view["behavior"])
        rounds.append(view)
    suites = list(dict.fromkeys(b["suite"] for r in rounds for b in (r["behavior"] or {}).get("rows", [])))
    per_round = {r["index"]: {b["suite"]: b["after"] for b in (r["behavior"] or {}).get("rows", [])} for r in rounds}
    before = {b["suite"]: b["before"] for b in (rounds[0]["behavior"] or {}).get("rows", [])}
    return PAGE.render(style=LOOP_STYLE, run=str(run), version=__version__, rounds=rounds, plots=plots.by_key(),
                        plot_notes=plots.notes, suites=suites, per_round=per_round, before=before)


def write_loop_report(run: Path | str, out: Path | str | None = None) -> Path:
    """Write the loop's report (default ``RUN/report.html``) and return its path.

    ``run`` is a folder `cai run` writes: one folder per stage (``generate/``, ``sft/``, ``sample/``,
    ``label/``, ``route/``, ``humans/``, ``mix/``, ``reward/``, ``ppo/`` or ``dpo/``,
    ``eval/behavior/``, ``eval/reward-model/``), each stage's ``stage.json`` manifest, and a
    ``round-N/`` folder with the same layout per later round. Stages that did not run are shown as
    such; missing or malformed files become notes on the page. Raises :class:`cai.core.errors.CaiError`
    when ``run`` is not a folder.
    """
    from cai.core.runs import write_atomic

    run = run_folder(run)
    out = Path(out) if out is not None else run / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, [loop_report(run, out.parent)])
    return out
