"""Long work that a log can follow: time-bounded chunks and plain progress lines off a terminal."""

from __future__ import annotations

import io
import time

from rich.console import Console

from cai.core.progress import duration
from cai.core.runs import timed_chunks
from cai.sl import run_generate
from sl_helpers import EchoCritic
from test_generate import config, write_prompts


def test_timed_chunks_bound_the_work_between_writes():
    sizes = []
    for chunk in timed_chunks(range(200), size=64, seconds=0.2, start=4):
        sizes.append(len(chunk))
        time.sleep(0.02 * len(chunk))  # 20 ms of work per item: ~10 items fit in 0.2 s
    assert sum(sizes) == 200 and sizes[0] == 4
    assert max(sizes) <= 20  # never the full 64 when that would take 1.3 s
    assert [len(c) for c in timed_chunks(range(10), size=4, seconds=None)] == [4, 4, 2]
    fast = [len(c) for c in timed_chunks(range(300), size=64, seconds=60, start=8)]
    assert fast[:3] == [8, 32, 64]  # quick work grows to chunk_size, at most 4x per chunk


def test_plain_progress_lines_when_not_a_terminal(tmp_path):
    log = io.StringIO()
    console = Console(file=log, force_terminal=False, width=200)
    backend = EchoCritic()
    run_generate(config(tmp_path, write_prompts(tmp_path / "p.jsonl", 3), rounds=1, flush_seconds=None),
                 backends=(backend, backend), console=console)  # fixed chunks: one draft call for all 3
    lines = log.getvalue().splitlines()
    assert any("generate: draft: 3 items" in ln and "tok/s" in ln for ln in lines)
    assert any("generate: records 3/3 (100%)" in ln and "elapsed" in ln and "ETA" in ln for ln in lines)
    assert not any("━" in ln for ln in lines)  # no bar drawing in a log


def test_duration_format():
    assert [duration(s) for s in (7, 123, 3723, None)] == ["7s", "2m03s", "1h02m03s", "?"]


def test_two_processes_never_write_one_run_folder(tmp_path):
    """A second process on the same --out is refused while the first runs (no doubled records)."""
    import subprocess
    import sys
    import textwrap

    from cai.core.errors import CaiError
    from cai.core.runs import check_resume

    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from cai.core.runs import check_resume
        check_resume(Path({str(tmp_path / 'run')!r}), {{"a": 1}})
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        try:
            check_resume(tmp_path / "run", {"a": 1})
            raise AssertionError("the second writer was not refused")
        except CaiError as exc:
            assert "another cai process is writing" in str(exc)
    finally:
        holder.kill()
        holder.wait()
    check_resume(tmp_path / "run", {"a": 1})  # the lock died with its process: a rerun resumes
    check_resume(tmp_path / "run", {"a": 1})  # and this process may check again
    (tmp_path / "file").write_text("x")
    try:
        check_resume(tmp_path / "file", {"a": 1})
        raise AssertionError("a file was accepted as --out")
    except CaiError as exc:
        assert "must be a folder" in str(exc)
