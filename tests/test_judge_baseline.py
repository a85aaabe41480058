"""The one judge gives the numbers the code before it gave: `cai label`'s soft labels (every
option: both orders, one order, one principle, few-shot, CoT), the evaluation judge's yes/no and
comparison answers, and `cai principles test`'s, on fixed pairs with a prompt-hashing scripted
scorer and with the tiny model (``tests/fixtures/judge_baseline.json``, see ``judge_cases.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import judge_cases

BASELINE = json.loads((Path(__file__).parent / "fixtures" / "judge_baseline.json").read_text())


def _same(got, want, path="") -> None:
    if isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-6, rel=1e-6), path
    elif isinstance(want, dict):
        assert set(got) == set(want), path
        for k in want:
            _same(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{path}[{i}]")
    else:
        assert got == want, path


def test_scripted_numbers_unchanged(tmp_path):
    got = {**judge_cases.label_numbers(judge_cases.scripted_backend(), tmp_path / "s"),
           "eval": judge_cases.eval_numbers(judge_cases.scripted_backend(), tmp_path / "e")}
    _same(got, BASELINE["scripted"])


def test_tiny_model_numbers_unchanged(tmp_path):
    from cai.testing import build_tiny_llama

    backend = judge_cases.tiny_backend(build_tiny_llama(tmp_path / "model"))
    try:
        cases = {k: judge_cases.LABEL_CASES[k] for k in judge_cases.TINY_CASES}
        got = {**judge_cases.label_numbers(backend, tmp_path / "t", cases),
               "eval": judge_cases.eval_numbers(backend, tmp_path / "te")}
    finally:
        backend.close()
    _same(got, BASELINE["tiny"])
