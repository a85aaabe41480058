"""`cai generate` (SL-CAI) and `cai show`."""

from __future__ import annotations

from typing import Optional

import typer

from cai.cli.common import backend_config, load_yaml_config, validate_config
from cai.cli.fields import apply_fields, takes_fields
from cai.sl.config import GenerateConfig


_GENERATE_FIELDS = [
    "constitution", "prompts", "out", "rounds", "limit", "chunk_size", "flush_seconds", "skip_ok", "export",
    "truncated", "retries", "prompt_format", "prompt_column", "id_column", "hh_turns", "system_prompt", "principles_dir",
    "verify", "min_p", "verify_sft", "keep_unverified", "min_follows", "verify_few_shot", "pick", "min_applies",
    "min_label_mass", "judge_health",
]


@takes_fields(GenerateConfig, _GENERATE_FIELDS,
              nested={"sampling": ["temperature", "top_p", "max_tokens", "seed", "frequency_penalty"]})
def generate(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, help="Policy model: a local folder, hub id, .gguf file or known name (default: smollm2-135m-instruct)."),
    backend: str = typer.Option("auto", help="auto (vLLM with CUDA, else transformers), vllm, transformers or openai."),
    backend_option: list[str] = typer.Option([], "--backend-option", "-O", help="key=value backend option (repeatable)."),
    critic_model: Optional[str] = typer.Option(None, help="A different model for critiques."),
    critic_backend: Optional[str] = typer.Option(None, help="Backend of the critic (default: --backend)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (prompts, principles, rounds, model, out) and check the inputs; load no model, run nothing."),
    feedback_model: Optional[str] = typer.Option(None, help="--verify or --pick applicable: the judge model (default: the critic)."),
    feedback_backend: Optional[str] = typer.Option(None, help="Backend of the judge (default: --backend)."),
    workers: Optional[int] = typer.Option(None, help="Ray workers, each holding its own copy of the model (needs cai-constitution[ray])."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster for the workers (auto, HOST:6379); default: a local one."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config; flags override it."),
    *, fields: dict,
) -> None:
    """SL-CAI: draft, critique and revise every prompt against a constitution; export SFT and preference data."""
    from cai.sl import run_generate

    data = load_yaml_config(config)
    apply_fields(data, fields)
    data["policy"] = backend_config(data.get("policy"), backend, model, backend_option, required=True,
                                    workers=workers, ray_address=ray_address)
    if critic_model or data.get("critic"):
        data["critic"] = backend_config(data.get("critic"), critic_backend or backend, critic_model, backend_option,
                                        workers=workers, ray_address=ray_address)
    if feedback_model or data.get("feedback"):
        data["feedback"] = backend_config(data.get("feedback"), feedback_backend or backend, feedback_model,
                                          backend_option)
    cfg = validate_config(GenerateConfig, data, config)
    if dry_run:
        from cai.sl.plan import plan_generate, plan_lines

        for line in plan_lines(plan_generate(cfg)):
            typer.echo(line)
        return
    try:
        summary = run_generate(cfg)
    except KeyboardInterrupt:
        _interrupted(cfg.out, ctx)
        raise typer.Exit(130) from None
    _print_summary(summary, cfg.out)


def _interrupted(out: str, ctx=None) -> None:
    """The one line after Ctrl-C: what is kept and the command that resumes."""
    import shlex
    from pathlib import Path

    from cai.sl.plan import done_ids

    kept = len(done_ids(Path(out)))
    again = " ".join(shlex.quote(a) for a in _command_line(ctx))
    typer.echo(f"cai generate: interrupted; {kept} finished records are kept in {out}/records.jsonl; to resume "
               f"(finished prompts are skipped), run the same command again: {again}", err=True)


def _command_line(ctx) -> list[str]:
    """The command as given: ``cai generate`` and the options set on the command line (from the
    command's context, so it is right whichever way the CLI was entered)."""
    if ctx is None:
        return ["cai", "generate"]
    words = ["cai", *ctx.command_path.split()[1:]]
    for p in ctx.command.params:
        source = ctx.get_parameter_source(p.name)
        if not getattr(p, "opts", None) or getattr(source, "name", "") != "COMMANDLINE":
            continue
        value = ctx.params[p.name]
        if getattr(p, "is_flag", False):
            words.append(p.opts[0] if value or not p.secondary_opts else p.secondary_opts[0])
        else:
            for v in value if isinstance(value, (list, tuple)) else [value]:
                words += [p.opts[0], str(v)]
    return words


