"""`cai eval ...`: evaluations. `cai eval agreement`: AI labels against human labels."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, merge_overrides, validate_config
from cai.cli.label import JUDGE_HEALTH_HELP, MIN_LABEL_MASS_HELP, labeling_flags, print_health
from cai.core.errors import CaiError

app = typer.Typer(rich_markup_mode=None, help="Evaluate labels and models.", no_args_is_help=True)


@app.command("agreement")
def agreement(
    file: str = typer.Argument(..., help="Human pairwise labels (any preference format) or a multiple-choice file."),
    labels: Optional[str] = typer.Option(None, help="A `cai label` output to use instead of running the model."),
    model: Optional[str] = typer.Option(None, help="Feedback model: a local folder, hub id, .gguf file or known name (cai models list)."),
    backend: str = typer.Option("auto", help="auto (vLLM with CUDA, else transformers), vllm, transformers or openai."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    constitution: Optional[str] = typer.Option(None, help="Constitution YAML (or a name under constitution/)."),
    limit: Optional[int] = typer.Option(None, help="Only the first N rows."),
    out: Optional[str] = typer.Option(None, help="Write the report as JSON to this file."),
    principles_per_pair: Optional[str] = typer.Option(None, help="Principles per pair (a number or 'all')."),
    both_orders: Optional[bool] = typer.Option(None, "--both-orders/--one-order", help="Score both positions and average."),
    few_shot: Optional[int] = typer.Option(None, help="Worked comparisons before each question."),
    cot: Optional[bool] = typer.Option(None, "--cot/--no-cot", help="Reason step by step before answering."),
    bins: Optional[int] = typer.Option(None, help="Confidence bins of the calibration error."),
    chunk_size: Optional[int] = typer.Option(None, help="Pairs per backend call."),
    principles_dir: Optional[str] = typer.Option(None, help="Principles folder."),
    min_label_mass: Optional[float] = typer.Option(None, help=MIN_LABEL_MASS_HELP),
    judge_health: Optional[str] = typer.Option(None, help=JUDGE_HEALTH_HELP),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
) -> None:
    """Qualify a judge on human pairs: accuracy, Cohen's kappa, calibration (ECE), judge health (label mass,
    failed judgements, position consistency, length bias beside the people's own), per principle."""
    from cai.feedback import AgreementConfig, run_agreement

    data = load_yaml_config(config)
    merge_overrides(data, {"file": file, "labels": labels, "constitution": constitution, "limit": limit,
                           "out": out, "bins": bins})
    labeling_flags(data, principles_per_pair=principles_per_pair, both_orders=both_orders, few_shot=few_shot,
                   cot=cot, cot_max_tokens=None, cot_temperature=None, clamp=None, seed=None,
                   chunk_size=chunk_size, principles=principles_dir, min_label_mass=min_label_mass,
                   judge_health=judge_health)
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


def _suites(values: list[str]) -> list[str] | None:
    out = [s.strip() for v in values for s in v.split(",") if s.strip()]
    return out or None


@app.command("behavior")
def behavior(
    out: Optional[str] = typer.Option(None, help="Output folder: summary.json, probes.jsonl, report.html."),
    model: Optional[str] = typer.Option(None, help="The model under test: a local folder, hub id, .gguf file or known name (cai models list)."),
    responses: Optional[str] = typer.Option(None, help="Judge these responses instead (JSONL or XSTest completions CSV)."),
    baseline: Optional[str] = typer.Option(None, help="A model to compare with (e.g. before the CAI run)."),
    baseline_responses: Optional[str] = typer.Option(None, help="The baseline's responses instead of a model."),
    judge_model: Optional[str] = typer.Option(None, help="Judge model; without it only the model-free detector judges."),
    guard: Optional[str] = typer.Option(None, help="A 'cai guard train' folder: its flags beside the detector's and the judge's."),
    suites: list[str] = typer.Option([], "--suites", help="Suite names or files, comma-separated or repeated (default: all built-in)."),
    backend: str = typer.Option("auto", help="auto (vLLM with CUDA, else transformers), vllm, transformers or openai (for every model)."),
    judge_backend: Optional[str] = typer.Option(None, help="Backend of the judge (default: --backend)."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    constitution: Optional[str] = typer.Option(None, help="Constitution judging the pairwise win rate (default: default)."),
    principles_dir: Optional[str] = typer.Option(None, help="Your own principles folder (several: DIR1:DIR2): "
                                                 "probes may name them beside the shipped ones."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature (default 0: greedy)."),
    max_tokens: Optional[int] = typer.Option(None, help="Most tokens per response (default 256)."),
    seed: Optional[int] = typer.Option(None, help="Seed of sampling and of the bootstrap."),
    limit: Optional[int] = typer.Option(None, help="Only the first N probes of each suite."),
    few_shot: Optional[int] = typer.Option(None, help="Worked comparisons before each pairwise question."),
    n_boot: Optional[int] = typer.Option(None, help="Bootstrap resamples (default 2000)."),
    workers: Optional[int] = typer.Option(None, help="Ray workers per model, each holding its own copy (needs cai-constitution[ray])."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster for the workers (auto, HOST:6379); default: a local one."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
) -> None:
    """Red team, over-refusal, sycophancy, verbosity, hedging and hallucination probes: rates with 95% intervals."""
    from cai.evals.behavior import run_behavior
    from cai.evals.config import BehaviorConfig

    data = load_yaml_config(config)
    merge_overrides(data, {"out": out, "responses": responses, "baseline_responses": baseline_responses,
                           "suites": _suites(suites), "constitution": constitution, "limit": limit,
                           "principles_dir": principles_dir,
                           "few_shot": few_shot, "n_boot": n_boot, "seed": seed, "guard": guard})
    # greedy and seeded unless said otherwise, also when a config gives only some sampling fields
    sampling = data["sampling"] = {"temperature": 0.0, "max_tokens": 256, "seed": 0, **(data.get("sampling") or {})}
    merge_overrides(sampling, {"temperature": temperature, "max_tokens": max_tokens, "seed": seed})
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


@app.command("reward-model")
def reward_model(
    reward_model: str = typer.Argument(..., help="Reward model folder (sequence classification, one output)."),
    out: str = typer.Option(..., help="Output folder: summary.json, pairs.jsonl, report.html."),
    suites: list[str] = typer.Option([], "--suites", help="Suites to build pairs from (default: all built-in)."),
    batch_size: int = typer.Option(16, help="Conversations per forward pass."),
    max_length: Optional[int] = typer.Option(None, help="Tokens per conversation (left-truncated)."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
) -> None:
    """Does the reward model pay for padding, flattery, hedges, agreeing with false claims, refusals or harm?"""
    from rich.console import Console
    from rich.table import Table

    from cai.evals.config import RewardAuditConfig
    from cai.evals.reward_audit import run_reward_audit

    cfg = RewardAuditConfig(reward_model=reward_model, out=out, suites=_suites(suites) or [], batch_size=batch_size,
                            max_length=max_length, device=device)
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
