"""`cai show`: a record's whole history, readable."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from cai.core.errors import CaiError
from cai.data.records import Record
from cai.data.store import iter_records


def find_record(run: str | Path, record_id: str | None) -> Record:
    for r in iter_records(run):
        if record_id is None or r.id == record_id or r.id.startswith(record_id):
            return r
    if record_id is None:
        raise CaiError(f"no records in {run}")
    raise CaiError(f"no record '{record_id}' in {run}")


def render_record(r: Record) -> Group:
    parts = [Text(f"record {r.id}  status={r.status}  source={r.source or '-'}", style="bold")]
    if r.provenance:
        p = r.provenance
        parts.append(Text(
            f"constitution {p.constitution} #{p.constitution_hash[:12]} · policy {p.policy_model} · "
            f"critic {p.critic_model} · backend {p.backend} · seed {p.seed} · cai {p.cai_version} · {p.created_at}\n"
            f"sampling {p.sampling}", style="dim"))
    for m in r.prompt:
        parts.append(Panel(m.content, title=m.role, title_align="left"))
    if r.draft is not None:
        parts.append(Panel(r.draft, title="draft", title_align="left", border_style="yellow"))
    for s in r.steps:
        parts.append(Text(f"round {s.round + 1} · {s.principle}", style="bold cyan"))
        parts.append(Panel(s.critique_prompt, title="critique request", title_align="left", border_style="dim"))
        if s.critique is not None:
            verdict = f" (verdict: {s.verdict})" if s.verdict else ""
            parts.append(Panel(s.critique, title=f"critique{verdict}", title_align="left", border_style="magenta"))
        if s.skipped:
            parts.append(Text("revision skipped: the critique found nothing to fix", style="dim"))
        elif s.revision is not None:
            parts.append(Panel(s.revision, title="revision", title_align="left", border_style="green"))
    if r.failure:
        f = r.failure
        parts.append(Panel(f"{f.detail}\n\nraw output:\n{f.raw or ''}".strip(),
                           title=f"failed: {f.kind} ({f.stage})", title_align="left", border_style="red"))
    elif r.final is not None:
        parts.append(Panel(r.final, title="final", title_align="left", border_style="bold green"))
    if r.tokens:
        parts.append(Text("tokens " + ", ".join(f"{k}={v}" for k, v in r.tokens.items()), style="dim"))
    return Group(*parts)


def show(run: str | Path, record_id: str | None = None, console: Console | None = None) -> None:
    (console or Console()).print(render_record(find_record(run, record_id)))
