"""How each stage of the loop runs: the library call behind it (the same one its own command
makes), returning the stage's summary; and the failed probes a round hands to the next."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cai.core.errors import CaiError
from cai.loop.recipe import HumansStage, Stage


class HumansNeeded(CaiError):
    """The humans stage waits for people: the run stops here (exit 3) and continues when rerun."""

    exit_code = 3
    kind = "paused"


# -- runners: each returns the stage's summary (a JSON-able dict) -----------------------------------

def run_generate(stage: Stage) -> dict:
    from cai.sl import run_generate as run

    return run(stage.config)


def run_sft(stage: Stage) -> dict:
    from cai.train.sft import train_sft

    return train_sft(stage.config)


def run_sample(stage: Stage) -> dict:
    from cai.feedback import run_sample as run

    return run(stage.config)


def run_label(stage: Stage) -> dict:
    from cai.feedback import run_label as run

    return run(stage.config)


def run_route(stage: Stage) -> dict:
    from cai.data import run_route as run

    summary = run(stage.config)
    summary.pop("selected", None)  # per-pair rows: in route/report.csv, too long for the manifest
    return summary


def run_humans(stage: Stage) -> dict:
    """Import the label file, or export the labeling page's labels; with ``agreement`` also score
    the same pairs with the feedback model (``humans/agreement.json``)."""
    cfg: HumansStage = stage.config["humans"]
    pairs = stage.folder / "pairs"
    if cfg.labels:
        from cai.humans.importers import import_labels

        summary: dict[str, Any] = {"import": asdict(import_labels(cfg.labels, cfg.format, pairs,
                                                                  skip_invalid=cfg.skip_invalid,
                                                                  csv_mapping=cfg.csv_mapping()))}
    else:
        summary = {"export": _export_page_labels(cfg, stage)}
    if stage.config["agreement"] is not None:
        from cai.feedback import run_agreement

        report = run_agreement(stage.config["agreement"])
        summary["agreement"] = {k: report.get(k) for k in ("n", "accuracy", "ece", "position_consistency",
                                                           "position_checked", "kappa", "judge_health")}
    return summary


def _export_page_labels(cfg: HumansStage, stage: Stage) -> dict:
    from cai.humans.export import export_labels

    db = Path(cfg.db)
    route = stage.folder.parent / "route"
    serve = f"cai humans serve {route} --db {db}"
    if not db.exists():
        raise HumansNeeded(f"the humans stage waits for labels: label the routed pairs at the page ({serve}), "
                           "then rerun this command to continue")
    try:
        return export_labels(db, stage.folder / "pairs", min_gold_accuracy=cfg.min_gold_accuracy)
    except CaiError as exc:
        raise HumansNeeded(f"the humans stage has no usable labels yet ({exc.message}): label at the page "
                           f"({serve}), then rerun this command") from None


def run_mix(stage: Stage) -> dict:
    from cai.data import run_mix as run

    return run(stage.config)


def run_reward(stage: Stage) -> dict:
    from cai.train.reward import train_reward

    return train_reward(stage.config)


def run_ppo(stage: Stage) -> dict:
    from cai.train.ppo import train_ppo

    return train_ppo(stage.config, show_summary=False)


def run_online(stage: Stage) -> dict:
    from cai.train.online import train_online

    return train_online(stage.config)


def run_dpo(stage: Stage) -> dict:
    from cai.train.dpo import train_dpo

    return train_dpo(stage.config)


def run_eval(stage: Stage) -> dict:
    """The behaviour suites on the trained policy vs the round's starting policy, then the
    reward-model audit."""
    from cai.evals.behavior import run_behavior

    behavior = run_behavior(stage.config["behavior"])
    summary = {"behavior": {"results": [
        {k: r.get(k) for k in ("suite", "metric", "higher_is_better", "probes", "candidate", "baseline", "diff",
                               "change", "win_rate")}
        for r in behavior["results"]], "judge_health": behavior.get("judge_health")}}
    if stage.config["reward_model"] is not None:
        from cai.evals.reward_audit import run_reward_audit

        audit = run_reward_audit(stage.config["reward_model"])
        summary["reward_model"] = {"biases": audit["biases"], "length_reward": audit["length_reward"],
                                   "verdict": audit.get("verdict")}
    return summary


def run_redteam(stage: Stage) -> dict:
    """`cai redteam` against the round's trained policy; its summary (success per principle and
    style, the judge's health) goes to the manifest and the report."""
    from cai.redteam import run_redteam as run

    summary = run(stage.config)
    summary.pop("unusable_examples", None)
    return summary


def run_report(stage: Stage) -> dict:
    from cai.loop.report import write_loop_report

    path = write_loop_report(stage.config["run"])
    return {"report": str(path)}


def _jsonl(path: Path):
    """The rows of a stage's JSONL output: a last line cut short by a kill is left out (the stage
    reruns it); a line that is not JSON elsewhere is a one-line error naming the file and line."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                return
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                raise CaiError("not a JSON row; move the file aside and rerun the stage", path=str(path),
                               line=lineno) from None


def redteam_found(round_folder: Path, round_label: str) -> list[dict]:
    """The attacks that broke the round's trained policy (``redteam/attacks.jsonl`` rows with
    ``broke`` true) as prompt rows, with where they came from."""
    path = round_folder / "redteam" / "attacks.jsonl"
    if not path.exists():
        return []
    return [{"messages": [{"role": "user", "content": t} for t in row["turns"][-1:]],
             "source": {"round": round_label, "suite": "redteam", "probe": row["id"],
                        "principle": row["principle"], "style": row["style"]}}
            for row in _jsonl(path) if row.get("broke")]


def failed_probes(round_folder: Path, round_label: str, limit: int | None) -> list[dict]:
    """The probes the trained policy still fails (``eval/behavior/probes.jsonl``, candidate rows
    with ``fail`` true) as prompt rows: the probe's conversation up to its last user turn, with
    where it came from (``round_label``: ``round-k``, not the folder's name, so a moved run keeps
    the same prompts)."""
    path = round_folder / "eval" / "behavior" / "probes.jsonl"
    rows: list[dict] = []
    if not path.exists():
        return rows
    for row in _jsonl(path):
        if not row.get("fail") or row.get("model") != "candidate":
            continue
        for variant, conv in (row.get("conversations") or {}).items():
            messages = [m for m in conv if m.get("role") in ("system", "user", "assistant")]
            while messages and messages[-1]["role"] != "user":
                messages.pop()
            if messages:
                rows.append({"messages": messages, "source": {
                    "round": round_label, "suite": row["suite"], "probe": row["probe"],
                    "variant": variant, "kind": row.get("kind")}})
            break  # one conversation per probe
        if limit and len(rows) >= limit:
            break
    return rows


def round_failures(round_folder: Path, round_label: str, limit: int | None) -> list[dict]:
    """What the round's trained policy still fails, for the next round's prompts: the eval's
    failed probes, then the red team's successful attacks; at most ``limit`` in all."""
    rows = failed_probes(round_folder, round_label, limit) + redteam_found(round_folder, round_label)
    return rows[:limit] if limit else rows
