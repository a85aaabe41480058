"""`cai generate --dry-run`: what a run would do, checked as far as it can be without a model.

The constitution and its principles load, every prompt row is read (a bad row named by its line,
as the run would), and the output folder is looked at (how many prompts are already done, so
whether the run starts or resumes). No model is loaded and nothing is written.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from cai.sl.config import GenerateConfig


def done_ids(out: Path) -> set[str]:
    """Ids of the records already in ``out/records.jsonl`` (read only: a torn last line is skipped)."""
    path = out / "records.jsonl"
    done: set[str] = set()
    if not path.is_file():
        return done
    with open(path, "rb") as fh:
        for line in fh:
            try:
                done.add(json.loads(line)["id"])
            except (ValueError, KeyError, TypeError):
                continue
    return done


def plan_generate(config: GenerateConfig) -> dict:
    """The plan of a `cai generate` run: ``{"prompts", "left_out", "done", "to_do", "out",
    "constitution", "principles", "sampling", "pick", "rounds", "steps_per_prompt", "policy",
    "critic", "judge", "verify"}``. Raises CaiError on a bad constitution or prompt file, as the
    run would, before any model."""
    from cai.core.errors import CaiError
    from cai.sl.pipeline import resolve_constitution

    constitution = resolve_constitution(config.constitution, config.principles_dir)
    if "revision" not in constitution.spec.stages:
        raise CaiError(f"constitution '{constitution.name}' does not drive the 'revision' stage "
                       f"(stages: {constitution.spec.stages})")
    reader = config.reader(constitution.spec.system_prompt)
    out = Path(config.out)
    done = done_ids(out)
    total = already = 0
    for row in itertools.islice(reader, config.limit):
        total += 1
        already += row.id in done
    s = constitution.spec.sampling
    rounds = config.rounds or constitution.spec.rounds
    per_round = len(constitution.principles) if s.strategy == "all" else min(s.per_round, len(constitution.principles))
    judging = config.verify or config.pick == "applicable"
    judge = (config.feedback or config.critic or config.policy) if judging else None
    return {
        "prompts": total, "source": str(config.prompts),
        "left_out": [f"{where}: {why}" for where, why in reader.left_out],
        "done": already, "to_do": total - already, "out": str(out),
        "constitution": constitution.ref, "principles": [p.ref for p in constitution.principles],
        "sampling": f"{s.strategy}" + ("" if s.strategy == "all" else f", {s.per_round} per round")
                    + (f", seed {s.seed}" if s.strategy == "random" else ""),
        "pick": config.pick, "rounds": rounds,
        "steps_per_prompt": (f"up to {rounds * per_round}" if config.pick == "applicable" else rounds * per_round),
        "policy": f"{config.policy.model} ({config.policy.backend})",
        "critic": f"{config.critic.model} ({config.critic.backend})" if config.critic else "the policy",
        "judge": f"{judge.model} ({judge.backend})" if judge is not None else None,
        "verify": {"min_p": config.min_p, "min_follows": config.min_follows, "keep_unverified": config.keep_unverified}
        if config.verify else None,
        "sampling_settings": config.sampling.model_dump(mode="json", exclude_none=True),
    }


def plan_lines(plan: dict) -> list[str]:
    """The plan as plain-text lines for a terminal."""
    left = plan["left_out"]
    lines = [
        "cai generate --dry-run: nothing run, no model loaded",
        f"  prompts: {plan['prompts']} from {plan['source']}" + (
            f" ({len(left)} rows left out; first: {left[0]})" if left else ""),
        f"  out: {plan['out']}: " + (f"resumes, {plan['done']} of {plan['prompts']} done, {plan['to_do']} to do"
                                     if plan["done"] else "a new run"),
        f"  constitution: {plan['constitution']}, {len(plan['principles'])} principles: "
        + ", ".join(plan["principles"][:12]) + (" ..." if len(plan["principles"]) > 12 else ""),
        f"  principles per prompt: {plan['sampling']}" + (
            "; only those the judge finds apply (pick: applicable)" if plan["pick"] == "applicable" else ""),
        f"  rounds: {plan['rounds']}: a draft, then {plan['steps_per_prompt']} critique/revision step(s) per prompt",
        f"  model: policy {plan['policy']}; critic {plan['critic']}; sampling "
        + ", ".join(f"{k} {v}" for k, v in plan["sampling_settings"].items()),
    ]
    if plan["judge"]:
        v = plan["verify"]
        lines.append(f"  judge: {plan['judge']}" + (
            f"; verify: min_p {v['min_p']}, min_follows {v['min_follows']}, "
            f"{'keep' if v['keep_unverified'] else 'fail'} revisions that fail a judge check" if v else ""))
    return lines
