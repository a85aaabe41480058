"""Reading a loop's run folder: each round's files and the key numbers the report shows.

:func:`read_round` gathers what the stages wrote in one round folder (each file read defensively:
problems become notes, never exceptions); :func:`loop_figures` gives the key numbers of every
round, which CI checks are present and finite after a loop ran.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from cai.core.errors import CaiError, looked_at

# The stages in loop order; "report" is left out: the page is its output.
STAGES = ("generate", "sft", "sample", "label", "route", "humans", "mix", "reward", "ppo", "grpo", "rloo", "dpo",
          "eval")
RL = ("ppo", "grpo", "rloo")  # trainers whose metrics.jsonl holds reward and KL per step (same keys)
REWARD, KL = "objective/reward_mean", "objective/kl"  # PPO's metrics.jsonl: reward-model score, KL to the reference
_ROUND = re.compile(r"^round-(\d+)$")


# ---------------------------------------------------------------- reading a run


def finite(x: Any) -> int | float | None:
    """``x`` when it is a finite number (a bool is not one here), else None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return x if math.isfinite(x) else None


def dig(d: Any, *keys: str) -> Any:
    """``d[k1][k2]...``, or None where a level is missing or not a dict."""
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def estimate(r: Any) -> dict | None:
    """A bootstrap estimate ``{"value", "ci": [lo, hi]}`` with finite numbers (``ci`` None when its
    interval is missing or not finite); None when there is no finite value."""
    value = finite(dig(r, "value"))
    if value is None:
        return None
    ci = dig(r, "ci")
    ok = isinstance(ci, (list, tuple)) and len(ci) == 2 and all(finite(c) is not None for c in ci)
    return {"value": value, "ci": list(ci) if ok else None, "n": finite(dig(r, "n")), "k": finite(dig(r, "k")),
            "too_few": dig(r, "too_few") is True}


class _Files:
    """One round's folder. Each problem in reading it becomes a note (for the page), never an error."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.notes: list[str] = []
        self.recipe_stages = _recipe_stages(folder)

    def ran(self, stage: str) -> bool:
        """The stage has a folder and is in the recipe (RUN/loop.json): a folder left by an earlier
        recipe (ppo/ after a switch to DPO) is not this run's."""
        if self.recipe_stages is not None and stage not in self.recipe_stages:
            return False
        return (self.folder / stage).is_dir()

    def expected(self, stage: str) -> bool:
        """The recipe has this stage (always, without a readable loop.json): its files should be there.
        A stage the recipe sets to null (sample/label/mix/reward beside a constitution-only grpo) is not missing."""
        return self.recipe_stages is None or stage in self.recipe_stages

    def _text(self, rel: str, required: bool) -> str | None:
        path = self.folder / rel
        if not path.is_file():
            if required:
                self.notes.append(f"missing {rel}: its stage has not run or did not finish")
            return None
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.notes.append(f"could not read {rel}: {exc}")
            return None

    def json(self, rel: str, required: bool = True) -> dict | None:
        text = self._text(rel, required)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            self.notes.append(f"could not read {rel}: invalid JSON ({exc})")
            return None
        if not isinstance(data, dict):
            self.notes.append(f"could not read {rel}: expected a JSON object, found {type(data).__name__}")
            return None
        return data

    def jsonl(self, rel: str, required: bool = True) -> list[dict] | None:
        """The rows that parse as JSON objects; unreadable lines (a run killed mid-write) are counted."""
        text = self._text(rel, required)
        if text is None:
            return None
        rows, bad = [], 0
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad += 1
        if bad:
            self.notes.append(f"{rel}: left out {bad} unreadable line(s)")
        return rows


def _recipe_stages(folder: Path) -> set[str] | None:
    """The stages of the recipe that last ran in this run folder (``loop.json`` in the run folder,
    the parent of a round-k folder), or None when there is no readable one."""
    path = (folder.parent if _ROUND.match(folder.name) else folder) / "loop.json"
    try:
        stages = json.loads(path.read_text(encoding="utf-8")).get("stages")
    except (OSError, ValueError, AttributeError):
        return None
    return set(stages) if isinstance(stages, list) else None


def judge_model(folder: Path) -> str | None:
    """The recipe's feedback (judge) model as ``loop.json`` names it (``models.feedback``, else
    ``models.policy``, which doubles as the judge), or None."""
    path = (folder.parent if _ROUND.match(folder.name) else folder) / "loop.json"
    try:
        models = json.loads(path.read_text(encoding="utf-8"))["settings"]["models"]
        name = models.get("feedback") or models.get("policy")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return str(name) if isinstance(name, str) else None


