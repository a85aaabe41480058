"""Units of cai.inverse and cai.feedback.forensics: measures on literal votes, proposal parsing on
literal answers, clustering, greedy set selection, the vote rule, the vote store, the page."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cai.feedback.forensics import (
    agreement, agreement_gap, as_votes, measure, relations, set_accuracy, set_votes, vote_from_p, wilson_upper,
)
from cai.inverse.cluster import cluster
from cai.inverse.proposals import PREFILL, parse_proposals, preferred_first, render_proposal
from cai.inverse.select import greedy_select
from cai.inverse.synthetic import DECOYS, RULES, make_pairs, scripted_backend
from cai.inverse.votes import NO_PRINCIPLE, VoteStore, _row, criterion_key, judging_constitution, vote
from cai.inverse.writing import candidate_principle, slug
from cai.principles.principle import Principle


def test_measures_follow_feedback_forensics():
    # 6 agree, 2 disagree, 2 abstain out of 10
    m = measure([1] * 6 + [-1] * 2 + [0] * 2, seed=1)
    assert (m["n"], m["agree"], m["disagree"], m["abstain"]) == (10, 6, 2, 2)
    assert m["relevance"]["value"] == 0.8
    assert m["accuracy"]["value"] == 0.75
    assert m["kappa"]["value"] == 0.5  # (0.75 - 0.5) / (1 - 0.5)
    assert m["strength"]["value"] == pytest.approx(0.5 * 0.8)  # kappa x relevance = (a - d) / N
    for k in ("relevance", "accuracy", "strength"):
        lo, hi = m[k]["ci"]
        assert lo <= m[k]["value"] <= hi and lo < hi
    assert m["small_sample"] is True
    big = measure([1] * 60 + [-1] * 20)
    assert big["small_sample"] is False and big["accuracy"]["ci"][1] - big["accuracy"]["ci"][0] < 0.25


def test_measures_edge_cases():
    empty = measure([])
    assert empty["n"] == 0 and empty["accuracy"]["value"] is None
    never = measure([0, 0, 0])
    assert never["relevance"]["value"] == 0.0 and never["accuracy"]["value"] is None
    assert never["strength"]["value"] == 0.0
    with pytest.raises(ValueError):
        as_votes([2, 0])
    assert [vote_from_p(p) for p in (0.7, 0.3, 0.5)] == [1, -1, 0]


def test_set_votes_and_agreement():
    v = as_votes([[1, 0, -1, 0], [1, -1, 0, 0], [0, -1, 1, 0]])
    assert set_votes(v, [0, 1, 2]).tolist() == [1, -1, 0, 0]
    assert set_accuracy(set_votes(v, [0, 1, 2])) == pytest.approx((1 + 0 + 0.5 + 0.5) / 4)
    assert set_accuracy([0, 0]) == 0.5  # coin flips
    # one voter alone: (1 + strength) / 2
    assert set_accuracy(v[0]) == pytest.approx((1 + measure(v[0])["strength"]["value"]) / 2)
    a = agreement([1] * 30 + [-1] * 10)
    assert a["value"] == 0.75 and a["n"] == 40 and a["ci"][0] < 0.75 < a["ci"][1]
    gap = agreement_gap([1] * 40, [0] * 40)
    # every resample alike: the bootstrap collapses, Newcombe's interval stands in (never zero-width)
    assert gap["value"] == 0.5 and gap["ci"][0] < 0.5 < gap["ci"][1]
    with pytest.raises(ValueError):
        agreement_gap([1], [1, 1])


def test_relations_overlap_and_contradiction():
    a = [1, 1, -1, 1, 1, -1, 0, 0, 1, 1]
    opposite = [-x for x in a]
    noise = [1, -1, 0, 0, 1, -1, 1, 0, -1, 1]
    rel = {(r["a"], r["b"]): r for r in relations(as_votes([a, opposite, noise]), ["a", "opp", "noise"])}
    assert rel[("a", "opp")]["contradict"] and rel[("a", "opp")]["same"] == 0.0
    assert rel[("a", "opp")]["correlation"] == pytest.approx(-1.0)
    assert rel[("a", "opp")]["both"] == 8
    assert not rel[("a", "noise")]["contradict"]  # disagrees on some, not clearly on most
    assert wilson_upper(0, 8) < 0.5 < wilson_upper(3, 8)


@pytest.mark.parametrize("answer,expected", [
    ("1. Select the response that ends with a question.\n2. Select the response that is shorter.",
     ["Select the response that ends with a question.", "Select the response that is shorter."]),
    ("- **Select the response that uses a numbered list**", ["Select the response that uses a numbered list."]),
    ('"select the response that   gives an example!"', ["Select the response that gives an example."]),
    ("Principles:\n* Select the response that is polite.\n* Select the response that is polite.",
     ["Select the response that is polite."]),  # repeats dropped
    ("Select the response that x.", []),  # too short to be a principle
    ("Both responses are fine.", []),  # unparseable
    ("", []),
    (PREFILL, []),  # a prefilled answer the model did not continue
    (PREFILL + " ends with a question.", ["Select the response that ends with a question."]),
    ("Select the response that " + "very " * 50 + "long.", []),
])
def test_parse_proposals(answer, expected):
    assert parse_proposals(answer, k=3) == expected


def test_parse_keeps_at_most_k():
    text = "\n".join(f"Select the response that does thing number {i}." for i in range(6))
    assert len(parse_proposals(text, k=2)) == 2


def test_render_proposal_names_the_preferred_response_seeded():
    pairs = make_pairs(20)
    firsts = [preferred_first(p, 0) for p in pairs]
    assert 0 < sum(firsts) < 20  # both positions are used
    for p, first in zip(pairs, firsts):
        msg, prefill = render_proposal(p, 3, seed=0)
        assert prefill == {"role": "assistant", "content": PREFILL}  # the model continues the form asked for
        text = msg["content"]
        assert f"preferred response ({'A' if first else 'B'})" in text
        a, b = text.index("(A) "), text.index("(B) ")
        shown_a = text[a + 4:b].strip()
        assert shown_a == (p.chosen_text if first else p.rejected_text)
        assert "up to 3 short principles" in text


def test_cluster_merges_paraphrases():
    texts = [ph for r in RULES for ph in r.phrasings] + list(DECOYS) + [RULES[0].phrasings[0]] * 3
    clusters = cluster(texts, max_clusters=6)
    assert len(clusters) == 6
    for r in RULES:
        [c] = [c for c in clusters if set(r.phrasings) & set(c["members"])]
        assert set(c["members"]) == set(r.phrasings)
    assert clusters[0]["size"] == 6  # the repeated question rule: 3 phrasings + 3 repeats
    assert clusters[0]["text"] in RULES[0].phrasings
    assert cluster([], 5) == [] and cluster(["Select the response that is kind."] * 2, 5)[0]["size"] == 2


def test_greedy_selects_the_set_not_the_individuals():
    # a and a2 are the same strong voter; c is weaker alone but explains the pairs a misses.
    a = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    c = [0, 0, 0, 0, 0, 0, 1, 1, 1, -1]
    noise = [1, -1, 1, -1, 0, 0, 0, 0, 0, 0]
    votes = as_votes([a, a, c, noise])
    sel = greedy_select(votes, ["a", "a2", "c", "noise"], n=3)
    assert [s["added"] for s in sel["steps"]] == ["a", "c"]  # never the duplicate a2
    assert sel["steps"][-1]["accuracy"] == pytest.approx(0.9)
    assert sel["stopped"] == "no candidate raises the set accuracy"
    assert greedy_select(votes, ["a", "a2", "c", "noise"], n=1)["stopped"] == "reached n=1"
    assert greedy_select(np.zeros((2, 0), np.int8), ["x", "y"], 2)["chosen"] == []


def test_vote_rule_from_judge_numbers():
    pair = make_pairs(1)[0]
    p = Principle(id="x", version="1.0.0", title="x", tags=["t"], preference="Select the response that is kind.")
    assert _row(p, pair, 0.9, 0.1, True).vote == 1  # 0.81 chosen vs 0.09 rejected vs 0.1
    assert _row(p, pair, 0.2, 0.1, True).vote == -1
    assert _row(p, pair, 0.9, 0.6, None).vote == 0  # abstains
    assert _row(p, pair, 0.6, 0.45, None).vote == 1  # applies (0.55), then the more likely response
    assert _row(p, pair, 0.9, 0.5, None).vote == 0  # applying is not more likely than not
    assert _row(p, pair, 0.5, 0.0, False).vote == 0  # exact tie
    r = _row(p, pair, 0.7, 0.3, True)
    assert r.p_chosen + r.p_rejected + r.p_abstain == pytest.approx(1.0)
    assert criterion_key(p) != criterion_key(p.model_copy(update={"preference": "Select the response that is kinder."}))


def test_votes_through_the_judge_both_orders_and_abstain():
    pairs = make_pairs(6)
    backend = scripted_backend(pairs)
    rule = Principle(id="q", version="1.0.0", title="q", tags=["t"], preference=RULES[0].phrasings[0])
    rows = vote(backend, [rule], pairs, constitution=judging_constitution([rule]))
    [call] = backend.calls
    assert call["options"][0] == ["A", "B", "C"] and len(call["prompts"]) == 2 * len(pairs)  # both orders
    assert "(C) Neither" in call["prompts"][0][-2]["content"]
    assert [r.vote for r in rows] == [1 if RULES[0].has(p.chosen_text) else 0 for p in pairs]
    base = vote(backend, [NO_PRINCIPLE], pairs, abstain=False)
    assert backend.calls[-1]["options"][0] == ["A", "B"] and {r.vote for r in base} == {0}


def test_pair_first_template_shares_the_pair_prefix():
    pairs = make_pairs(1)
    backend = scripted_backend(pairs)
    ps = [Principle(id=f"p{i}", version="1.0.0", title="p", tags=["t"], preference=ph)
          for i, ph in enumerate(RULES[1].phrasings)]
    vote(backend, ps, pairs, constitution=judging_constitution(ps))
    texts = [c[0]["content"] for c in backend.calls[0]["prompts"][::2]]  # order 0 of each principle
    cut = texts[0].index(ps[0].preference)
    assert all(t[:cut] == texts[0][:cut] for t in texts) and pairs[0].rejected_text in texts[0][:cut]
    vote(backend, ps, pairs, constitution=judging_constitution(ps, pair_first=False))
    other = backend.calls[1]["prompts"][0][0]["content"]
    assert other.index(ps[0].preference) < other.index(pairs[0].rejected_text)  # cai label's layout


def test_vote_store_resumes_and_drops_torn_line(tmp_path):
    pairs = make_pairs(5)
    backend = scripted_backend(pairs)
    ps = [Principle(id="q", version="1.0.0", title="q", tags=["t"], preference=RULES[0].phrasings[0])]
    store = VoteStore(tmp_path)
    asked = store.fill(ps, pairs[:3], lambda chunk, needed: vote(backend, needed, chunk), chunk_size=2)
    assert asked == 3
    with open(tmp_path / "votes.jsonl", "a") as fh:
        fh.write('{"id": "torn')
    again = VoteStore(tmp_path)
    assert len(again.rows) == 3 and again.missing(ps, pairs) == pairs[3:]
    calls = len(backend.calls)
    assert again.fill(ps, pairs, lambda chunk, needed: vote(backend, needed, chunk), chunk_size=10) == 2
    assert len(backend.calls) == calls + 1
    # a principle added later: only it is asked, on every pair
    more = ps + [Principle(id="l", version="1.0.0", title="l", tags=["t"], preference=RULES[1].phrasings[0])]
    assert again.fill(more, pairs, lambda chunk, needed: vote(backend, needed, chunk), chunk_size=10) == 5
    assert {c[0]["content"].count(RULES[1].phrasings[0]) for c in backend.calls[-1]["prompts"]} == {1}
    lines = (tmp_path / "votes.jsonl").read_text().splitlines()
    assert len(lines) == 10 and len({json.loads(x)["id"] for x in lines}) == 10


def test_candidate_principles_are_usable():
    taken: set[str] = set()
    ids = [slug("Select the response that ends with a question to the user.", taken) for _ in range(2)]
    assert ids == ["ends-with-question-user", "ends-with-question-user-2"]
    assert slug("Select the response that 42 things.", set()).startswith("p-")
    p = candidate_principle("Select the response that uses a numbered list.", "numbered-list")
    assert p.preference == "Select the response that uses a numbered list."
    assert "uses a numbered list" in p.critique and "uses a numbered list" in p.revision
    assert p.title == "Uses a numbered list"
