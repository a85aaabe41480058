"""Judge health (cai.judge.health): failures by reason, label mass, position consistency, length
bias beside people's own rate, status and its one-line error, JSON round trip, escaped HTML."""

from __future__ import annotations

import json
import math

import pytest

from cai.backends.choices import ChoiceProbs
from cai.core.errors import CaiError
from cai.judge.health import HealthPolicy, HealthTracker, JudgeHealth, judgement_failure


def row(a: float, mass: float | None, source: str = "logprobs") -> ChoiceProbs:
    return ChoiceProbs({"A": a, "B": 1 - a}, mass=mass, source=source)


def test_failure_reasons_by_row():
    policy = HealthPolicy(min_label_mass=0.1)
    assert judgement_failure(row(0.9, 0.95), policy) is None
    assert judgement_failure(row(0.9, 4e-20), policy) == "below_label_mass"
    assert judgement_failure(ChoiceProbs({"A": math.nan, "B": math.nan}, mass=math.nan), policy) == "nan"
    assert judgement_failure(row(0.5, 0.0, "top_logprobs"), policy) == "labels_missing"
    assert judgement_failure(None, policy) == "rejected"
    assert judgement_failure({"A": 0.7, "B": 0.3}, policy) is None  # mass unknown (scripted): not a failure
    parsed = row(0.5, None, "generated")
    parsed.failure = "parse"
    assert judgement_failure(parsed, policy) == "parse"
    assert judgement_failure(row(0.9, 0.05), HealthPolicy(min_label_mass=0.0)) is None


def test_env_sets_the_default_floor(monkeypatch):
    monkeypatch.setenv("CAI_MIN_LABEL_MASS", "0.3")
    assert HealthPolicy().min_label_mass == 0.3
    assert HealthPolicy(min_label_mass=0.2).min_label_mass == 0.2
    monkeypatch.setenv("CAI_MIN_LABEL_MASS", "lots")
    with pytest.raises(CaiError, match="CAI_MIN_LABEL_MASS"):
        HealthPolicy()


def test_away_judge_is_unhealthy_and_error_policy_stops():
    tracker = HealthTracker(HealthPolicy(min_label_mass=0.1, on_unhealthy="error"))
    for i in range(12):
        assert tracker.judgement(row(0.9, 1e-20), id=f"line {i + 1}", principle="p@1") == "below_label_mass"
    h = tracker.report()
    assert (h.n, h.failed, h.failures) == (12, 12, {"below_label_mass": 12})
    assert h.failed_ids["below_label_mass"][:2] == ["line 1", "line 2"]
    assert h.status == "unhealthy"
    assert h.per_principle["p@1"].failed == 12
    with pytest.raises(CaiError) as err:
        h.raise_if_unhealthy()
    assert "\n" not in str(err.value) and "below_label_mass 12" in str(err.value)
    warn = HealthPolicy(min_label_mass=0.1)
    assert h.raise_if_unhealthy(warn).startswith("warning: judge health: unhealthy")


def test_healthy_judge_and_too_few():
    tracker = HealthTracker(HealthPolicy(min_label_mass=0.1))
    for i in range(5):
        tracker.judgement(row(0.8, 0.95), id=str(i))
    assert tracker.report().status == "unknown"  # 5 < min_n: too few to call healthy
    for i in range(20):
        tracker.judgement(row(0.8, 0.9 + i / 1000), id=str(i))
        tracker.comparison(principle=None, consistent=True, p_x=0.8 if i % 2 else 0.2, x="a" * (i + 1), y="bb")
    h = tracker.report()
    assert h.status == "healthy", h.reasons
    assert h.label_mass.n == 25 and 0.9 <= h.label_mass.median <= 0.95 and h.label_mass.min == 0.9
    assert h.position.rate == 1.0 and h.position.interval[0] < 1.0  # an interval, never zero-width at n=20


def test_length_bias_beside_people():
    tracker = HealthTracker(HealthPolicy(min_label_mass=0.0))
    for i in range(20):
        short, long = "ok", "a long answer " * (i + 1)
        # people chose the short one; the judge votes for the long one 18 of 20 times
        tracker.comparison(principle="concise@1", consistent=True, p_x=0.3 if i < 18 else 0.7, x=short, y=long,
                           human_x=True)
        tracker.comparison(principle=None, consistent=True, p_x=0.3 if i < 18 else 0.7, x=short, y=long,
                           human_x=True)
        tracker.judgement(row(0.3, 0.9), principle="concise@1")
    h = tracker.report()
    assert (h.length.n, h.length.k) == (20, 18)
    assert (h.human_length.n, h.human_length.k) == (20, 0)
    assert h.status == "weak" and any("length bias" in r for r in h.reasons)
    assert h.per_principle["concise@1"].length.k == 18


def test_round_trip_text_and_html_escaped():
    tracker = HealthTracker(HealthPolicy(min_label_mass=0.1))
    tracker.judgement(ChoiceProbs({"A": math.nan, "B": math.nan}, mass=math.nan), id="<b>x</b>", principle="[red]p[/red]")
    tracker.judgement(row(0.9, 0.9), id="2", principle="q@1")
    h = tracker.report()
    d = json.loads(json.dumps(h.to_dict()))
    back = JudgeHealth.from_dict(d)
    assert back.to_dict() == d
    assert "<b>x</b>" not in h.html() and "&lt;b&gt;x&lt;/b&gt;" in h.html()
    text = "\n".join(h.lines())
    assert "nan 1" in text and "<b>x</b>" in text  # plain text: data shown as is (printed with markup off)
