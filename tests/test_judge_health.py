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


# ---------------------------------------------------------------------------- the judge checks each judgement

from cai.backends.scripted import ScriptedBackend  # noqa: E402
from cai.judge import GroupItem, Judge, PairItem, PointItem  # noqa: E402

PROMPT = [{"role": "user", "content": "Is the helmet included?"}]


def test_pairwise_fails_a_judgement_below_the_floor_never_a_label():
    backend = ScriptedBackend.scripted(choices=[{"A": 0.9, "B": 0.1, "_mass": 0.95}, {"A": 0.2, "B": 0.8, "_mass": 0.9},
                                                {"A": 0.9, "B": 0.1, "_mass": 4e-20}, {"A": 0.2, "B": 0.8, "_mass": 0.9}])
    judge = Judge(backend, health=HealthPolicy(min_label_mass=0.1))
    items = [PairItem(PROMPT, "Yes, it is.", "No idea, maybe, who knows really.", ["Helpful?"], key="pair-1"),
             PairItem(PROMPT, "Yes.", "No.", ["Helpful?"], key="pair-2")]
    good, bad = judge.pairwise(items)
    assert good.failed is None and good.p_x == pytest.approx(0.85)
    assert bad.failed is not None and "label mass 4e-20 < floor 0.1" in bad.failed
    assert math.isnan(bad.p_x) and bad.label is None and bad.results == []
    assert judge.failure_reasons == {1: "below_label_mass"}
    h = judge.health
    assert (h.n, h.failed, h.failed_ids) == (4, 1, {"below_label_mass": ["pair-2"]})
    assert h.position.n == 1 and h.length.n == 1 and h.length.k == 0  # the good pair voted for the shorter one
    backend._choice_i = 0
    assert judge.pairwise(items, skip_rejected=True)[1] is None and 1 in judge.failures


def test_nan_judge_is_named_in_every_shape():
    nan = {"A": 0.5, "B": 0.5, "_mass": float("nan")}
    judge = Judge(ScriptedBackend.scripted(choices=[nan]), health=HealthPolicy(min_label_mass=0.0))
    [v] = judge.pairwise([PairItem(PROMPT, "Yes.", "No.", ["Helpful?"])])
    assert "NaN" in v.failed
    [r] = judge.pointwise([PointItem(PROMPT, "Yes.", ["Helpful?"], key="c7")])
    assert math.isnan(r.score) and "NaN" in r.failed and judge.failures == {0: r.failed}
    [g] = judge.groupwise([GroupItem(PROMPT, ["Yes.", "No.", "Maybe."], ["Helpful?"], key="g1")])
    assert g.failed and "NaN" in g.failed and all(math.isnan(s) for s in g.scores)
    h = judge.health
    assert h.failures == {"nan": h.n} and h.status == "unhealthy"
    assert "c7" in h.failed_ids["nan"]


def test_pointwise_keeps_good_ratings_beside_failed_ones():
    backend = ScriptedBackend.scripted(choices=[{"A": 0.75, "B": 0.25, "_mass": 0.9}, {"A": 0.9, "B": 0.1, "_mass": 0.01}])
    judge = Judge(backend, health=HealthPolicy(min_label_mass=0.1))
    good, bad = judge.pointwise([PointItem(PROMPT, "Yes.", ["Helpful?"]), PointItem(PROMPT, "No.", ["Helpful?"])])
    assert good.score == pytest.approx(0.75) and good.failed is None
    assert bad.failed and math.isnan(bad.score)


def test_benchmark_judge_health_runs_at_tiny_size(tmp_path):
    """benchmarks/judge_health.py prints the health checks' cost next to the judge's scoring call."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "judge_health.py"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, str(script), "--pairs", "3", "--repeats", "1", "--hidden", "64",
                           "--layers", "1"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"health checks cost [\d.e+-]+% of the judge's scoring call", done.stdout), done.stdout


def test_choice_rows_keep_mass_source_and_failure_across_pickling():
    """Ray workers pickle score_choices rows: what the judge checks must survive the trip."""
    import pickle

    from cai.backends.choices import ChoiceProbs

    row = ChoiceProbs({"A": 0.5, "B": 0.5}, mass=0.3, source="top_logprobs")
    row.failure = "parse"
    back = pickle.loads(pickle.dumps(row))
    assert back == row and (back.mass, back.source, back.failure) == (0.3, "top_logprobs", "parse")
