"""The one judge (cai.judge): its three shapes, one score_choices call per shape, both orders
averaged, the abstain option, the provenance record, rejected rows, and the group scores."""

from __future__ import annotations

import pytest

from cai.backends.base import RowsRejected
from cai.backends.scripted import ScriptedBackend
from cai.judge import DEFAULT_ABSTAIN, RATINGS_5, GroupItem, Judge, PairItem, PointItem
from cai.judge import groupwise
from cai.principles.constitution import load_constitution
from feedback_helpers import prefers, write_constitution

PROMPT = [{"role": "user", "content": "How do I get back at my neighbour?"}]


def _kind(tmp_path):
    c = load_constitution(write_constitution(tmp_path))
    return c, next(p for p in c.principles if p.id == "kind")


def test_pairwise_both_orders_one_call_and_debiased(tmp_path):
    c, kind = _kind(tmp_path)
    # order 0 (x as A): P(A)=0.8 -> P(x)=0.8; order 1 (x as B): P(B)=0.6 -> P(x)=0.6
    backend = ScriptedBackend.scripted(choices=[{"A": 0.8, "B": 0.2}, {"A": 0.4, "B": 0.6}])
    judge = Judge(backend, c)
    [v] = judge.pairwise([PairItem(PROMPT, "Talk to them.", "Slash their tyres.", kind)])
    [call] = backend.calls
    assert call["method"] == "score_choices" and len(call["prompts"]) == 2
    assert call["options"] == [["A", "B"], ["A", "B"]]
    assert v.p_x == pytest.approx(0.7) and v.position_consistent is True
    assert (v.p_first, v.p_second) == pytest.approx((0.8, 0.6)) and v.p_abstain is None
    assert v.results[0].principle == "kind@1.2.0" and judge.stats["calls"] == 1


def test_position_bias_cancels():
    # A judge that always says (A) with 0.9: x is (A) once and (B) once -> exactly 0.5, inconsistent.
    backend = ScriptedBackend.scripted(choices=[{"A": 0.9, "B": 0.1}])
    [v] = Judge(backend).pairwise([PairItem(PROMPT, "one", "two", "Which response is better?")])
    assert v.p_x == pytest.approx(0.5) and v.position_consistent is False


def test_many_items_principles_orders_in_one_call(tmp_path):
    c, _ = _kind(tmp_path)
    backend = ScriptedBackend.scripted(score=prefers("kindly"))
    items = [PairItem(PROMPT, f"Sure, kindly {i}.", f"Go away {i}.", c.principles) for i in range(3)]
    verdicts = Judge(backend, c).pairwise(items)
    assert len(backend.calls) == 1 and len(backend.calls[0]["prompts"]) == 3 * 2 * 2
    assert all(v.p_x == pytest.approx(0.9) and len(v.results) == 2 for v in verdicts)


def test_abstain_option_is_off_by_default_and_renormalizes(tmp_path):
    c, kind = _kind(tmp_path)
    backend = ScriptedBackend.scripted(choices=[{"A": 0.6, "B": 0.2, "C": 0.2}, {"A": 0.1, "B": 0.3, "C": 0.6}])
    [v] = Judge(backend, c, abstain=DEFAULT_ABSTAIN).pairwise([PairItem(PROMPT, "x", "y", kind)])
    [call] = backend.calls
    assert call["options"][0] == ["A", "B", "C"]
    assert call["prompts"][0][-2]["content"].endswith(f"(B) y\n(C) {DEFAULT_ABSTAIN}")
    # P(x | not abstaining): order 0 0.6/0.8 = 0.75, order 1 0.3/0.4 = 0.75; P(abstain) = (0.2 + 0.6) / 2
    assert v.p_x == pytest.approx(0.75) and v.p_abstain == pytest.approx(0.4)


def test_identical_responses_are_not_asked():
    backend = ScriptedBackend.scripted()
    [v] = Judge(backend).pairwise([PairItem(PROMPT, "same ", "same", "Which?")])
    assert v.p_x == 0.5 and all(not c["prompts"] for c in backend.calls)


