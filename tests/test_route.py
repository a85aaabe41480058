"""cai route: component scores, ranking, budget, seeded ties, diversity, outputs and CLI errors."""

from __future__ import annotations

import csv
import json
import random

import pytest

from cai.cli.main import main
from cai.data import RouteConfig, run_route
from cai.data.route import score_pair
from cai.core.errors import CaiError
from cai.data.pairs import PreferencePair, PrincipleScore, read_pairs, write_pairs

W = dict.fromkeys(("uncertainty", "disagreement", "position"), 1.0)


def pair(name: str, p: float = 1.0, scores=(), consistent=None, source="ai-feedback", **kw) -> PreferencePair:
    return PreferencePair(
        prompt=[{"role": "user", "content": f"Prompt {name}"}],
        chosen=[{"role": "assistant", "content": f"Better answer {name}"}],
        rejected=[{"role": "assistant", "content": f"Worse answer {name}"}],
        source=source, p_chosen=p, position_consistent=consistent, labeler="tiny",
        scores=[PrincipleScore(principle=pr, p=v, p_first=a, p_second=b) for pr, v, a, b in scores], **kw)


@pytest.mark.parametrize("kw, expected", [
    (dict(p=1.0), dict(uncertainty=0.0, disagreement=0.0, position=0.0)),
    (dict(p=0.5), dict(uncertainty=1.0, disagreement=0.0, position=0.0)),
    (dict(p=0.75), dict(uncertainty=0.5)),
    # two principles on opposite sides: split 1, spread 0.8 -> disagreement 0.9
    (dict(p=0.5, scores=[("a@1", 0.9, None, None), ("b@1", 0.1, None, None)]),
     dict(principle_split=1.0, principle_spread=0.8, disagreement=0.9, focus_principle="b@1")),
    # three principles, one dissenting: split 2/3
    (dict(p=0.7, scores=[("a@1", 0.9, None, None), ("b@1", 0.8, None, None), ("c@1", 0.4, None, None)]),
     dict(principle_split=pytest.approx(2 / 3, abs=1e-5), principle_spread=0.5, focus_principle="c@1")),
    (dict(p=0.9, consistent=False), dict(position=1.0)),
    (dict(p=0.9, scores=[("a@1", 0.75, 0.9, 0.6)], consistent=True), dict(position=0.3, disagreement=0.0)),
    (dict(p=0.6, scores=[("a@1", 0.6, 0.8, 0.4)]), dict(position=1.0)),  # the two orders flip the preference
])
def test_component_scores(kw, expected):
    s = score_pair(pair("x", **kw), W)
    for field, value in expected.items():
        assert getattr(s, field) == (value if not isinstance(value, float) else pytest.approx(value, abs=1e-6)), field
    assert s.score == pytest.approx((s.uncertainty + s.disagreement + s.position) / 3, abs=1e-5)


def crafted() -> list[PreferencePair]:
    return [
        pair("certain", p=1.0, scores=[("a@1", 1.0, 1.0, 1.0)], consistent=True),
        pair("unsure", p=0.55, scores=[("a@1", 0.55, 0.56, 0.54)], consistent=True),
        pair("split", p=0.95, scores=[("a@1", 0.95, 0.95, 0.95), ("b@1", 0.4, 0.4, 0.4)], consistent=True),
        pair("biased", p=0.9, scores=[("a@1", 0.9, 1.0, 0.8)], consistent=False),
        pair("everything", p=0.5, scores=[("a@1", 0.8, 0.9, 0.7), ("b@1", 0.2, 0.6, 0.2)], consistent=False),
    ]


def names(path) -> list[str]:
    return [p.prompt[0].content.removeprefix("Prompt ") for p in read_pairs(path)]


