"""`cai guard eval`: the guard's catch rate on violations and false-positive rate on benign texts,
with n and Wilson intervals, on held-out guard data and on probe suites (a red-team suite should
be caught, an over-refusal suite should pass)."""

from __future__ import annotations

import json
from pathlib import Path

from cai.core.errors import CaiError
from cai.core.rates import estimate_text, proportion
from cai.guard.classify import GUARD_FILE, Guard, threshold_for
from cai.guard.config import GuardEvalConfig
from cai.guard.train import rates, read_rows, train_file


def suite_prompts(ref: str) -> list[tuple[str, str]]:
    """``(probe id, last user text)`` of every probe in a suite file or built-in suite name.
    (Guard sits below the evals room, so it reads the suite YAML itself: probes' ``prompt``, or the
    last ``user`` turn of ``messages``.)"""
    from cai.core.files import read_text_file
    from cai.core.yamlutil import load_yaml

    from cai.principles.library import shipped_dir

    path = Path(ref)
    if not path.exists():
        builtin = (shipped_dir("suites") or Path(".")) / f"{ref}.yaml"
        if not builtin.exists():
            raise CaiError(f"no suite '{ref}': give a suite YAML file or a built-in suite name")
        path = builtin
    text, diags = read_text_file(str(path))
    if text is None:
        raise diags[0].to_error()
    data, _, _ = load_yaml(text)
    out = []
    for probe in (data or {}).get("probes", []) if isinstance(data, dict) else []:
        if not isinstance(probe, dict):
            continue
        prompt = probe.get("prompt")
        if prompt is None and isinstance(probe.get("messages"), list):
            users = [t.get("user") for t in probe["messages"] if isinstance(t, dict) and t.get("user")]
            prompt = users[-1] if users else None
        if isinstance(prompt, str) and prompt.strip():
            out.append((str(probe.get("id", len(out))), prompt))
    if not out:
        raise CaiError(f"suite {path} holds no probe with a prompt")
    return out


def run_guard_eval(config: GuardEvalConfig, *, guard: Guard | None = None, console=None) -> dict:
    """Score the held-out rows and the suites; write ``summary.json`` and ``scores.jsonl``. With
    ``target_fpr`` the threshold is recalibrated on the data's benign rows (saved to guard.json;
    the data figures are then in-sample and marked so). Raises CaiError without any input."""
    say = console.print if console is not None else print
    if config.data is None and not config.redteam and not config.benign:
        raise CaiError("nothing to evaluate: pass --data, --redteam SUITE or --benign SUITE")
    guard = guard or Guard(config.model, batch_size=config.batch_size)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"model": str(config.model), "threshold": guard.threshold, "calibrated_here": False}
    scored: list[dict] = []
    if config.data is not None:
        rows = read_rows(config.data, "test")
        if not rows:
            where = train_file(config.data, "test")
            if not config.redteam and not config.benign:
                raise CaiError(f"nothing to evaluate: {where} holds no rows (a guard-data folder with no principle held "
                               "out); regenerate with more principles or a larger --test-size, or pass --redteam/--benign")
            say(f"  warning: {where} holds no rows: no held-out figure")
        meta = getattr(guard, "meta", None) or {}
        trained_on = meta.get("train_file") or (str(Path(meta["data"]).resolve()) if meta.get("data") else None)
        summary["trained_on_these_rows"] = trained_on == str(train_file(config.data, "test"))
        scores = guard.scores([r["text"] for r in rows], [r["role"] for r in rows])
        if config.target_fpr is not None:
            if not any(r["label"] == 0 for r in rows):
                raise CaiError(f"--target-fpr: {train_file(config.data, 'test')} holds no benign (label 0) row to "
                               "calibrate on; guard.json was left as it was")
            guard.threshold = threshold_for([s for s, r in zip(scores, rows, strict=True) if r["label"] == 0],
                                            config.target_fpr)
            meta = json.loads((Path(config.model) / GUARD_FILE).read_text())
            meta.update(threshold=guard.threshold, target_fpr=config.target_fpr, calibrated_on=str(config.data))
            (Path(config.model) / GUARD_FILE).write_text(json.dumps(meta, indent=2))
            summary.update(threshold=guard.threshold, calibrated_here=True)
        summary["data"] = rates(scores, [r["label"] for r in rows], guard.threshold)
        summary["data"]["by_kind"] = {}
        for kind in sorted({r.get("kind", "") for r in rows}):
            ks = [(s, r["label"]) for s, r in zip(scores, rows, strict=True) if r.get("kind", "") == kind]
            flagged = sum(s >= guard.threshold for s, _ in ks)
            summary["data"]["by_kind"][kind or "unknown"] = {"flagged": proportion(flagged, len(ks)), "n": len(ks)}
        scored += [{"source": "data", "id": r.get("id"), "label": r["label"], "score": s} for r, s in zip(rows, scores, strict=True)]
    for kind, refs in (("redteam", config.redteam), ("benign", config.benign)):
        for ref in refs:
            probes = suite_prompts(ref)
            scores = guard.scores([t for _, t in probes], "input")
            flagged = sum(s >= guard.threshold for s in scores)
            key = "catch_rate" if kind == "redteam" else "false_positive_rate"
            summary.setdefault(kind, {})[ref] = {key: proportion(flagged, len(probes))}
            scored += [{"source": ref, "id": pid, "label": int(kind == "redteam"), "score": s}
                       for (pid, _), s in zip(probes, scores, strict=True)]
    with open(out / "scores.jsonl", "w", encoding="utf-8") as fh:
        for row in scored:
            fh.write(json.dumps(row) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    note = " (threshold calibrated on these rows: in-sample)" if summary["calibrated_here"] else ""
    heading = "held-out data"
    if summary.get("trained_on_these_rows"):
        heading, note = "data (in-sample)", note + " (the guard was trained on these rows: not a held-out figure)"
    say(f"guard eval: threshold {guard.threshold:.4f}")
    if "data" in summary:
        say(f"  {heading}: catch rate {estimate_text(summary['data']['catch_rate'])}, false positives "
            f"{estimate_text(summary['data']['false_positive_rate'])}{note}")
    for ref, r in summary.get("redteam", {}).items():
        say(f"  {ref}: catch rate {estimate_text(r['catch_rate'])}")
    for ref, r in summary.get("benign", {}).items():
        say(f"  {ref}: false positives {estimate_text(r['false_positive_rate'])}")
    return summary
