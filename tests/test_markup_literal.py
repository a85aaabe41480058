"""Text from data is shown as written in the terminal, never read as rich markup (issue 28, item 6:
the kind beyond rater names). `[/bold]x` in a prompt or a principle title crashed rich with a
MarkupError; `[red]zed[/red]` showed as `zed`."""

from __future__ import annotations

from rich.console import Console

from cai.data.records import Record
from cai.sl.show import render_record

TRAPS = ["[/bold]eve", "[red]zed[/red]", "[link=https://example.invalid]bob[/link]"]


def _rendered(renderable) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_cai_show_prints_record_text_literally():
    record = Record(id="r1", prompt=[{"role": "user", "content": " ".join(TRAPS)}], draft=TRAPS[1],
                    final=TRAPS[0] + " final")
    out = _rendered(render_record(record))  # raised MarkupError on `[/bold]`
    for trap in TRAPS:
        assert trap in out
    assert f"{TRAPS[0]} final" in out


def test_principles_list_prints_titles_literally(tmp_path, capsys):
    from cai.cli.main import main

    folder = tmp_path / "principles"
    folder.mkdir()
    (folder / "trap.md").write_text(
        "---\nid: trap\nversion: 1.0.0\ntitle: \"[red]zed[/red] and [/bold]eve\"\ntags: [t]\n---\n\nTraps.\n\n"
        "## Critique\nDoes it trap?\n\n## Revision\nUntrap it.\n\n## Preference\nWhich traps less?\n", encoding="utf-8")
    code = main(["principles", "list", "--principles-dir", str(folder)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "[red]zed[/red] and [/bold]eve" in out.out
