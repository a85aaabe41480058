"""`cai label`: AI preference labels (log-prob soft labels) for pairs of responses."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.core.errors import CaiError
from cai.feedback.config import CotConfig, LabelConfig

_LABEL_FIELDS = [
    "pairs", "constitution", "out", "limit", "skip_invalid", "principles_dir", "principles_per_pair", "both_orders",
    "few_shot", "seed", "chunk_size", "flush_seconds", "min_label_mass", "judge_health",
]


@takes_fields(LabelConfig, _LABEL_FIELDS,
              nested={"cot": ["enabled", "prompt"], "cot.sampling": ["max_tokens", "temperature"]},
              flags={"cot.enabled": "--cot/--no-cot", "cot.prompt": "--cot-prompt",
                     "cot.sampling.max_tokens": "--cot-max-tokens", "cot.sampling.temperature": "--cot-temperature"})
def label(
    model: Optional[str] = typer.Option(None, help="Feedback model: a local folder, hub id, .gguf file or known name (default: smollm2-135m-instruct)."),
    backend: str = typer.Option("auto", help="auto (vLLM with CUDA, else transformers), vllm, transformers or openai."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    # cot.clamp is a pair written as one value (LOW,HIGH): a generated flag would take two
    clamp: Optional[str] = typer.Option(None, metavar="LOW,HIGH",
                                        help=f"{CotConfig.model_fields['clamp'].description} Written LOW,HIGH "
                                             "(default: 0.4,0.6)."),
    workers: Optional[int] = typer.Option(None, help="Ray workers, each holding its own copy of the model (needs cai-constitution[ray])."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster for the workers (auto, HOST:6379); default: a local one."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """Label pairs with a feedback model: soft labels from option log-probs, both orders, principle-ensembled."""
    from cai.feedback import run_label

    data = load_yaml_config(config)
    apply_fields(data, fields)
    if clamp is not None:
        low, _, high = clamp.partition(",")
        try:
            pair = [float(low), float(high)]
        except ValueError:
            raise CaiError(f"--clamp expects LOW,HIGH such as 0.4,0.6, got '{clamp}'") from None
        apply_fields(data, {"cot": {"clamp": pair}})
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
