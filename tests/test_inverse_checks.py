"""The checks of issue 21: pairs that follow hidden rules, judged by a scripted model that knows the
rules: `cai principles propose` recovers the rules and `cai principles test --pairs` ranks them
first; with the rules removed, relevance falls. Then both commands on a tiny real model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

from cai.cli.main import main
from cai.inverse import PrincipleTestConfig, ProposeConfig, run_principle_test, run_propose
from cai.inverse.synthetic import DECOYS, RULES, make_pairs, rule_for, scripted_backend
from cai.principles.lint import lint_paths
from cai.principles.principle import Principle, principle_to_markdown

REPO = Path(__file__).resolve().parents[1]
SCRIPTED = {"backend": "scripted", "model": "scripted"}


def write_pairs(path: Path, pairs) -> Path:
    rows = ({k: p.row()[k] for k in ("prompt", "chosen", "rejected")} for p in pairs)  # TRL's columns
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_library(folder: Path) -> Path:
    """The hidden rules (first phrasing each) and the decoys as principle files."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = {r.name: r.phrasings[0] for r in RULES} | {f"decoy-{i}": d for i, d in enumerate(DECOYS)}
    for pid, text in texts.items():
        p = Principle(id=pid, version="1.0.0", title=pid, tags=["check"], preference=text)
        (folder / f"{pid}.md").write_text(principle_to_markdown(p))
    return folder


