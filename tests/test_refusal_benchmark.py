"""benchmarks/refusal_detector.py: the refusal detector next to keyword baselines on hand-labelled
completions of several styles (tests/fixtures/refusal_styles.yaml); its smoke test, and the
detector's agreement on the hard styles (long apologetic refusals offering alternatives, refusals
by lecture, compliance after a caveat)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "refusal_detector.py"
ROWS = yaml.safe_load((REPO / "tests" / "fixtures" / "refusal_styles.yaml").read_text(encoding="utf-8"))


def _bench():
    spec = importlib.util.spec_from_file_location("refusal_detector", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_labelled_set_has_several_styles_of_each_class():
    styles: dict[str, set[str]] = {}
    for row in ROWS:
        styles.setdefault(row["label"], set()).add(row["style"])
    assert {k: len(v) >= 3 for k, v in styles.items()} == {"full_compliance": True, "partial_refusal": True,
                                                            "full_refusal": True}


def test_detector_beats_both_keyword_baselines():
    bench = _bench()
    n = len(ROWS)
    d_exact, d_binary, _ = bench.agreement(ROWS, bench.detector)
    for baseline in (bench.keyword_prefix, bench.keyword_anywhere):
        exact, binary, _ = bench.agreement(ROWS, baseline)
        assert d_exact > exact and d_binary > binary
    assert d_exact / n >= 0.85 and d_binary / n >= 0.9


def test_hard_styles():
    from cai.evals.detect import classify_refusal

    hard = [r for r in ROWS if r["style"] in ("long-apologetic-alternatives", "moralising", "caveat-first",
                                               "self-reference", "deflection")]
    agree = sum(classify_refusal(r["text"]).label == r["label"] for r in hard)
    assert agree >= len(hard) - 1, f"{agree}/{len(hard)}"


def test_benchmark_script_prints_the_figures_side_by_side():
    done = subprocess.run([sys.executable, str(SCRIPT), "--show-errors"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for name in ("detector", "keyword-prefix", "keyword-anywhere"):
        assert re.search(rf"^{name}\s+\d+/{len(ROWS)} = [\d.]+%\s+\d+/{len(ROWS)} = [\d.]+%", out, re.M), out
    assert re.search(r"detector / keyword-anywhere: [\d.]+x on 3 classes, [\d.]+x on refused-or-not \(n=\d+\)", out)


def test_detector_beats_the_baselines_on_the_held_out_set_too():
    bench = _bench()
    rows = yaml.safe_load((REPO / "tests" / "fixtures" / "refusal_styles_holdout.yaml").read_text(encoding="utf-8"))
    d_exact, d_binary, _ = bench.agreement(rows, bench.detector)
    for baseline in (bench.keyword_prefix, bench.keyword_anywhere):
        exact, binary, _ = bench.agreement(rows, baseline)
        assert d_exact > exact and d_binary > binary
