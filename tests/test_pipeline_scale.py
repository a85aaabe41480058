"""The SL pipeline's own cost: memory flat in the prompt count on the scripted backend, and
the per-record CPU spent outside any model (templates, echo check) kept small."""

from __future__ import annotations

import io
import random
import tracemalloc

from rich.console import Console

from cai.backends import BackendConfig, load_backend
from cai.principles.templates import check_template, render
from cai.sl import run_generate
from cai.sl.parsing import echoes
from test_generate import config, write_prompts


def test_scripted_backend_keeps_only_the_first_conversations():
    backend = load_backend(BackendConfig(backend="scripted", model="scripted", options={"keep_conversations": 3}))
    for i in range(4):
        backend.generate([[{"role": "user", "content": f"q{i}"}]] * 2)
    assert [c["rows"] for c in backend.calls] == [2, 2, 2, 2]
    assert "conversations" in backend.calls[0] and all("conversations" not in c for c in backend.calls[1:])


def _peak(tmp_path, n: int) -> int:
    prompts = write_prompts(tmp_path / f"p{n}.jsonl", n)
    cfg = config(tmp_path, prompts, out=str(tmp_path / f"run{n}"), chunk_size=16, export=False, rounds=2,
                 policy={"backend": "scripted", "model": "scripted", "options": {"keep_conversations": 50}})
    tracemalloc.start()
    try:
        summary = run_generate(cfg, console=Console(file=io.StringIO()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary["records"] == n
    return peak


def test_generate_on_the_scripted_backend_holds_flat_memory(tmp_path):
    """The scripted backend used to keep every conversation it was sent, so a long run grew by
    kilobytes per record (18 KB at 100k prompts through `cai generate`)."""
    _peak(tmp_path, 16)  # warm-up: imports and caches
    small, large = _peak(tmp_path, 60), _peak(tmp_path, 600)
    assert large < 1.5 * small, (small, large)


def test_template_checks_are_parsed_once_per_template():
    source = "Critique {{ response }} against: {{ request }}"
    check_template.cache_clear()
    for i in range(5):
        render("critique", source, response=f"r{i}", request="be kind", conversation="", principle={})
    info = check_template.cache_info()
    assert info.misses == 1 and info.hits == 4


def test_echo_check_stays_cheap_on_long_unrelated_texts(monkeypatch):
    """Character-level difflib took ~85 ms for two 1,800-character texts (more than a GPU takes to
    write a revision): the check now compares at most 400 words a side. Asserted on what difflib is
    given, not on a clock (a shared machine's timings are not a test)."""
    import difflib

    seen = []
    real = difflib.SequenceMatcher

    class Spy(real):
        def __init__(self, isjunk=None, a="", b="", autojunk=True):
            seen.append((a, b))
            super().__init__(isjunk, a, b, autojunk)

    monkeypatch.setattr(difflib, "SequenceMatcher", Spy)
    rng = random.Random(0)
    words = ("the a response is of to and that user it this could be more helpful harmful should not you "
             "your answer question kind polite safe advice explain help reason").split()
    a, b = (" ".join(rng.choice(words) for _ in range(900)) for _ in range(2))
    assert not echoes(a, b)
    assert echoes(a + " and more", a[:1000] + "x" + a[1000:])  # a copy with a small change is an echo
    assert seen and all(isinstance(x, list) and len(x) <= 400 and len(y) <= 400 for x, y in seen)