def test_pairs_ranks_the_hidden_rules_first_and_gates_ci(tmp_path, monkeypatch, capsys):
    pairs = make_pairs(60)
    data = write_pairs(tmp_path / "pairs.jsonl", pairs)
    lib = write_library(tmp_path / "principles")
    monkeypatch.setattr("cai.inverse.tester.load_backend", lambda cfg: scripted_backend(pairs))
    out = tmp_path / "out"
    args = ["principles", "test", "--pairs", str(data), "--dir", str(lib), "--backend", "scripted",
            "--model", "scripted", "--out", str(out)]
    assert main(args + ["--min-strength", "0.2"]) == 1  # the decoys are below 0.2: CI fails
    printed, err = capsys.readouterr()
    assert "below strength 0.2" in err and "decoy-0@1.0.0" in err and "ends-with-question" not in err
    report = json.loads((out / "report.json").read_text())
    ranked = [m["principle"].split("@")[0] for m in report["principles"]]
    assert set(ranked[:3]) == {r.name for r in RULES}
    for m in report["principles"][:3]:
        assert m["accuracy"]["value"] == 1.0 and m["relevance"]["value"] == pytest.approx(1 / 3, abs=1e-3)
        assert m["strength"]["ci"][0] > max(d["strength"]["value"] for d in report["principles"][3:]) - 0.2
    for m in report["principles"][3:]:  # decoys: right about half the time where they apply
        assert m["strength"]["ci"][0] < 0.1 < 0.5 < m["relevance"]["ci"][1] + 0.3
        assert m["worst"] and m["worst"][0]["p_rejected"] >= 0.5
    # all six together beat the judge asked with no principle, which here has no preference
    assert report["no_principle"]["value"] == 0.5 and report["constitution"]["value"] > 0.7
    assert report["constitution_minus_no_principle"]["ci"][0] > 0
    page = (out / "report.html").read_text()
    assert page.count("<svg") >= 3 and "ends-with-question@1.0.0" in page
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):  # every plot is well-formed SVG
        ElementTree.fromstring(svg)
    # a rerun resumes: every vote is already there, nothing is asked
    assert main(args + ["--min-strength", "-1"]) == 0
    assert json.loads((out / "report.json").read_text())["asked"] == {"votes": 0, "no_principle_votes": 0}
    lines = (out / "votes.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(x)["id"] for x in lines}) == 60 * 6 + 60


def test_relevance_falls_when_the_rules_are_removed(tmp_path):
    lib = write_library(tmp_path / "principles")
    relevance = {}
    for name, pairs in (("rules", make_pairs(45)), ("none", make_pairs(45, rules=()))):
        cfg = PrincipleTestConfig(pairs=str(write_pairs(tmp_path / f"{name}.jsonl", pairs)), judge=SCRIPTED,
                                  principles_dir=str(lib), principles=["ends-*", "numbered-*", "gives-*"])
        report = run_principle_test(cfg, backend=scripted_backend(pairs))
        relevance[name] = {m["principle"]: m["relevance"] for m in report["principles"]}
    for ref, with_rules in relevance["rules"].items():
        without = relevance["none"][ref]
        assert with_rules["value"] == pytest.approx(1 / 3, abs=1e-3) and without["value"] == 0.0
        assert without["ci"][1] < with_rules["ci"][0]  # intervals apart


def test_propose_recovers_the_hidden_rules(tmp_path):
    pairs = make_pairs(120)
    cfg = ProposeConfig(pairs=str(write_pairs(tmp_path / "pairs.jsonl", pairs)), proposer=SCRIPTED,
                        out=str(tmp_path / "out"), n=5, max_candidates=6)
    s = run_propose(cfg, backend=scripted_backend(pairs))
    out = tmp_path / "out"
    # one principle per hidden rule, and nothing else (no decoy raises the set's accuracy)
    candidates = {c["id"]: c["text"] for c in json.loads((out / "02-candidates.json").read_text())["candidates"]}
    chosen_text = [candidates[pid] for pid in s["selected"]]
    assert sorted(rule_for(t).name for t in chosen_text) == sorted(r.name for r in RULES)
    assert s["stopped"] == "no candidate raises the set accuracy" and s["steps"][-1]["accuracy"] == 1.0
    assert s["candidates"] == 6  # the paraphrases of each rule were merged
    held = s["held_out"]
    assert held["pairs"] > 20 and held["selected"]["value"] == 1.0
    assert held["selected_minus_no_principle"]["ci"][0] > 0.3
    # unparseable answers are counted (the scripted proposer writes some)
    rows = [json.loads(x) for x in (out / "01-proposals.jsonl").read_text().splitlines()]
    assert s["unparseable"] == sum(1 for r in rows if not r["principles"]) > 0
    assert s["proposals"] == s["train"] == len(rows)
    # the files lint clean, with provenance, and drive SL-CAI too
    report = lint_paths([out / "principles", out / "constitution"])
    assert report.principles == 3 and report.constitutions == 1 and not report.diagnostics
    for path in (out / "principles").glob("*.md"):
        text = path.read_text()
        assert "## Critique" in text and "## Revision" in text and "## Preference" in text
        assert "data sha256" in text and "03-votes.jsonl" in text and "held-out" in text
    assert (out / "report.html").read_text().count("<svg") >= 3


class Flaky:
    """A backend that dies on its ``fail_at``-th score_choices call (a killed run)."""

    def __init__(self, inner, fail_at: int):
        self.inner, self.fail_at, self.n = inner, fail_at, 0
        self.config = inner.config

    def generate(self, *a, **k):
        return self.inner.generate(*a, **k)

    def score_choices(self, *a, **k):
        self.n += 1
        if self.n == self.fail_at:
            raise RuntimeError("killed")
        return self.inner.score_choices(*a, **k)

    def describe(self):
        return self.inner.describe()


def test_propose_resumes_without_duplicates(tmp_path):
    pairs = make_pairs(60)
    data = write_pairs(tmp_path / "pairs.jsonl", pairs)
    fresh = run_propose(ProposeConfig(pairs=str(data), proposer=SCRIPTED, out=str(tmp_path / "fresh"), chunk_size=8),
                        backend=scripted_backend(pairs))
    cfg = ProposeConfig(pairs=str(data), proposer=SCRIPTED, out=str(tmp_path / "killed"), chunk_size=8)
    with pytest.raises(RuntimeError, match="killed"):
        run_propose(cfg, backend=Flaky(scripted_backend(pairs), fail_at=3))
    resumed = run_propose(cfg, backend=scripted_backend(pairs))
    assert resumed["selected"] == fresh["selected"] and resumed["held_out"] == fresh["held_out"]
    for name in ("01-proposals.jsonl", "03-votes.jsonl"):
        ids = [json.loads(x)["id"] for x in (tmp_path / "killed" / name).read_text().splitlines()]
        assert len(ids) == len(set(ids))
        assert sorted(ids) == sorted(json.loads(x)["id"] for x in (tmp_path / "fresh" / name).read_text().splitlines())
    other = write_pairs(tmp_path / "other.jsonl", make_pairs(30, seed=5))
    with pytest.raises(Exception, match="different pairs"):
        run_propose(cfg.model_copy(update={"pairs": str(other)}), backend=scripted_backend(pairs))


def test_bad_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "hi", "chosen": "a", "rejected": "b"}) + "\n{not json\n")
    code = main(["principles", "test", "--pairs", str(bad), "--backend", "scripted", "--model", "scripted"])
    out, err = capsys.readouterr()
    assert code != 0 and "Traceback" not in err and "bad.jsonl" in err and ":2" in err
    assert main(["principles", "propose", "--pairs", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"),
                 "--backend", "scripted", "--model", "scripted"]) != 0
    assert "missing.jsonl" in capsys.readouterr().err