def _stages(f: _Files) -> list[dict]:
    """``{"stage", "status", "seconds"}`` per stage folder (a manifest one or two levels down, e.g.
    ``eval/behavior/stage.json``), plus "not run" for each loop stage without a folder."""
    found: dict[str, dict] = {}
    for path in sorted(f.folder.glob("*/stage.json")) + sorted(f.folder.glob("*/*/stage.json")):
        rel = path.parent.relative_to(f.folder).as_posix()
        if _ROUND.match(rel.split("/")[0]) or not f.ran(rel.split("/")[0]) and rel.split("/")[0] in STAGES:
            continue
        m = f.json(f"{rel}/stage.json") or {}
        status = m.get("status")
        found[rel] = {"stage": rel, "status": str(status) if status is not None else "n/a",
                      "seconds": finite(m.get("seconds"))}
    for name in STAGES:
        if not any(rel == name or rel.startswith(name + "/") for rel in found):
            found[name] = {"stage": name, "status": "no stage.json" if f.ran(name) else "not run", "seconds": None}
    order = {name: i for i, name in enumerate(STAGES)}
    return sorted(found.values(), key=lambda r: (order.get(r["stage"].split("/")[0], len(STAGES)), r["stage"]))


def _count_rows(f: _Files, rel: str) -> int | None:
    rows = f.jsonl(rel)
    return None if rows is None else len(rows)


def read_round(folder: Path | str, index: int = 1) -> dict:
    """Everything the page shows about one round folder (raw file contents, None where absent) plus
    ``notes``: the problems found. Never raises for missing or malformed files."""
    f = _Files(Path(folder))
    d: dict[str, Any] = {"index": index, "folder": str(folder), "ran": {s: f.ran(s) for s in STAGES}}
    d["generate"] = f.json("generate/summary.json")
    d["sft"] = f.json("sft/summary.json", required=f.ran("sft"))
    d["sample"] = f.json("sample/summary.json", required=f.expected("sample"))
    d["label"] = f.json("label/summary.json", required=f.expected("label"))
    d["route"] = f.json("route/route.json", required=f.ran("route"))
    d["humans"] = _count_rows(f, "humans/pairs/data.jsonl") if f.ran("humans") else None
    d["agreement"] = f.json("humans/agreement.json", required=f.ran("humans"))
    d["mix"] = f.json("mix/mix.json", required=f.expected("mix"))
    d["reward"] = f.json("reward/summary.json", required=f.expected("reward"))
    d["reward_eval"] = f.json("reward/eval.json", required=False) or dig(d["reward"], "eval")
    d["audit"] = f.json("eval/reward-model/summary.json", required=f.expected("reward") and f.expected("eval"))
    rl = next((name for name in RL if f.ran(name)), None)
    d["trainer"] = rl
    d["ppo"] = f.jsonl(f"{rl}/metrics.jsonl") if rl else None  # PPO's, GRPO's or RLOO's reward and KL per step
    # GRPO/RLOO: the reward's change split by source, and the run's own warnings
    d["rl_summary"] = f.json(f"{rl}/summary.json", required=False) if rl in ("grpo", "rloo") else None
    d["dpo"] = f.json("dpo/summary.json") if f.ran("dpo") else None
    if not (rl or f.ran("dpo")):
        f.notes.append("missing ppo/ (or dpo/): the policy has not been trained (a grpo/ or rloo/ folder would do too)")
    d["behavior"] = f.json("eval/behavior/summary.json")
    d["redteam"] = f.json("redteam/summary.json", required=(f.folder / "redteam").is_dir())
    d["judge_model"] = judge_model(f.folder)
    d["stages"] = _stages(f)
    d["notes"] = f.notes
    return d


def round_folders(run: Path) -> list[Path]:
    """The run folder (round 1), then its ``round-N/`` folders in order of N."""
    later = sorted((int(m.group(1)), p) for p in run.iterdir() if p.is_dir() and (m := _ROUND.match(p.name)))
    return [run] + [p for _, p in later]


# ---------------------------------------------------------------- the key numbers


def ppo_window(steps: int) -> int:
    """How many steps the start and end figures average: the rule `cai train ppo`'s summary uses."""
    from cai.train.ppo.metrics import summary_window

    return summary_window(steps)


def _ppo_figures(rows: list[dict] | None) -> dict | None:
    """Steps, and the reward and KL at the start and end of training (means over the first and
    last :func:`ppo_window` steps that hold finite values)."""
    if not rows:
        return None
    out: dict[str, Any] = {"steps": finite(rows[-1].get("step"))}
    for key, name in ((REWARD, "reward"), (KL, "kl")):
        values = [v for r in rows if (v := finite(r.get(key))) is not None]
        k = ppo_window(len(values))
        head, tail = values[:k], values[-k:]
        out[f"{name}_start"] = sum(head) / len(head) if head else None
        out[f"{name}_end"] = sum(tail) / len(tail) if tail else None
    out["window"] = ppo_window(len(rows))
    return out


