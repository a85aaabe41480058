"""`cai principles test --pairs` and `cai principles propose`: principles against labeled pairs."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, merge_overrides, validate_config


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


def test_pairs(*, pairs: str, ids: list[str] | None, constitution: Optional[str], model, backend, backend_option,
               principles_dir: Optional[str], out: Optional[str], min_strength: Optional[float], few_shot: Optional[int],
               question_first: bool, limit: Optional[int], chunk_size: Optional[int], seed: Optional[int],
               skip_invalid: bool) -> None:
    """The --pairs mode of `cai principles test`."""
    from rich.console import Console

    from cai.inverse import PrincipleTestConfig, run_principle_test

    data = {"pairs": pairs, "principles": list(ids or []), "judge": backend_config(None, backend, model, backend_option,
                                                                                   required=True),
            "pair_first": not question_first, "skip_invalid": skip_invalid}
    merge_overrides(data, {"constitution": constitution, "principles_dir": principles_dir, "out": out,
                           "min_strength": min_strength, "few_shot": few_shot, "limit": limit,
                           "chunk_size": chunk_size, "seed": seed})
    config = validate_config(PrincipleTestConfig, data, None)
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


def propose(
    pairs: str = typer.Option(..., "--pairs", help="Labeled pairs (any format cai reads; chosen = what people picked)."),
    out: str = typer.Option(..., "--out", help="Output folder (numbered stage files; resumable)."),
    n: int = typer.Option(5, "-n", help="Principles to select, at most."),
    per_pair: int = typer.Option(3, help="Principles the proposer may write per pair."),
    model: Optional[str] = typer.Option(None, help="Proposer model (default: smollm2-135m-instruct)."),
    judge_model: Optional[str] = typer.Option(None, help="Judge model that tests the proposals (default: the proposer)."),
    backend: str = typer.Option("auto", help="auto (vLLM with CUDA, else transformers), vllm, transformers or openai."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    max_candidates: int = typer.Option(30, help="Clusters of proposals kept as candidates."),
    embedding_model: Optional[str] = typer.Option(None, help="Local model folder to cluster with (default: TF-IDF)."),
    test_size: float = typer.Option(0.3, help="Share of pairs held out for the final accuracy."),
    constitution: Optional[str] = typer.Option(None, help="An existing constitution to compare with on held-out pairs."),
    principles_dir: Optional[str] = typer.Option(None, help="Principles folder of that constitution."),
    name: str = typer.Option("proposed", help="Name of the constitution written."),
    temperature: float = typer.Option(0.7, help="Sampling temperature of the proposals."),
    max_tokens: int = typer.Option(160, help="Most tokens per proposal answer."),
    few_shot: int = typer.Option(0, help="Worked comparisons before each vote."),
    limit: Optional[int] = typer.Option(None, help="Only the first N pairs."),
    chunk_size: int = typer.Option(16, help="Pairs per model call."),
    seed: int = typer.Option(0, help="Seed (split, shown order, sampling, bootstrap)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip malformed rows."),
    min_label_mass: Optional[float] = typer.Option(None, help="Label-mass floor: a vote whose judge puts less of its "
                                                   "probability on the answer labels fails its pair (default 0.1 or "
                                                   "$CAI_MIN_LABEL_MASS)."),
    judge_health: str = typer.Option("warn", help="warn or error: what an unhealthy judge does to the run."),
) -> None:
    """Propose principles that explain people's choices (inverse CAI), test them, keep the best set."""
    from rich.console import Console

    from cai.inverse import ProposeConfig, run_propose

    proposer = backend_config(None, backend, model, backend_option, required=True)
    data = {"pairs": pairs, "out": out, "n": n, "per_pair": per_pair, "proposer": proposer,
            "max_candidates": max_candidates, "embedding_model": embedding_model, "test_size": test_size,
            "constitution": constitution, "principles_dir": principles_dir, "name": name,
            "sampling": {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}, "few_shot": few_shot,
            "limit": limit, "chunk_size": chunk_size, "seed": seed, "skip_invalid": skip_invalid,
            "judge_health": judge_health}
    merge_overrides(data, {"min_label_mass": min_label_mass})
    if judge_model:
        data["judge"] = backend_config(None, backend, judge_model, backend_option, required=True)
    config = validate_config(ProposeConfig, data, None)
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