def test_principles_test_settings_belong_to_one_mode(tmp_path, capsys):
    # a pairs-only setting without --pairs (silently ignored before) and --min-accuracy with it: one line each
    code = main(["principles", "test", "harm-cyber", "--backend", "scripted", "--model", "m", "--min-strength", "0.2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "min_strength: only with pairs" in err
    code = main(["principles", "test", "--pairs", "p.jsonl", "--backend", "scripted", "--model", "m",
                 "--min-accuracy", "0.5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "min_accuracy: only without pairs" in err
    with pytest.raises(Exception, match="pairs: run_principle_test needs labeled pairs"):
        run_principle_test(PrincipleTestConfig(judge=SCRIPTED))


def test_old_question_first_still_works(tmp_path, monkeypatch, capsys):
    pairs = make_pairs(12)
    data = write_pairs(tmp_path / "pairs.jsonl", pairs)
    lib = write_library(tmp_path / "principles")
    seen = []
    real = run_principle_test

    def spy(config, **kw):
        seen.append(config)
        return real(config, backend=scripted_backend(pairs), **kw)

    monkeypatch.setattr("cai.inverse.run_principle_test", spy)
    assert main(["principles", "test", "--pairs", str(data), "--principles-dir", str(lib), "--backend", "scripted",
                 "--model", "scripted", "--question-first"]) == 0
    assert seen[0].pair_first is False
    assert "--question-first is now --no-pair-first" in capsys.readouterr().err


@pytest.mark.slow
def test_both_commands_on_a_tiny_model(tiny_llama, hf_backend, tmp_path, capsys):
    """CI runs both commands on a tiny real model (random weights: near chance is all it can do)."""
    pairs_file = REPO / "recipes" / "loop-human-labels.jsonl"
    out = tmp_path / "test"
    code = main(["principles", "test", "rlhf-sycophancy", "harm-privacy", "--pairs", str(pairs_file),
                 "--dir", str(REPO / "principles"), "--backend", "transformers", "--model", str(tiny_llama),
                 "-O", "device=cpu", "-O", "dtype=float32", "--out", str(out)])
    printed, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["pairs"] == 8 and len(report["principles"]) == 2
    rows = [json.loads(x) for x in (out / "votes.jsonl").read_text().splitlines()]
    assert len(rows) == 8 * 3
    for r in rows:
        assert r["p_chosen"] + r["p_rejected"] + r["p_abstain"] == pytest.approx(1.0, abs=1e-4)
        applies = r["p_abstain"] < 0.5 and r["p_chosen"] != r["p_rejected"]
        assert r["vote"] == (0 if not applies else 1 if r["p_chosen"] > r["p_rejected"] else -1)
    assert "small sample" in printed and "no-principle judge" in printed
    # propose end to end on the tiny model (its "principles" are noise continuing the prefilled
    # "1. Select the response that"; whatever it writes must still lint clean)
    prop = tmp_path / "prop"
    code = main(["principles", "propose", "--pairs", str(pairs_file), "--out", str(prop), "--backend", "transformers",
                 "--model", str(tiny_llama), "-O", "device=cpu", "-O", "dtype=float32", "--max-tokens", "12",
                 "--held-out", "0.25", "-n", "2"])
    printed, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads((prop / "summary.json").read_text())
    assert summary["proposals"] == summary["train"] == len((prop / "01-proposals.jsonl").read_text().splitlines())
    assert summary["pairs"] == 8 and (prop / "report.html").exists()
    if summary["selected"]:
        assert "held out" in printed
    else:  # nothing selected: said, and no accuracy of an empty set (was "selected 50.0% [50-50]")
        assert "no principle was selected" in printed and "selected 50.0%" not in printed
    assert "judge health" in printed
    if summary["selected"]:
        assert not lint_paths([prop / "principles", prop / "constitution"]).errors
    # the rest of propose on the tiny judge, with the scripted proposer
    synthetic = make_pairs(24)
    s = run_propose(ProposeConfig(pairs=str(write_pairs(tmp_path / "syn.jsonl", synthetic)), proposer=SCRIPTED,
                                  out=str(tmp_path / "prop2"), n=2, max_candidates=4),
                    backend=scripted_backend(synthetic), judge=hf_backend)
    assert s["candidates"] == 4 and s["held_out"]["no_principle"]["n"] == s["held_out"]["pairs"]
    assert 0.0 <= s["held_out"]["selected"]["value"] <= 1.0


@pytest.mark.slow
def test_cluster_with_a_local_embedding_model(tiny_llama):
    from cai.inverse.cluster import cluster, model_vectors

    texts = [ph for r in RULES for ph in r.phrasings]
    x = model_vectors(texts, str(tiny_llama))
    assert x.shape[0] == len(texts) and abs(float((x * x).sum(axis=1).mean()) - 1.0) < 1e-5  # unit rows
    clusters = cluster(texts + texts[:2], 4, embedding_model=str(tiny_llama))
    assert len(clusters) == 4 and sum(c["size"] for c in clusters) == len(texts) + 2
    assert sorted(t for c in clusters for t in c["members"]) == sorted(texts)



class Rejecting:
    """A backend that rejects every conversation mentioning ``marker`` (as one longer than its
    context would be), naming the rows, like the real backends do."""

    def __init__(self, inner, marker: str):
        self.inner, self.marker, self.config = inner, marker, inner.config

    def _check(self, rows):
        from cai.backends.base import RowsRejected

        bad = {i: "prompt longer than the context" for i, conv in enumerate(rows)
               if any(self.marker in m["content"] for m in conv)}
        if bad:
            raise RowsRejected(bad)

    def generate(self, rows, sampling=None):
        self._check(rows)
        return self.inner.generate(rows, sampling)

    def score_choices(self, rows, options):
        self._check(rows)
        return self.inner.score_choices(rows, options)

    def describe(self):
        return self.inner.describe()


def test_a_pair_the_backend_rejects_fails_alone(tmp_path):
    pairs = make_pairs(30)
    data = write_pairs(tmp_path / "pairs.jsonl", pairs)
    lib = write_library(tmp_path / "principles")
    backend = Rejecting(scripted_backend(pairs), "Question 4:")
    report = run_principle_test(PrincipleTestConfig(pairs=str(data), judge=SCRIPTED, principles_dir=str(lib)),
                                backend=backend)
    assert report["pairs"] == 29 and report["failed"] == 1
    assert report["failed_pairs"][0]["origin"].endswith(":5") and "context" in report["failed_pairs"][0]["reason"]
    s = run_propose(ProposeConfig(pairs=str(data), proposer=SCRIPTED, out=str(tmp_path / "out"), max_candidates=6),
                    backend=backend)
    assert s["failed"] == 1 and s["failed_pairs"][0]["origin"].endswith(":5")
    assert s["train"] + s["held_out"]["pairs"] == 29 and s["selected"]
