"""`cai show`: a record's whole history, readable."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from cai.core.errors import CaiError
from cai.data.records import Record
from cai.data.store import iter_records


def records_path(run: str | Path) -> Path:
    """The records.jsonl of a run: the file itself, a ``cai generate`` folder, or a ``cai run`` folder
    (whose records are in RUN/generate)."""
    run = Path(run)
    if run.is_dir() and not (run / "records.jsonl").exists() and (run / "generate" / "records.jsonl").exists():
        return run / "generate" / "records.jsonl"
    if run.is_dir() and not (run / "records.jsonl").exists():
        raise CaiError(f"no records.jsonl in {run} nor in {run / 'generate'}: pass a `cai generate` --out "
                       "folder or a `cai run` folder")
    return run


def find_record(run: str | Path, record_id: str | None) -> Record:
    """The record whose id is (or starts with) ``record_id``; an unknown id lists some ids to choose
    from, a prefix shared by several records lists them."""
    path = records_path(run)
    records = list(iter_records(path))
    if not records:
        raise CaiError(f"no records in {path}")
    if record_id is None:
        return records[0]
    exact = [r for r in records if r.id == record_id]
    if exact:
        return exact[0]
    matches = [r for r in records if r.id.startswith(record_id)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise CaiError(f"--id '{record_id}' matches {len(matches)} records in {path}: "
                       f"{_ids(matches)}; give more of the id")
    raise CaiError(f"no record '{record_id}' in {path}; its ids: {_ids(records)} "
                   f"(`cai show {run}` lists them)")


def _ids(records: list[Record], most: int = 8) -> str:
    shown = ", ".join(r.id[:12] for r in records[:most])
    return shown + (f", ... ({len(records)} in all)" if len(records) > most else "")


def record_table(run: str | Path):
    """A table of a run's records: id, status, rounds, start of the prompt."""
    from rich.table import Table

    path = records_path(run)
    table = Table(title=f"records in {path}", box=None)
    for col in ("id", "status", "steps", "prompt"):
        table.add_column(col, justify="right" if col == "steps" else "left", no_wrap=col == "id")
    count = 0
    for r in iter_records(path):
        count += 1
        text = (r.prompt[-1].content if r.prompt else "").replace("\n", " ")
        table.add_row(Text(r.id[:12]), r.status, str(len(r.steps)), Text(text[:60] + ("..." if len(text) > 60 else "")))
    if not count:
        raise CaiError(f"no records in {path}")
    return table


def render_record(r: Record) -> Group:
    parts = [Text(f"record {r.id}  status={r.status}  source={r.source or '-'}", style="bold")]
    if r.provenance:
        p = r.provenance
        parts.append(Text(
            f"constitution {p.constitution} #{p.constitution_hash[:12]} · policy {p.policy_model} · "
            f"critic {p.critic_model} · backend {p.backend} · seed {p.seed} · cai {p.cai_version} · {p.created_at}\n"
            f"sampling {p.sampling}", style="dim"))
    for m in r.prompt:
        parts.append(Panel(Text(m.content), title=escape(m.role), title_align="left"))  # data: Text, never markup
    if r.draft is not None:
        parts.append(Panel(Text(r.draft), title="draft", title_align="left", border_style="yellow"))
    for s in r.steps:
        parts.append(Text(f"round {s.round + 1} · {s.principle}", style="bold cyan"))
        parts.append(Panel(Text(s.critique_prompt), title="critique request", title_align="left", border_style="dim"))
        if s.critique is not None:
            verdict = f" (verdict: {s.verdict})" if s.verdict else ""
            parts.append(Panel(Text(s.critique), title=escape(f"critique{verdict}"), title_align="left", border_style="magenta"))
        if s.skipped:
            parts.append(Text("revision skipped: the critique found nothing to fix", style="dim"))
        elif s.revision is not None:
            judged = "" if s.p_better is None else f" (judge: P(better than what it revised) {s.p_better:.3f})"
            parts.append(Panel(Text(s.revision), title=f"revision{judged}", title_align="left", border_style="green"))
    if r.failure:
        f = r.failure
        parts.append(Panel(Text(f"{f.detail}\n\nraw output:\n{f.raw or ''}".strip()),
                           title=escape(f"failed: {f.kind} ({f.stage})"), title_align="left", border_style="red"))
    elif r.final is not None:
        parts.append(Panel(Text(r.final), title="final", title_align="left", border_style="bold green"))
    if r.verification is not None:
        v = r.verification
        p = "not judged" if v.p_chosen is None else f"P(final ≻ draft) {v.p_chosen:.3f}"
        kept = "kept" if v.kept and r.status == "ok" else (
            f"kept out of the preferences (min_p {v.min_p})" if r.status == "ok" else "kept out of SFT and preferences")
        follows = "".join(f"; P(follows {ref}) {q:.3f}" for ref, q in v.follows.items())
        parts.append(Text(f"judge ({v.judge.get('model', '?')}, both orders, {', '.join(v.principles)}): {p}, "
                          f"position-consistent {v.position_consistent}{follows}; {kept}", style="bold"))
    for c in r.checks:
        parts.append(Text(f"check failed: {c.name}" + (f" ({c.principle})" if c.principle else "") + f": {c.why}",
                          style="bold red"))
    if r.tokens:
        parts.append(Text("tokens " + ", ".join(f"{k}={v}" for k, v in r.tokens.items()), style="dim"))
    return Group(*parts)


def show(run: str | Path, record_id: str | None = None, console: Console | None = None) -> None:
    """Without ``record_id``: list the run's records; with it, print that record's whole history."""
    console = console or Console()
    if record_id is None:
        console.print(record_table(run))
        console.print(f"one record's whole history: cai show {run} --id ID (a prefix of the id is enough)",
                      soft_wrap=True, markup=False)
        return
    console.print(render_record(find_record(run, record_id)))