def _print_summary(summary: dict, out: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"cai generate → {out}", box=None)
    table.add_column("stage")
    table.add_column("items", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("seconds", justify="right")
    for stage, s in summary["stages"].items():
        table.add_row(stage, str(s["items"]), str(s["completion_tokens"]), f"{s['seconds']:.1f}")
    console = Console(soft_wrap=True)  # summary lines are never cut mid-phrase (logs, narrow terminals)
    console.print(table)
    failures = ", ".join(f"{k}={v}" for k, v in summary["failures"].items()) or "none"
    console.print(
        f"records {summary['records']} (ok {summary['ok']}, failed {summary['failed']}, revised {summary['revised']}, "
        f"resumed from {summary['resumed_from']}); failures: {failures}; {summary['seconds']:.1f}s"
    )
    if summary.get("left_out"):
        left = summary["left_out"]
        first = (left.get("rows_why") or left["first"])[0]
        console.print(f"left out {left['rows']} rows ({left['why']}; first: {first}; all in summary.json)",
                      highlight=False, soft_wrap=True, markup=False)
    if summary.get("checks_failed"):
        console.print("checks failed (records): " + ", ".join(f"{k}={v}" for k, v in summary["checks_failed"].items())
                      + "; each record says why (cai show)", highlight=False, markup=False)
    if summary.get("verify"):
        from cai.core.rates import position_bias_warning

        v = summary["verify"]
        console.print(verify_line(summary), highlight=False)
        warning = position_bias_warning(v.get("position_consistency"), v.get("judged"), who="judge")
        if warning:
            console.print(warning, highlight=False)
    if summary.get("judge_health"):
        from cai.judge.health import JudgeHealth

        for line in JudgeHealth.from_dict(summary["judge_health"]).lines("judge"):
            console.print(line, soft_wrap=True, markup=False, highlight=False)
    if summary.get("applicable"):
        a = summary["applicable"]
        console.print(f"pick applicable (P(Yes) >= {a['min_applies']}): of {a['prompts']} prompts, "
                      + ", ".join(f"{ref.split('@')[0]} applied to {x['k']}" for ref, x in a["applied"].items())
                      + f"; none applied to {a['none_applies']}", highlight=False, markup=False, soft_wrap=True)
        if a.get("warning"):
            console.print(f"warning: {a['warning']}", highlight=False, markup=False, soft_wrap=True)
    if summary.get("flags"):
        console.print("flags: " + ", ".join(f"{k}={v}" for k, v in summary["flags"].items()))
    if "exports" in summary:
        e = summary["exports"]
        console.print(f"exports: {e['sft']} SFT rows in {out}/sft, {e['preferences']} preference pairs in {out}/preferences")
    example = _example_record(out)
    console.print(f"records: {out}/records.jsonl" + (f"; one of them (cai show {out} --id {example.id[:12]}):"
                                                     if example else ""))
    if example:
        from cai.sl.show import render_record

        console.print(render_record(example))


def verify_line(summary: dict) -> str:
    """``judge: revision better than draft in 62.5% of 8 revisions (95% CI ...); 2 revision-not-better``."""
    from cai.core.rates import rate_text

    v = summary["verify"]
    below = f"below min_p {v['min_p']}" if v.get("min_p") is not None else "no min_p"
    where = "the preferences; their records stay ok (--keep-unverified)" if v.get("keep_unverified") else \
        "SFT and the preferences: their records failed"
    return (f"judge: revision better than draft in {rate_text(v['better_rate'], v['judged'], of='revisions')}, "
            f"mean P {v['mean_p']:.3f}; {v['not_better']} revision-not-better ({below}, kept out of {where})")


def _example_record(out: str):
    """The first revised record (else the first record) of a run, to show what was made."""
    from cai.data.store import iter_records

    first = None
    for r in iter_records(out):
        if r.status == "ok" and r.final != r.draft:
            return r
        first = first or r
    return first


def show(
    run: str = typer.Argument(..., help="A `cai generate` folder, its records.jsonl, or a `cai run` folder."),
    record_id: Optional[str] = typer.Option(None, "--id", help="Record id or id prefix (default: list the records)."),
) -> None:
    """List a run's records, or print one record's whole history: prompt, draft, each critique and
    revision, provenance."""
    from cai.sl.show import show as show_record

    show_record(run, record_id)
