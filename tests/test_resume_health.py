"""Judge health across resumed sessions (issue 28): an interrupted `cai label` or `cai generate
--verify` rerun resumes the judge-health record saved in the run folder, so summary.json covers
every judgement of the run exactly once (a resumed label run had reported 8 of 12 judgements)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cai.backends.scripted import ScriptedBackend
from cai.feedback import LabelConfig, run_label
from cai.judge.health import STATE_FILE, HealthCheckpoint, HealthPolicy, HealthTracker
from cai.sl import GenerateConfig, run_generate
from feedback_helpers import prefers, write_constitution, write_pairs_file
from sl_helpers import EchoCritic
from test_label import Dies

REPO = Path(__file__).resolve().parents[1]


class Mass:
    """A score row with a label mass, as a backend returns it."""

    def __init__(self, mass, source="logprobs"):
        self.mass, self.source = mass, source

    def values(self):
        return []


# ---------------------------------------------------------------- the tracker's state


def test_tracker_state_round_trips_every_figure():
    t = HealthTracker()
    for i, m in enumerate([0.9, 0.8, 0.05, 0.7]):
        t.judgement(Mass(m), id=f"line {i}", principle="kind@1")
    t.failure("parse", id="line 9", principle="honest@2")
    t.comparison(principle="kind@1", consistent=True, p_x=0.8, x="long answer", y="short", human_x=True)
    t.comparison(principle=None, consistent=False, p_x=0.3, x="a", y="bbb")
    again = HealthTracker()
    again.restore(json.loads(json.dumps(t.state())))
    assert again.report().to_dict() == t.report().to_dict()
    again.judgement(Mass(0.6), id="line 10", principle="kind@1")
    assert again.report().n == 6 and again.report().per_principle["kind@1"].n == 5


def test_checkpoint_follows_the_records_written(tmp_path):
    """Staged before the records are appended, made current after: a kill between the two keeps
    the count the records imply, never one chunk's judgements twice or not at all."""
    t = HealthTracker(HealthPolicy(min_label_mass=0.1))
    cp = HealthCheckpoint(tmp_path / "run", t)
    (tmp_path / "run").mkdir()
    assert cp.resume(0) is False
    t.judgement(Mass(0.9), id="a")
    cp.stage(records=1)
    cp.commit()
    t.judgement(Mass(0.9), id="b")
    cp.stage(records=2)  # killed before the records were appended, or after (no commit either way)
    for records, n in ((1, 1), (2, 2)):  # the append did not happen / did
        folder = tmp_path / f"copy{records}"
        shutil.copytree(tmp_path / "run", folder)
        fresh = HealthTracker()
        assert HealthCheckpoint(folder, fresh).resume(records) is True
        assert fresh.report().n == n and not (folder / "judge_health.state.staged.json").exists()
    stricter = HealthTracker(HealthPolicy(min_label_mass=0.3))  # resumed with another floor: said
    assert HealthCheckpoint(tmp_path / "copy2", stricter).resume(2) is True
    assert "floor 0.1, later ones against 0.3" in " ".join(stricter.report().notes)
    lost = HealthTracker()
    assert HealthCheckpoint(tmp_path / "run", lost).resume(5) is False  # matches no saved state
    assert lost.report().n == 0 and "resumed at 5 records" in " ".join(lost.report().notes)


# ---------------------------------------------------------------- cai label


def label_config(tmp_path, pairs, **kw) -> LabelConfig:
    data = dict(pairs=str(pairs), constitution=str(write_constitution(tmp_path)), out=str(tmp_path / "out"),
                labeler={"backend": "scripted", "model": "scripted"}, few_shot=0, chunk_size=2, flush_seconds=None)
    data.update(kw)
    return LabelConfig.model_validate(data)


def test_resumed_label_run_reports_every_judgement_once(tmp_path):
    # 3 pairs x 2 principles x 2 orders = 12 judgements; the first session labels 2 pairs (8)
    pairs = write_pairs_file(tmp_path / "p.jsonl", [(f"q{i}", f"kindly {i}", f"rude {i}") for i in range(3)])
    cfg = label_config(tmp_path, pairs)
    with pytest.raises(KeyboardInterrupt):
        run_label(cfg, backend=Dies.scripted(score=prefers("kindly")))
    assert (tmp_path / "out" / STATE_FILE).exists()
    summary = run_label(cfg, backend=ScriptedBackend.scripted(score=prefers("kindly")))
    assert summary["resumed_from"] == 2 and summary["pairs"] == 3
    assert summary["judge_health"]["n"] == 12
    assert summary["judge_health"]["per_principle"]["kind@1.2.0"]["n"] == 6
    assert summary["judge_health"]["position_consistency"]["n"] == 3  # each pair, both orders
    # a rerun of the finished run judges nothing and reports the same record
    again = run_label(cfg, backend=ScriptedBackend.scripted(score=prefers("kindly")))
    assert again["judge_health"]["n"] == 12


# ---------------------------------------------------------------- cai generate --verify


class JudgingEcho(EchoCritic):
    """EchoCritic that judges every revision better (P 0.8, label mass 0.95) and is killed in its
    ``dies_at``-th draft call."""

    def __init__(self, dies_at: int | None = None):
        super().__init__()
        self.dies_at, self.drafts = dies_at, 0
        self.scorer = ScriptedBackend.scripted(score=self._score)

    @staticmethod
    def _score(conv, labels):
        question = next(m["content"] for m in reversed(conv) if m["role"] == "user")
        if "Does the assistant's last response follow this principle?" in question:
            return {"A": 0.9, "B": 0.1, "_mass": 0.95}
        a_text = question.split("Options:\n")[-1].split("(B)")[0]
        return ({"A": 0.8, "B": 0.2} if "kinder answer" in a_text else {"A": 0.2, "B": 0.8}) | {"_mass": 0.95}

    def generate(self, conversations, sampling=None):
        if self._answer(conversations[0])[0] == "draft":
            self.drafts += 1
            if self.drafts == self.dies_at:
                raise KeyboardInterrupt
        return super().generate(conversations, sampling)

    def score_choices(self, prompts, options):
        return self.scorer.score_choices(prompts, options)


def generate_config(tmp_path, **kw) -> GenerateConfig:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Question {i}: how should I treat my neighbour?"}) + "\n"
                               for i in range(3)))
    data = dict(constitution=str(REPO / "constitution" / "harmless.yaml"), prompts=str(prompts),
                out=str(tmp_path / "run"), policy={"backend": "transformers", "model": "echo"}, rounds=1,
                verify=True, chunk_size=1, flush_seconds=None, export=False)
    data.update(kw)
    return GenerateConfig.model_validate(data)


def test_resumed_generate_verify_reports_every_judgement_once(tmp_path):
    # per record: the revision against the draft in both orders (2) and one rating (1)
    full = run_generate(generate_config(tmp_path, out=str(tmp_path / "whole")),
                        backends=(JudgingEcho(),) * 2)
    assert full["judge_health"]["n"] == 9
    cfg = generate_config(tmp_path)
    dying = JudgingEcho(dies_at=3)  # killed in the third chunk: two records written
    with pytest.raises(KeyboardInterrupt):
        run_generate(cfg, backends=(dying, dying))
    backend = JudgingEcho()
    summary = run_generate(cfg, backends=(backend, backend))
    assert summary["resumed_from"] == 2 and summary["records"] == 3
    assert summary["judge_health"]["n"] == 9
    assert summary["judge_health"]["position_consistency"] == full["judge_health"]["position_consistency"]
    assert summary["judge_health"]["label_mass"] == full["judge_health"]["label_mass"]
