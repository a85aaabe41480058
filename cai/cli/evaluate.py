"""`cai eval ...`: evaluations. `cai eval agreement`: AI labels against human labels."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.cli.label import print_health
from cai.core.errors import CaiError
from cai.evals.config import BehaviorConfig, RewardAuditConfig
from cai.feedback.config import AgreementConfig

app = typer.Typer(rich_markup_mode=None, help="Evaluate labels and models.", no_args_is_help=True)


_AGREEMENT_FIELDS = [
    "labels", "constitution", "limit", "bins", "out", "principles_dir", "principles_per_pair", "both_orders", "few_shot",
    "seed", "chunk_size", "flush_seconds", "min_label_mass", "judge_health",
]


@app.command("agreement")
@takes_fields(AgreementConfig, _AGREEMENT_FIELDS,
              nested={"cot": ["enabled", "prompt"], "cot.sampling": ["max_tokens", "temperature"]},
              flags={"cot.enabled": "--cot/--no-cot", "cot.prompt": "--cot-prompt",
                     "cot.sampling.max_tokens": "--cot-max-tokens", "cot.sampling.temperature": "--cot-temperature"})
def agreement(
    file: str = typer.Argument(..., help="Human pairwise labels (any preference format) or a multiple-choice file."),
    model: Optional[str] = typer.Option(None, help="Feedback model: a local folder, hub id, .gguf file or known name (cai models list)."),
    backend: str = typer.Option("auto", help="auto (vLLM with CUDA, else transformers), vllm, transformers or openai."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """Qualify a judge on human pairs: accuracy, Cohen's kappa, calibration (ECE), judge health (label mass,
    failed judgements, position consistency, length bias beside the people's own), per principle."""
    from cai.feedback import run_agreement

    data = load_yaml_config(config)
    apply_fields(data, fields)
    data["file"] = file
    if model or data.get("labeler"):
        data["labeler"] = backend_config(data.get("labeler"), backend, model, backend_option)
    cfg = validate_config(AgreementConfig, data, config)
    _print_report(run_agreement(cfg), cfg.out)


