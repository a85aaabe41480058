"""`cai principles test --pairs` and `cai principles propose`: principles against labeled pairs."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.inverse.config import ProposeConfig


def _pct(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "n/a"
    ci = m.get("ci")
    return f"{100 * m['value']:.1f}%" + (f" [{100 * ci[0]:.0f}-{100 * ci[1]:.0f}]" if ci else "")


def _signed(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "n/a"
    ci = m.get("ci")
    return f"{m['value']:+.3f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")


def _failed(report: dict) -> None:
    if report.get("failed"):
        first = report["failed_pairs"][0]
        typer.echo(f"{report['failed']} pair(s) failed and were left out (first: {first['origin'] or first['pair']}: "
                   f"{first['reason']})", err=True)


def print_judge_health(report: dict, console) -> None:
    """The judge-health record of a report (label mass, failed votes, position consistency, length
    bias beside the people's own rate), plain text; a warning first when the judge is weak."""
    if not report.get("judge_health"):
        return
    from cai.judge.health import JudgeHealth

    health = JudgeHealth.from_dict(report["judge_health"])
    warning = health.warning("judge")
    if warning:
        console.print(warning + ": the strengths and accuracies above rest on this judge's votes", markup=False,
                      soft_wrap=True, highlight=False)
    for line in health.lines("judge")[1:] if warning else health.lines("judge"):
        console.print(line, markup=False, soft_wrap=True, highlight=False)


def print_principles(report: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table("#", "principle", "relevance", "accuracy (where it applies)", "strength", "votes +/-/0",
                  box=None, pad_edge=False, title=f"{report['pairs']} pairs; 95% bootstrap intervals")
    for i, m in enumerate(report["principles"], 1):
        small = " (small sample)" if m["small_sample"] else ""
        table.add_row(str(i), escape(m["principle"]), _pct(m["relevance"]), _pct(m["accuracy"]) + small,
                      _signed(m["strength"]), f"{m['agree']}/{m['disagree']}/{m['abstain']}")
    console.print(table)
    checked = [m["position_consistency"] for m in report["principles"] if m["position_consistency"]["n"]]
    n = sum(c["n"] for c in checked)
    consistent = sum(c["value"] * c["n"] for c in checked) / n if n else None
    if consistent is not None and consistent < 0.5:
        console.print(f"warning: the judge's two orders agree on only {100 * consistent:.0f}% of {n} votes: its "
                      "answers follow the position of a response more than the response; these votes are close "
                      "to noise (use a stronger judge)", markup=False)
    print_judge_health(report, console)
    contradictions = [r for r in report["relations"] if r["contradict"]]
    for r in contradictions:
        console.print(f"contradiction: {r['a']} and {r['b']} pick opposite responses on "
                      f"{100 * (1 - r['same']):.0f}% of the {r['both']} pairs where both apply", markup=False)


def test_pairs(config) -> None:
    """The --pairs mode of `cai principles test`, on its validated :class:`PrincipleTestConfig`."""
    from rich.console import Console

    from cai.inverse import run_principle_test

    out, min_strength = config.out, config.min_strength
    console = Console(stderr=True)
    report = run_principle_test(config, console=console)
    print_principles(report, Console(width=160))
    c, b, g = report["constitution"], report["no_principle"], report["constitution_minus_no_principle"]
    typer.echo(f"together (majority vote): {_pct(c)} of {c['n']} pairs agree with the labels; "
               f"no-principle judge: {_pct(b)}; difference {_signed(g)}")
    _failed(report)
    if out:
        typer.echo(f"report: {out}/report.json, {out}/report.html")
    if report["below_min_strength"]:
        typer.echo(f"{len(report['below_min_strength'])} principle(s) below strength {min_strength}: "
                   f"{', '.join(report['below_min_strength'])}", err=True)
        raise typer.Exit(1)


_PROPOSE_FIELDS = [
    "pairs", "out", "n", "per_pair", "max_candidates", "embedding_model", "test_size", "constitution", "principles_dir",
    "name", "few_shot", "pair_first", "chunk_size", "n_boot", "seed", "limit", "skip_invalid", "min_label_mass",
    "judge_health",
]


@takes_fields(ProposeConfig, _PROPOSE_FIELDS,
              nested={"sampling": ["temperature", "top_p", "max_tokens", "seed", "frequency_penalty"]},
              flags={"n": ("--n", "-n"), "sampling.seed": "--sampling-seed"})
def propose(
    model: Optional[str] = typer.Option(None, help="Proposer model (default: smollm2-135m-instruct)."),
    judge_model: Optional[str] = typer.Option(None, help="Judge model that tests the proposals (default: the proposer)."),
    backend: str = typer.Option("auto", help="auto (vLLM with CUDA, else transformers), vllm, transformers or openai."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """Propose principles that explain people's choices (inverse CAI), test them, keep the best set."""
    from rich.console import Console

    from cai.inverse import run_propose

    data = load_yaml_config(config)
    apply_fields(data, fields)
    data["proposer"] = backend_config(data.get("proposer"), backend, model, backend_option, required=True)
    if judge_model or data.get("judge"):
        data["judge"] = backend_config(data.get("judge"), backend, judge_model, backend_option, required=True)
    config = validate_config(ProposeConfig, data, config)
    out = config.out
    s = run_propose(config, console=Console(stderr=True))
    typer.echo(f"{s['train']} train pairs: {s['proposed_principles']} principles proposed "
               f"({s['unparseable']} of {s['proposals']} answers unparseable), {s['candidates']} candidates")
    for i, step in enumerate(s["steps"], 1):
        typer.echo(f"  {i}. {step['added']}: set accuracy {100 * step['accuracy']:.1f}% (train)")
    typer.echo(f"stopped: {s['stopped']}")
    h = s["held_out"]
    if h.get("nothing_selected") or not s["selected"]:
        typer.echo(f"no principle was selected ({s['stopped']}): there is no selected set to score on the "
                   f"{h['pairs']} held-out pairs")
    elif h.get("selected"):
        line = (f"held out ({h['pairs']} pairs): selected {_pct(h['selected'])}, no principle {_pct(h['no_principle'])}, "
                f"difference {_signed(h['selected_minus_no_principle'])}")
        if h.get("constitution_accuracy"):
            line += f"; {h['constitution']}: {_pct(h['constitution_accuracy'])}"
        typer.echo(line + (" (small sample)" if h["selected"]["small_sample"] else ""))
    _failed(s)
    from rich.console import Console as _Console

    print_judge_health(s, _Console(width=160))
    typer.echo(f"wrote {len(s['written'])} files under {out} (report: {out}/report.html)")