def test_ranking_budget_and_report(tmp_path):
    write_pairs(crafted(), tmp_path / "labels")
    out = tmp_path / "route"
    summary = run_route(RouteConfig(pairs=str(tmp_path / "labels"), budget=3, out=str(out)))
    assert names(out) == ["everything", "biased", "unsure"]
    assert summary["counts"] == {"read": 5, "invalid": 0, "empty_response": 0, "prompt_repeated": 0,
                                 "human_skipped": 0, "excluded": 0, "duplicates": 0, "eligible": 5, "selected": 3}
    with open(out / "report.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    assert [float(r["score"]) for r in rows] == sorted((float(r["score"]) for r in rows), reverse=True)
    assert rows[1]["position"] == "1.0" and rows[1]["position_consistent"] == "False"
    saved = json.loads((out / "route.json").read_text())
    assert [s["id"] for s in saved["selected"]] == [p.id for p in read_pairs(out)]
    # The tasks keep the AI label and its raw scores for the labeling page.
    first = next(read_pairs(out))
    assert first.source == "ai-feedback" and len(first.scores) == 2

    # Weights change the order: only principle disagreement counts now.
    run_route(RouteConfig(pairs=str(tmp_path / "labels"), budget=2, out=str(out),
                          weights={"uncertainty": 0, "position": 0}))
    assert names(out) == ["everything", "split"]
    # A budget above the eligible pairs takes them all, best first, worst last.
    summary = run_route(RouteConfig(pairs=str(tmp_path / "labels"), budget=50, out=str(out)))
    assert summary["counts"]["selected"] == 5 and names(out)[-1] == "certain"


def test_seeded_ties_are_deterministic_and_order_free(tmp_path):
    ties = [pair(f"t{i}", p=0.7) for i in range(30)]  # all the same score
    write_pairs(ties, tmp_path / "a")
    shuffled = list(ties)
    random.Random(1).shuffle(shuffled)
    write_pairs(shuffled, tmp_path / "b")

    def pick(src, seed):
        run_route(RouteConfig(pairs=str(tmp_path / src), budget=5, out=str(tmp_path / "out"), seed=seed))
        return names(tmp_path / "out")

    first = pick("a", 7)
    assert pick("a", 7) == first
    assert pick("b", 7) == first  # input order does not matter
    assert pick("a", 8) != first


def test_diversity_spreads_the_budget_across_principles(tmp_path):
    pairs = [pair(f"x{i}", p=0.5 + i / 100, scores=[("x@1", 0.5 + i / 100, None, None)]) for i in range(4)]
    pairs += [pair(f"y{i}", p=0.8 + i / 100, scores=[("y@1", 0.8 + i / 100, None, None)]) for i in range(4)]
    write_pairs(pairs, tmp_path / "in")
    out = tmp_path / "out"
    plain = run_route(RouteConfig(pairs=str(tmp_path / "in"), budget=4, out=str(out)))
    assert plain["by_principle"] == {"x@1": 4}
    diverse = run_route(RouteConfig(pairs=str(tmp_path / "in"), budget=4, out=str(out), diversity=1.0))
    assert diverse["by_principle"] == {"x@1": 2, "y@1": 2}
    assert names(out)[:2] == ["x0", "y0"]  # one per principle first, then by score
    half = run_route(RouteConfig(pairs=str(tmp_path / "in"), budget=4, out=str(out), diversity=0.5))
    assert half["by_principle"] == {"x@1": 3, "y@1": 1}


def test_human_labels_exclusions_and_duplicates_are_skipped(tmp_path):
    p = crafted()
    human = pair("unsure", p=1.0, source="human")  # a person already labeled this comparison
    assert human.id == p[1].id
    write_pairs(p + [p[4], human], tmp_path / "in")
    write_pairs([p[3]], tmp_path / "done")
    summary = run_route(RouteConfig(pairs=str(tmp_path / "in"), budget=10, out=str(tmp_path / "out"),
                                    exclude=[str(tmp_path / "done")]))
    c = summary["counts"]
    assert (c["read"], c["human_skipped"], c["excluded"], c["duplicates"], c["selected"]) == (7, 1, 2, 1, 3)
    assert names(tmp_path / "out") == ["everything", "split", "certain"]


def test_cli_route_and_errors(tmp_path, capsys):
    write_pairs(crafted(), tmp_path / "labels")
    out = tmp_path / "route"
    rc = main(["route", "--pairs", str(tmp_path / "labels"), "--budget", "2", "--out", str(out),
               "--weights", "uncertainty=2,position=0.5", "--seed", "3"])
    assert rc == 0
    captured = capsys.readouterr().out
    assert "selected 2 of 5 eligible" in captured
    assert json.loads((out / "route.json").read_text())["weights"] == {"uncertainty": 2.0, "disagreement": 1.0,
                                                                       "position": 0.5}
    before = (out / "data.jsonl").read_text()

    bad = tmp_path / "bad.jsonl"
    good_line = json.dumps(crafted()[0].row())
    bad.write_text(good_line + "\n" + '{"prompt": "x", "chosen": "y"}\n')
    cases = [
        (["--pairs", str(bad)], f"{bad}:2: missing column(s) rejected"),
        (["--pairs", str(tmp_path / "nope")], "no such file or folder"),
        (["--pairs", str(tmp_path / "labels"), "--weights", "fun=1"], "--weights fun: unknown component"),
        (["--pairs", str(tmp_path / "labels"), "--weights", "position=-1"], "--weights position=-1: a weight must be >= 0"),
        (["--pairs", str(tmp_path / "labels"), "--weights", "position"], "--weights expects NAME=VALUE"),
        (["--pairs", str(tmp_path / "labels"), "--weights", "uncertainty=0,disagreement=0,position=0"],
         "at least one weight must be > 0"),
    ]
    for args, message in cases:
        rc = main(["route", *args, "--budget", "2", "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 2, args
        assert message in err and err.strip().count("\n") == 0, err
    assert main(["route", "--pairs", str(tmp_path / "labels"), "--budget", "0", "--out", str(out)]) == 2
    assert "budget" in capsys.readouterr().err
    assert (out / "data.jsonl").read_text() == before  # failed runs left the old tasks alone
    # --skip-invalid gets past the bad row.
    assert main(["route", "--pairs", str(bad), "--budget", "2", "--out", str(out), "--skip-invalid"]) == 0
    assert "invalid 1" in capsys.readouterr().out


def test_config_file_and_api_errors(tmp_path, capsys):
    write_pairs(crafted(), tmp_path / "labels")
    cfg = tmp_path / "route.yaml"
    cfg.write_text(f"pairs: {tmp_path / 'labels'}\nbudget: 1\nout: {tmp_path / 'o'}\nweights:\n  position: 0\n")
    assert main(["route", "--config", str(cfg), "--budget", "2"]) == 0  # flags override the file
    saved = json.loads((tmp_path / "o" / "route.json").read_text())
    assert saved["budget"] == 2 and saved["weights"]["position"] == 0.0
    with pytest.raises(CaiError, match="unknown component"):
        RouteConfig(pairs="x", budget=1, out="y", weights={"novelty": 1})


def test_empty_responses_are_dropped_and_counted(tmp_path):
    """An AI-labeled file holding a pair with an empty response (e.g. from an older import) is read,
    the pair left out and counted; it never reaches the tasks."""
    good = pair("ok", p=0.5)
    empty = pair("void", p=0.5).row()
    empty["rejected"] = [{"role": "assistant", "content": "  "}]
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(good.row()) + "\n" + json.dumps(empty) + "\n")
    summary = run_route(RouteConfig(pairs=str(path), budget=5, out=str(tmp_path / "out")))
    assert summary["counts"]["empty_response"] == 1 and summary["counts"]["selected"] == 1
    assert [p.id for p in read_pairs(tmp_path / "out")] == [good.id]