def _print_report(r: dict, out: str | None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.markup import escape

    def pct(v):
        return "n/a" if v is None else f"{v:.1%}"

    console = Console()
    table = Table(title=escape(f"agreement with {r['file']} ({r['kind']})"), box=None)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("items", str(r["n"]) + (f" ({r['missing']} missing from labels)" if r["missing"] else "")
                  + (f" ({r['human_ties']} human ties left out)" if r.get("human_ties") else ""))
    from cai.core.rates import position_bias_warning, rate_text

    table.add_row("accuracy", rate_text(r["accuracy"], r["n"]))
    kappa = r.get("kappa")
    if kappa:
        table.add_row("Cohen's kappa", "n/a" if kappa["kappa"] is None else
                      f"{kappa['kappa']:.3f} [{kappa['low']:.3f}, {kappa['high']:.3f}] (n={kappa['n']}; 0 = chance)")
    table.add_row("expected calibration error", "n/a" if r["ece"] is None else f"{r['ece']:.3f}")
    checked = r.get("position_checked")
    table.add_row("position consistency", rate_text(r["position_consistency"], checked) if checked
                  else pct(r["position_consistency"]))
    for principle, s in r["per_principle"].items():
        table.add_row(escape(f"  {principle}"), f"{pct(s['accuracy'])} of {s['n']}")
    console.print(table)
    warning = position_bias_warning(r["position_consistency"], checked)
    if warning:
        console.print(warning, soft_wrap=True, markup=False)
    if r.get("skipped"):
        console.print("skipped pairs: " + ", ".join(f"{k} {v}" for k, v in r["skipped"].items()))
    if r.get("failed") and r.get("kind") == "multiple-choice":
        console.print(f"failed rows: {r['failed']} (first: {r['failures'][0]})", soft_wrap=True, markup=False)
    print_health(r, console, who="labeler")
    if out:
        console.print(f"report written to {out}")


def _suites(values: list[str]) -> list[str]:
    """Suite names given comma-separated or repeated (``--suites a,b --suites c``)."""
    return [s.strip() for v in values for s in v.split(",") if s.strip()]


_BEHAVIOR_FIELDS = [
    "out", "responses", "baseline_responses", "suites", "constitution", "principles_dir", "few_shot", "n_boot", "seed",
    "limit", "worst", "guard",
]


@app.command("behavior")
@takes_fields(BehaviorConfig, _BEHAVIOR_FIELDS,
              nested={"sampling": ["temperature", "top_p", "max_tokens", "seed", "frequency_penalty"]},
              flags={"sampling.seed": "--sampling-seed"})
def behavior(
    model: Optional[str] = typer.Option(None, help="The model under test: a local folder, hub id, .gguf file or known name (cai models list)."),
    baseline: Optional[str] = typer.Option(None, help="A model to compare with (e.g. before the CAI run)."),
    judge_model: Optional[str] = typer.Option(None, help="Judge model; without it only the model-free detector judges."),
    backend: str = typer.Option("auto", help="auto (vLLM with CUDA, else transformers), vllm, transformers or openai (for every model)."),
    judge_backend: Optional[str] = typer.Option(None, help="Backend of the judge (default: --backend)."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    workers: Optional[int] = typer.Option(None, help="Ray workers per model, each holding its own copy (needs cai-constitution[ray])."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster for the workers (auto, HOST:6379); default: a local one."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """Red team, over-refusal, sycophancy, verbosity, hedging and hallucination probes: rates with 95% intervals."""
    from cai.evals.behavior import run_behavior

    data = load_yaml_config(config)
    if "suites" in fields:  # comma-separated or repeated
        fields["suites"] = _suites(fields["suites"])
    apply_fields(data, fields)
    for key, name, back in (("model", model, backend), ("baseline", baseline, backend),
                            ("judge", judge_model, judge_backend or backend)):
        if name or data.get(key):
            data[key] = backend_config(data.get(key), back, name, backend_option, workers=workers,
                                       ray_address=ray_address)
    if (data.get("model") is None) == (data.get("responses") is None):
        raise CaiError("give the model to test (--model) or its responses (--responses), one of the two")
    cfg = validate_config(BehaviorConfig, data, config)
    summary = run_behavior(cfg)
    _print_behavior(summary, cfg.out)


def _print_behavior(s: dict, out: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from cai.evals.report import behavior_warnings
    from cai.core.rates import estimate_text

    def fmt(r):
        return estimate_text(r) if r else "–"

    base = any(r["baseline"] for r in s["results"])
    judged = any(r["candidate"].get("judge_rate") for r in s["results"])
    table = Table(title="behaviour (95% intervals: Wilson for shares, bootstrap for the length ratio)", box=None)
    cols = ["suite", "metric", "n", "candidate"] + (["detector", "judge", "headline by"] if judged else []) + (
        ["baseline", "difference", "change", "win rate"] if base else [])
    for col in cols:
        table.add_column(col)
    for r in s["results"]:
        c = r["candidate"]
        row = [r["suite"], f"{r['metric']} ({'higher' if r['higher_is_better'] else 'lower'} is better)",
               str(r["probes"]), fmt(c["rate"])]
        if judged:
            row += [fmt(c.get("detector_rate")), fmt(c.get("judge_rate")), c.get("rated_by", "")]
        if base:
            row += [fmt((r["baseline"] or {}).get("rate")), fmt(r["diff"]), r.get("change") or "–", fmt(r["win_rate"])]
        table.add_row(*row)
    console = Console(width=200)
    console.print(table)
    for suite, models in ((s.get("guard") or {}).get("by_suite") or {}).items():
        for model, g in models.items():
            agree = f"; agrees with the suite's decision on {fmt(g['agrees_with_fail'])}" if g["agrees_with_fail"] else ""
            console.print(f"guard on {suite} ({model}): {g['meaning']}: {fmt(g['flagged'])}{agree}", markup=False)
    for r in s["results"]:
        h = r["candidate"].get("human_agreement")
        if h:
            line = (f"{r['suite']}: agreement with people's labels (n={h['n']}): detector {fmt(h.get('detector'))}, "
                    f"XSTest keyword match {fmt(h.get('keyword'))}")
            if h.get("judge"):
                line += f", judge {fmt(h['judge'])}"
            console.print(line, markup=False, soft_wrap=True)
    checked = next((r["candidate"]["detector_checked"] for r in s["results"] if r["candidate"].get("detector_checked")), None)
    if checked:
        console.print(checked, markup=False, soft_wrap=True)
    health = s.get("judge_health")
    if health:
        from cai.judge.health import JudgeHealth

        for line in JudgeHealth.from_dict(health).lines("eval judge"):
            console.print(line, markup=False, soft_wrap=True)
    for w in behavior_warnings(s):
        console.print(f"warning: {w}", markup=False, soft_wrap=True)
    if s["skipped_rows"]:
        console.print(f"{len(s['skipped_rows'])} bad rows skipped (listed in summary.json); first: {s['skipped_rows'][0]}",
                      markup=False, soft_wrap=True)
    console.print(f"report: {out}/report.html", markup=False, soft_wrap=True)


_REWARD_AUDIT_FIELDS = ["out", "suites", "batch_size", "max_length", "device", "n_boot", "seed"]


@app.command("reward-model")
@takes_fields(RewardAuditConfig, _REWARD_AUDIT_FIELDS)
def reward_model(
    reward_model: str = typer.Argument(..., help="Reward model folder (sequence classification, one output)."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """Does the reward model pay for padding, flattery, hedges, agreeing with false claims, refusals or harm?"""
    from rich.console import Console
    from rich.table import Table

    from cai.evals.reward_audit import run_reward_audit

    data = load_yaml_config(config)
    if "suites" in fields:  # comma-separated or repeated
        fields["suites"] = _suites(fields["suites"])
    apply_fields(data, fields)
    data["reward_model"] = reward_model
    cfg = validate_config(RewardAuditConfig, data, config)
    out = cfg.out
    s = run_reward_audit(cfg)
    table = Table(title=f"reward-model audit: {reward_model}", box=None)
    for col in ("bias", "pairs", "prefers worse [95% CI]", "mean margin [95% CI]"):
        table.add_column(col)
    for b in s["biases"]:
        pw, mm = b["prefers_worse"], b["mean_margin"]
        table.add_row(b["bias"], str(b["n"]), f"{pw['value']:.0%} [{pw['ci'][0]:.0%}, {pw['ci'][1]:.0%}]",
                      f"{mm['value']:+.3f} [{mm['ci'][0]:+.3f}, {mm['ci'][1]:+.3f}]")
    console = Console(width=160)
    console.print(table)
    lr = s["length_reward"]
    console.print(f"length-reward correlation over {lr['n']} responses: Pearson {lr['pearson']}, Spearman {lr['spearman']}")
    verdict = s.get("verdict") or {}
    if verdict:
        console.print(f"audit: {verdict['status']}: {verdict['text']}", markup=False, soft_wrap=True)
    console.print(f"report: {out}/report.html")