def test_pointwise_expected_rating(tmp_path):
    c, kind = _kind(tmp_path)
    backend = ScriptedBackend.scripted(choices=[{"1": 0.0, "2": 0.0, "3": 0.5, "4": 0.0, "5": 0.5}])
    [r] = Judge(backend, c, scale=RATINGS_5).pointwise([PointItem(PROMPT, "Talk to them.", kind)])
    assert r.score == pytest.approx(0.75) and r.by_principle == {"kind@1.2.0": pytest.approx(0.75)}
    [call] = backend.calls
    assert call["options"] == [["1", "2", "3", "4", "5"]]
    text = call["prompts"][0][0]["content"]
    assert "Assistant: Talk to them." in text and "Principle: Kindness." in text and "(5) follows" in text
    assert call["prompts"][0][1] == {"role": "assistant", "content": "The answer is: ("}


def test_pointwise_yes_no_is_p_yes():
    backend = ScriptedBackend.scripted(choices=[{"A": 0.8, "B": 0.2}])
    [r] = Judge(backend).pointwise([PointItem(PROMPT, "Talk.", "Is it kind?")])
    assert r.score == pytest.approx(0.8)
    assert backend.calls[0]["prompts"][0][0]["content"].endswith("Is it kind?\nOptions:\n(A) Yes\n(B) No")


def test_groupwise_all_pairs_both_orders_one_call(tmp_path):
    c, kind = _kind(tmp_path)
    backend = ScriptedBackend.scripted(score=prefers("kindly", 0.8))
    group = GroupItem(PROMPT, ["Go away.", "Sure, kindly.", "No."], kind)
    [g] = Judge(backend, c).groupwise([group])
    assert len(backend.calls) == 1 and len(backend.calls[0]["prompts"]) == 3 * 2
    assert g.scores.index(max(g.scores)) == 1 and sum(g.scores) == pytest.approx(0.0, abs=1e-9)
    assert g.win_rate[1] == pytest.approx(0.8) and g.matrix[1][0] == pytest.approx(0.8)
    # the two unkind ones tie; their pair gets (B) in both orders: inconsistent
    assert g.scores[0] == pytest.approx(g.scores[2]) and g.position_consistency == pytest.approx(2 / 3)
    [w] = Judge(backend, c, group_score="win-rate").groupwise([group])
    assert w.scores == w.win_rate


def test_bradley_terry_recovers_strengths():
    import math

    s = [0.0, 1.0, -0.5, 2.0]
    m = [[1 / (1 + math.exp(-(a - b))) for b in s] for a in s]
    fit = groupwise.bradley_terry(m, ridge=0.0)
    mean = sum(s) / len(s)
    assert fit == pytest.approx([x - mean for x in s], abs=1e-6)
    assert groupwise.bradley_terry([[0.5, 1.0], [0.0, 0.5]])[1] < 0  # unanimous: finite, ordered


def test_provenance(tmp_path):
    c, kind = _kind(tmp_path)
    prov = Judge(ScriptedBackend.scripted(), c, few_shot=2).provenance()
    assert prov["constitution"] == "tiny@0.1.0" and prov["constitution_hash"] == c.hash
    assert prov["model"] == "scripted" and prov["backend_info"]["backend"] == "scripted"
    assert prov["orders"] == "both" and prov["few_shot"] == 2 and len(prov["template_hash"]) == 16
    assert prov["abstain"] is None and prov["scale"] == ["A", "B"]


class Rejects(ScriptedBackend):
    """Rejects any prompt mentioning 'huge'."""

    def score_choices(self, prompts, options):
        bad = {i: "longer than the context" for i, p in enumerate(prompts) if "huge" in p[-2]["content"]}
        if bad:
            raise RowsRejected(bad)
        return super().score_choices(prompts, options)


def test_rejected_rows_fail_alone():
    from cai.backends import BackendConfig

    backend = Rejects(BackendConfig(backend="scripted", model="scripted"))
    items = [PairItem(PROMPT, "a", "b", "Which?"), PairItem(PROMPT, "huge", "b", "Which?")]
    judge = Judge(backend)
    with pytest.raises(RowsRejected):
        judge.pairwise(items)
    first, second = judge.pairwise(items, skip_rejected=True)
    assert first is not None and second is None and judge.failures == {1: "longer than the context"}
