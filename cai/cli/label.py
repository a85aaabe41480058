"""`cai label`: AI preference labels (log-prob soft labels) for pairs of responses."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, merge_overrides, validate_config
from cai.core.errors import CaiError

MIN_LABEL_MASS_HELP = ("Label-mass floor: a judgement putting less of its probability on the answer labels fails "
                       "(counted, never a label; default 0.1 or $CAI_MIN_LABEL_MASS).")
JUDGE_HEALTH_HELP = "warn (default) or error: what an unhealthy judge does to the run."


def labeling_flags(data: dict, *, principles_per_pair, both_orders, few_shot, cot, cot_max_tokens,
                   cot_temperature, clamp, seed, chunk_size, principles, min_label_mass=None,
                   judge_health=None) -> dict:
    """Merge the flags shared by `cai label` and `cai eval agreement` into a config dict."""
    merge_overrides(data, {"principles_per_pair": principles_per_pair, "both_orders": both_orders,
                           "few_shot": few_shot, "seed": seed, "chunk_size": chunk_size,
                           "principles_dir": principles, "min_label_mass": min_label_mass,
                           "judge_health": judge_health})
    cot_data = data.setdefault("cot", {})
    merge_overrides(cot_data, {"enabled": cot})
    if clamp is not None:
        low, sep, high = clamp.partition(",")
        try:
            cot_data["clamp"] = [float(low), float(high)]
        except ValueError:
            raise CaiError(f"--clamp expects LOW,HIGH such as 0.4,0.6, got '{clamp}'") from None
    if cot_max_tokens is not None or cot_temperature is not None:
        merge_overrides(cot_data.setdefault("sampling", {}),
                        {"max_tokens": cot_max_tokens, "temperature": cot_temperature})
    if not cot_data:
        data.pop("cot")
    return data


def label(
    pairs: Optional[str] = typer.Option(None, help="Pairs: `cai sample` output, a preference dataset, or an SL-CAI run folder."),
    constitution: Optional[str] = typer.Option(None, help="Constitution YAML (or a name under constitution/)."),
    model: Optional[str] = typer.Option(None, help="Feedback model: a local folder, hub id, .gguf file or known name (default: smollm2-135m-instruct)."),
    backend: str = typer.Option("auto", help="auto (vLLM with CUDA, else transformers), vllm, transformers or openai."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    out: Optional[str] = typer.Option(None, help="Output folder."),
    principles_per_pair: Optional[str] = typer.Option(None, help="Principles per pair (a number or 'all'; default: the constitution's sampling)."),
    both_orders: Optional[bool] = typer.Option(None, "--both-orders/--one-order", help="Score both positions and average."),
    few_shot: Optional[int] = typer.Option(None, help="Worked comparisons before each question (0: none)."),
    cot: Optional[bool] = typer.Option(None, "--cot/--no-cot", help="Reason step by step before answering."),
    cot_max_tokens: Optional[int] = typer.Option(None, help="Most tokens of reasoning."),
    cot_temperature: Optional[float] = typer.Option(None, help="Temperature of the reasoning."),
    clamp: Optional[str] = typer.Option(None, help="With --cot: clamp probabilities into LOW,HIGH (default 0.4,0.6)."),
    seed: Optional[int] = typer.Option(None, help="Seed for the shown order with --one-order."),
    limit: Optional[int] = typer.Option(None, help="Only the first N pairs."),
    chunk_size: Optional[int] = typer.Option(None, help="Pairs per backend call."),
    skip_invalid: Optional[bool] = typer.Option(None, "--skip-invalid/--no-skip-invalid", help="Skip malformed rows."),
    principles_dir: Optional[str] = typer.Option(None, help="Principles folder."),
    workers: Optional[int] = typer.Option(None, help="Ray workers, each holding its own copy of the model (needs cai-constitution[ray])."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster for the workers (auto, HOST:6379); default: a local one."),
    min_label_mass: Optional[float] = typer.Option(None, help=MIN_LABEL_MASS_HELP),
    judge_health: Optional[str] = typer.Option(None, help=JUDGE_HEALTH_HELP),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
) -> None:
    """Label pairs with a feedback model: soft labels from option log-probs, both orders, principle-ensembled."""
    from cai.feedback import LabelConfig, run_label

    data = load_yaml_config(config)
    merge_overrides(data, {"pairs": pairs, "constitution": constitution, "out": out, "limit": limit,
                           "skip_invalid": skip_invalid})
    labeling_flags(data, principles_per_pair=principles_per_pair, both_orders=both_orders, few_shot=few_shot,
                   cot=cot, cot_max_tokens=cot_max_tokens, cot_temperature=cot_temperature, clamp=clamp,
                   seed=seed, chunk_size=chunk_size, principles=principles_dir, min_label_mass=min_label_mass,
                   judge_health=judge_health)
    data["labeler"] = backend_config(data.get("labeler"), backend, model, backend_option, required=True,
                                     workers=workers, ray_address=ray_address)
    cfg = validate_config(LabelConfig, data, config)
    summary = run_label(cfg)
    _print_summary(summary, cfg.out)


def _print_summary(s: dict, out: str) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.markup import escape

    console = Console()
    table = Table(title=f"cai label → {escape(str(out))}", box=None)
    table.add_column("principle")
    table.add_column("pairs", justify="right")
    for principle, count in s["per_principle"].items():
        table.add_row(escape(principle), str(count))  # an id is data, not rich markup
    console.print(table)
    skipped = ", ".join(f"{k}={v}" for k, v in s["skipped"].items() if v) or "none"
    from cai.core.rates import position_bias_warning, rate_text

    checked = s.get("position_checked")
    consistency = ("n/a (one order)" if s["position_consistency"] is None
                   else rate_text(s["position_consistency"], checked, of="pairs") if checked
                   else f"{s['position_consistency']:.1%}")
    console.print(
        f"pairs {s['pairs']} (resumed from {s['resumed_from']}; skipped: {skipped}); "
        f"mean |p-0.5| {s['mean_margin']}; position consistency {consistency}; "
        f"{s['comparisons']} comparisons in {s['seconds']:.1f}s", soft_wrap=True, markup=False
    )
    warning = position_bias_warning(s["position_consistency"], checked)
    if warning:
        Console(stderr=True).print(warning, soft_wrap=True, markup=False)
    print_health(s, console, who="labeler")


def print_health(s: dict, console, who: str = "judge") -> None:
    """The judge-health record of a summary (``judge_health``) and its failed rows, as plain text."""
    from cai.judge.health import JudgeHealth

    if s.get("failed"):
        reasons = ", ".join(f"{k} {v}" for k, v in sorted((s.get("failed_by_reason") or {}).items()))
        console.print(f"failed: {s['failed']} pairs not labeled ({reasons}); first: "
                      + "; ".join(s.get("failures", [])[:3]), soft_wrap=True, markup=False)
    if s.get("judge_health"):
        for line in JudgeHealth.from_dict(s["judge_health"]).lines(who):
            console.print(line, soft_wrap=True, markup=False, highlight=False)
