"""Issue 5 end to end through the CLI: sample -> label -> route -> human labels -> mix -> eval.

Each command has its own tests; this one checks that their files fit together: the route's tasks
load into the labeling store, the exported human labels join the AI labels by pair id in
``cai mix``, and ``cai eval agreement`` scores the AI labels against the human ones.
"""

from __future__ import annotations

import json

import pytest

from cai.cli.main import main
from cai.humans.store import LabelStore
from cai.data.pairs import read_pairs

pytestmark = [pytest.mark.train, pytest.mark.slow]


def test_sample_label_route_humans_mix_eval(tiny_llama, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Tell me about topic {i}."}) + "\n" for i in range(4)))
    model = ["--model", str(tiny_llama), "--backend", "transformers", "-O", "device=cpu"]

    assert main(["sample", "--prompts", str(prompts), "--n", "3", "--max-tokens", "8", "--temperature", "1.0",
                 "--out", str(tmp_path / "samples"), *model]) == 0, capsys.readouterr().err
    assert main(["label", "--pairs", str(tmp_path / "samples"), "--constitution", "harmless", "--few-shot", "0",
                 "--out", str(tmp_path / "ai"), *model]) == 0, capsys.readouterr().err
    ai = {p.id: p for p in read_pairs(tmp_path / "ai")}
    assert len(ai) >= 6 and all(p.source == "ai-feedback" for p in ai.values())

    assert main(["route", "--pairs", str(tmp_path / "ai"), "--budget", "3", "--out", str(tmp_path / "tasks")]) == 0
    tasks = list(read_pairs(tmp_path / "tasks"))
    assert len(tasks) == 3 and {t.id for t in tasks} <= set(ai)

    # A person labels every routed task: always the AI's rejected response (a full disagreement).
    store = LabelStore(tmp_path / "labels.sqlite")
    assert store.add_tasks(tasks, source="route")["added"] == 3
    while (task := store.next_task("ana")) is not None:
        rejected = ai[task.pair_id].rejected
        store.label("ana", task.pair_id, "A" if task.a == [m.model_dump() for m in rejected] else "B")
    assert main(["humans", "export", "--db", str(tmp_path / "labels.sqlite"), "--out", str(tmp_path / "human")]) == 0
    human = list(read_pairs(tmp_path / "human"))
    assert len(human) == 3 and all(h.chosen == ai[h.id].rejected for h in human)

    assert main(["mix", "--input", f"ai-feedback={tmp_path / 'ai'}", "--input", f"human={tmp_path / 'human'}",
                 "--human-policy", "replace", "--test-size", "0", "--out", str(tmp_path / "mix")]) == 0
    mixed = list(read_pairs(tmp_path / "mix" / "train"))
    by_source = {s: [p for p in mixed if p.source == s] for s in ("ai-feedback", "human")}
    assert len(by_source["human"]) == 3 and len(by_source["ai-feedback"]) == len(ai) - 3
    assert not {p.id for p in by_source["human"]} & {p.id for p in by_source["ai-feedback"]}
    disagreements = (tmp_path / "mix" / "disagreements.jsonl").read_text().splitlines()
    assert len(disagreements) == 3

    capsys.readouterr()
    assert main(["eval", "agreement", str(tmp_path / "human"), "--labels", str(tmp_path / "ai"),
                 "--out", str(tmp_path / "agreement.json")]) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "agreement.json").read_text())
    assert report["n"] == 3 and report["missing"] == 0 and report["accuracy"] == 0.0

    # Issue 6 picks up from here: the mixed dataset trains a reward model, which then scores pairs.
    assert main(["train", "reward", "--data", str(tmp_path / "mix"), "--model", str(tiny_llama),
                 "--out", str(tmp_path / "rm"), "--max-steps", "2", "--batch-size", "4"]) == 0, capsys.readouterr().err
    assert main(["score", "--model", str(tmp_path / "rm"), str(tmp_path / "human"),
                 "--out", str(tmp_path / "scores.jsonl")]) == 0, capsys.readouterr().err
    scores = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert len(scores) == 3 and all(isinstance(r["margin"], float) for r in scores)

    # ... and that reward model drives PPO on the same prompts; SFT and DPO run on the same data.
    assert main(["train", "ppo", "--prompts", str(prompts), "--model", str(tiny_llama), "--reward-model",
                 str(tmp_path / "rm"), "--out", str(tmp_path / "ppo"), "--max-steps", "2", "--batch-size", "4",
                 "--mini-batch-size", "2", "--max-new-tokens", "8", "--quiet"]) == 0, capsys.readouterr().err
    metrics = [json.loads(line) for line in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and all(m["objective/kl"] == m["objective/kl"] for m in metrics)
    assert main(["train", "dpo", "--data", str(tmp_path / "mix"), "--model", str(tiny_llama),
                 "--out", str(tmp_path / "dpo"), "--max-steps", "1", "--batch-size", "2"]) == 0, capsys.readouterr().err
