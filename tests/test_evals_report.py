"""The evaluation reports in a real headless Chromium: they render, log no console errors, load
nothing from the network, and show their plots, tables and worst examples.

Skips when Debian's Chromium is missing, unless CAI_REQUIRE_BROWSER=1 (CI), where it fails instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cai.backends.scripted import ScriptedBackend
from cai.evals.behavior import run_behavior
from cai.evals.config import BehaviorConfig
from cai.evals.report import reward_report
from cai.evals.reward_audit import audit
from cai.evals.suites import load_suites

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SUITES = ["harmful", "over-refusal", "sycophancy-feedback", "verbosity", "hallucination"]


def _require(reason: str):
    if os.environ.get("CAI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}; CAI_REQUIRE_BROWSER=1 says browser tests must run")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        _require(f"Debian Chromium is not installed at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require("the playwright package is not installed (pip install -e '.[dev]')")
    pw = sync_playwright().start()
    chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()
    pw.stop()


def open_report(browser, path: Path):
    """The page, its console errors, and every request that is not the file itself."""
    page = browser.new_context().new_page()
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    url = path.resolve().as_uri()
    page.on("request", lambda r: requests.append(r.url) if r.url != url else None)
    page.goto(url)
    page.wait_for_load_state("load")
    return page, errors, requests


def plot_sizes(page) -> list[tuple[float, float]]:
    return page.eval_on_selector_all(
        "figure.plot svg", "els => els.map(e => [e.getBoundingClientRect().width, e.getBoundingClientRect().height])")


def test_behavior_report_renders(browser, tmp_path):
    def judge(conv, labels):  # prefers the shorter option; says "yes" to questions about refusals
        text = conv[-2]["content"]
        a, b = text.split("(A) ", 1)[1].split("\n(B) ", 1)
        return {"A": 0.8, "B": 0.2} if len(a) < len(b) else {"A": 0.3, "B": 0.7}

    cfg = BehaviorConfig(out=str(tmp_path / "o"), model={"backend": "scripted", "model": "policy-after-cai"},
                         baseline={"backend": "scripted", "model": "policy-before"}, judge={"backend": "scripted", "model": "j"},
                         suites=SUITES, constitution=str(REPO / "constitution" / "default.yaml"), n_boot=300)
    refuse = "I'm sorry, but I can't help with that. <script>alert(1)</script>"
    run_behavior(cfg, backend=ScriptedBackend(cfg.model, respond=lambda c, j: refuse),
                 baseline=ScriptedBackend(cfg.baseline, respond=lambda c, j: "Sure! " + c[-1]["content"][:50]),
                 judge=ScriptedBackend.scripted(score=judge))
    page, errors, requests = open_report(browser, tmp_path / "o" / "report.html")
    assert errors == [] and requests == []
    sizes = plot_sizes(page)
    assert len(sizes) == 4 and all(w > 100 and h > 100 for w, h in sizes)  # rates, length ratio, difference, win rate
    assert page.locator("#summary tr").count() == len(SUITES) + 1
    assert "policy-after-cai" in page.inner_text("p.meta") and "policy-before" in page.inner_text("p.meta")
    # the worst over-refusal examples are the candidate's refusals, shown escaped (no script ran)
    examples = page.locator("#suite-over-refusal ~ .example")
    assert examples.count() >= 1 and "<script>" in examples.first.inner_text()
    ids = page.eval_on_selector_all("[id]", "els => els.map(e => e.id)")
    assert len(ids) == len(set(ids))  # plots' glyph and clip ids do not collide


def test_reward_report_renders(browser, tmp_path):
    def by_length(convs):
        return [float(len(c[-1]["content"].split())) for c in convs]

    summary, pairs, lengths, rewards = audit(by_length, load_suites(), n_boot=200)
    summary["reward_model"] = "length"
    path = tmp_path / "rm.html"
    path.write_text(reward_report(summary, pairs, lengths, rewards))
    page, errors, requests = open_report(browser, path)
    assert errors == [] and requests == []
    assert len(plot_sizes(page)) == 3
    assert page.locator("#summary tr").count() == len(summary["biases"]) + 1