def behavior_rows(summary: dict | None) -> list[dict]:
    """Per suite of a `cai eval behavior` summary: ``before`` (the baseline, i.e. the starting
    policy), ``after`` (the candidate, the trained policy), ``diff`` (after - before) and
    ``win_rate`` as :func:`estimate` dicts (None where absent), with the suite's metric."""
    rows = []
    for r in dig(summary, "results") or []:
        if not isinstance(r, dict) or not r.get("suite"):
            continue
        better = r.get("higher_is_better")
        rows.append({"suite": str(r["suite"]), "version": r.get("version"), "metric": str(r.get("metric") or ""),
                     "better": "higher" if better else "lower" if better is False else None,
                     "change": r.get("change") if isinstance(r.get("change"), str) else None,
                     "rated_by": dig(r, "candidate", "rated_by"),
                     "numeric": r.get("numeric") is True, "probes": finite(r.get("probes")),
                     "before": estimate(dig(r, "baseline", "rate")), "after": estimate(dig(r, "candidate", "rate")),
                     "diff": estimate(r.get("diff")), "win_rate": estimate(r.get("win_rate"))})
    return rows


def round_figures(d: dict) -> dict:
    """The key numbers of one round (see :func:`loop_figures`)."""
    sources = dig(d["mix"], "sources")
    pairs = {}
    for source, c in (sources.items() if isinstance(sources, dict) else []):
        pairs[str(source)] = {k: finite(dig(c, k)) for k in ("read", "duplicates", "train", "test")}
    agreement = None
    if d["agreement"] is not None:
        agreement = {k: finite(d["agreement"].get(k)) for k in ("n", "accuracy", "ece", "position_consistency")}
    ppo = _ppo_figures(d["ppo"])
    behavior = {r["suite"]: {"before": dig(r["before"], "value"), "after": dig(r["after"], "value"),
                             "difference": dig(r["diff"], "value"), "win_rate": dig(r["win_rate"], "value")}
                for r in behavior_rows(d["behavior"])}
    return {
        "round": d["index"],
        "pairs": pairs,
        "generate": {**{k: finite(dig(d["generate"], k)) for k in ("records", "ok", "failed", "revised")},
                     **({"verified": finite(dig(d["generate"], "verify", "judged")),
                         "judge_better": finite(dig(d["generate"], "verify", "better"))}
                        if dig(d["generate"], "verify") else {})},
        "sampled_pairs": finite(dig(d["sample"], "pairs")),
        "labeled_pairs": finite(dig(d["label"], "pairs")),
        "human_pairs": d["humans"],
        "agreement": agreement,
        "reward_model_accuracy": finite(dig(d["reward_eval"], "all", "accuracy")),
        "reward_model_n": finite(dig(d["reward_eval"], "all", "n")),
        "ppo_reward": ppo and ppo["reward_end"],
        "ppo_kl": ppo and ppo["kl_end"],
        "ppo": ppo,
        "dpo_loss": finite(dig(d["dpo"], "final_loss")) if d["dpo"] is not None else None,
        "behavior": behavior,
        # the red team's attack success, only for a round that ran one (every number here is finite or absent)
        **({"redteam": {k: v for k, v in (("attacks", finite(dig(d["redteam"], "attacks"))),
                                          ("success", finite(dig(d["redteam"], "overall", "success", "value"))))
                        if v is not None}} if d.get("redteam") is not None else {}),
    }


def loop_figures(run: Path | str) -> dict:
    """The key numbers the report shows, for checks that a loop ran (CI asserts they are there and
    finite): the last round's figures at the top level plus every round's under ``by_round``.

    Per round: ``pairs`` (per mix source: ``read``, ``duplicates``, ``train``, ``test`` pair counts),
    ``generate`` (records, ok, failed, revised; with --verify, ``verified`` revisions the judge
    compared with their drafts and ``judge_better`` of them it found better), ``sampled_pairs``, ``labeled_pairs``,
    ``human_pairs`` (None: no humans stage), ``agreement`` (n, accuracy, ECE, position consistency
    of the AI labeler on the human pairs; None without humans), ``reward_model_accuracy`` (held-out) on ``reward_model_n`` pairs,
    ``ppo_reward`` and ``ppo_kl`` (the reward model's score and the KL to the reference, summed
    over response tokens, as means over PPO's last :func:`ppo_window` steps), ``ppo`` (steps,
    start and end of both, the window),
    ``dpo_loss`` (DPO's final training loss, when DPO trained the policy instead), and ``behavior``
    (per suite: ``before`` = the starting policy's rate, ``after`` = the trained policy's,
    ``difference`` and ``win_rate``). Every number is finite or None (missing, not run, or not finite
    in the files). Raises :class:`cai.core.errors.CaiError` only when ``run`` is not a folder.
    """
    rounds = [round_figures(read_round(p, i)) for i, p in enumerate(round_folders(run_folder(run)), 1)]
    return {**rounds[-1], "rounds": len(rounds), "by_round": rounds}


def run_folder(run: Path | str) -> Path:
    """``run`` as a Path; a :class:`CaiError` when it is not a folder."""
    run = Path(run)
    if not run.is_dir():
        raise CaiError(f"no such run folder{looked_at(run)}", path=str(run))
    return run
