"""cai mix: dedupe, human policy, disagreement report, weights, caps, stratified split, CLI, TRL."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from cai.cli.main import main
from cai.data import MixConfig, run_mix
from cai.data.mix import apply_caps, parse_input
from cai.core.errors import CaiError
from cai.data.pairs import PreferencePair, PrincipleScore, read_pairs, write_pairs


def msg(role: str, text: str) -> list[dict]:
    return [{"role": role, "content": text}]


def ai_feedback(i: int, p: float = 0.8, swap: bool = False) -> PreferencePair:
    a, b = msg("assistant", f"Answer A {i}"), msg("assistant", f"Answer B {i}")
    return PreferencePair(prompt=msg("user", f"Feedback prompt {i}"), chosen=b if swap else a,
                          rejected=a if swap else b, source="ai-feedback", p_chosen=p, weight=0.8,
                          labeler="tiny", scores=[PrincipleScore(principle="harm@1", p=p, p_first=p, p_second=p)],
                          position_consistent=True)


def ai_revision(i: int) -> PreferencePair:
    return PreferencePair(prompt=msg("user", f"Revision prompt {i}"), chosen=msg("assistant", f"Revised {i}"),
                          rejected=msg("assistant", f"Draft {i}"), source="ai-revision", principle_ids=["harm@1"],
                          record_id=f"r{i}", labeler="tiny")


def human_label(ai: PreferencePair, prefer: str, labeler: str = "ann") -> PreferencePair:
    """A person's label on the same two responses: prefer 'ai' (the AI's chosen), 'other' or 'tie'."""
    chosen, rejected = (ai.chosen, ai.rejected) if prefer != "other" else (ai.rejected, ai.chosen)
    return PreferencePair(prompt=ai.prompt, chosen=chosen, rejected=rejected, source="human",
                          p_chosen=0.5 if prefer == "tie" else 1.0, labeler=labeler)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Three sources with known overlaps, duplicates and disagreements.

    ai-revision: 20 (an SL-CAI run folder); ai-feedback: 40 + 2 duplicates (one prefers the other
    response); human: 13 rows = labels on fb0-7 and rev0, 3 pairs of its own, 1 duplicate.
    Versus human: fb0,1,2,7 agree; fb3, fb4, rev0 disagree; fb5 human tie; fb6 AI tie.
    """
    root = tmp_path_factory.mktemp("mix-data")
    rev = [ai_revision(i) for i in range(20)]
    write_pairs(rev, root / "run" / "preferences")
    fb = [ai_feedback(i, p=0.5 if i == 6 else 0.6 + i / 100) for i in range(40)]
    write_pairs(fb + [ai_feedback(1), ai_feedback(2, swap=True)], root / "feedback")
    prefs = ["ai", "ai", "ai", "other", "other", "tie", "ai", "ai"]
    humans = [human_label(fb[i], prefs[i]) for i in range(8)] + [human_label(rev[0], "other")]
    humans += [PreferencePair(prompt=msg("user", f"Human prompt {i}"), chosen=msg("assistant", f"Good {i}"),
                              rejected=msg("assistant", f"Bad {i}"), source="human", labeler="bo") for i in range(3)]
    humans.append(human_label(fb[0], "ai", labeler="bo"))
    write_pairs(humans, root / "humans")
    write_pairs([PreferencePair(prompt=msg("user", "Imported"), chosen=msg("assistant", "Yes"),
                                rejected=msg("assistant", "No"), source="hh")], root / "hh")
    return root


def inputs(data: Path, hh: bool = False) -> list[str]:
    out = [f"ai-revision={data / 'run'}", f"ai-feedback={data / 'feedback'}", f"human={data / 'humans'}"]
    return out + [str(data / "hh")] if hh else out


def mix(data: Path, out: Path, **kw) -> dict:
    kw.setdefault("inputs", inputs(data))
    return run_mix(MixConfig(out=str(out), **kw))


def rows(folder: Path) -> list[PreferencePair]:
    return list(read_pairs(folder / "data.jsonl"))


@pytest.fixture(scope="module")
def replaced(data, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("mixed") / "mix"
    return mix(data, out, test_size=0.25, weights={"human": 2.0, "ai-revision": 0.5}, seed=1), out


def test_dedupe_and_replace(replaced):
    summary, out = replaced
    s = summary["sources"]
    assert (s["ai-feedback"]["read"], s["ai-feedback"]["duplicates"], s["ai-feedback"]["conflicting_duplicates"]) == (42, 2, 1)
    assert (s["human"]["read"], s["human"]["duplicates"], s["human"]["conflicting_duplicates"]) == (13, 1, 0)
    assert summary["dedupe"] == {"duplicates": 3, "conflicting": 1}
    assert s["ai-feedback"]["replaced_by_human"] == 8 and s["ai-revision"]["replaced_by_human"] == 1
    everything = rows(out / "train") + rows(out / "test")
    assert Counter(p.source for p in everything) == {"ai-revision": 19, "ai-feedback": 32, "human": 12}
    human_ids = {p.id for p in everything if p.source == "human"}
    assert not any(p.id in human_ids for p in everything if p.source != "human")  # human wins
    assert len({(p.source, p.id) for p in everything}) == len(everything)  # no duplicates within a source


def test_weights_soft_labels_and_trl_format(replaced, data):
    from datasets import load_from_disk

    _, out = replaced
    everything = rows(out / "train") + rows(out / "test")
    weights = {src: {p.weight for p in everything if p.source == src} for src in ("human", "ai-revision", "ai-feedback")}
    assert weights == {"human": {2.0}, "ai-revision": {0.5}, "ai-feedback": {0.8}}  # no --weight: rows keep theirs
    soft = {p.id: p.p_chosen for p in read_pairs(data / "feedback")}
    assert all(p.p_chosen == soft[p.id] for p in everything if p.source == "ai-feedback")
    ds = load_from_disk(str(out / "train" / "hf"))
    assert {"prompt", "chosen", "rejected", "source", "weight", "p_chosen", "scores"} <= set(ds.column_names)
    assert ds[0]["chosen"][0].keys() == {"role", "content"}
    assert (out / "train" / "data.parquet").is_file() and (out / "test" / "hf").is_dir()


def test_stratified_split_and_mix_json(replaced, data):
    summary, out = replaced
    s = summary["sources"]
    # round(n * 0.25) pair ids of each source go to test: human 12 -> 3, ai-feedback 32 -> 8, ai-revision 19 -> 5
    assert {k: (v["train"], v["test"]) for k, v in s.items()} == {
        "ai-revision": (14, 5), "ai-feedback": (24, 8), "human": (9, 3)}
    train_ids = {p.id for p in rows(out / "train")}
    assert not train_ids & {p.id for p in rows(out / "test")}
    saved = json.loads((out / "mix.json").read_text())
    assert saved == summary
    assert saved["inputs"][0] == {"source": "ai-revision", "path": str(data / "run"), "rows": 20, "invalid": 0,
                                  "empty_response": 0, "prompt_repeated": 0}
    assert (saved["seed"], saved["test_size"], saved["weights"], saved["caps"]) == (1, 0.25, {"human": 2.0, "ai-revision": 0.5}, {})
    assert saved["splits"] == {"train": 47, "test": 16}
    # The same seed gives the same split; another seed another one.
    again = mix(data, out.parent / "again", test_size=0.25, seed=1)
    assert {p.id for p in rows(out.parent / "again" / "test")} == {p.id for p in rows(out / "test")}
    assert again["splits"] == summary["splits"]
    mix(data, out.parent / "other", test_size=0.25, seed=2)
    assert {p.id for p in rows(out.parent / "other" / "test")} != {p.id for p in rows(out / "test")}


def test_disagreement_report(replaced):
    summary, out = replaced
    h = summary["human_vs_ai"]
    assert {k: h[k] for k in ("overlap", "agree", "disagree", "human-tie", "ai-tie")} == {
        "overlap": 9, "agree": 4, "disagree": 3, "human-tie": 1, "ai-tie": 1}
    assert h["by_source"]["ai-revision"] == {"disagree": 1}
    report = [json.loads(line) for line in (out / "disagreements.jsonl").read_text().splitlines()]
    assert Counter(r["kind"] for r in report) == {"disagree": 3, "human-tie": 1, "ai-tie": 1}
    for r in report:
        if r["kind"] == "disagree":  # the AI's chosen response is the one the person rejected
            assert r["ai"]["chosen"] == r["human"]["rejected"] and r["human"]["p_chosen"] == 1.0
    fb3 = next(r for r in report if r["prompt"][0]["content"] == "Feedback prompt 3")
    assert fb3["ai"]["source"] == "ai-feedback" and fb3["ai"]["p_chosen"] == pytest.approx(0.63)
    assert fb3["ai"]["scores"][0]["principle"] == "harm@1" and fb3["human"]["labeler"] == "ann"
    tie = next(r for r in report if r["kind"] == "human-tie")
    assert tie["human"]["p_chosen"] == 0.5 and tie["prompt"][0]["content"] == "Feedback prompt 5"


def test_join_keeps_both_labels_in_the_same_split(data, tmp_path):
    summary = mix(data, tmp_path / "mix", human_policy="join", test_size=0.25)
    train, test = rows(tmp_path / "mix" / "train"), rows(tmp_path / "mix" / "test")
    assert Counter(p.source for p in train + test) == {"ai-revision": 20, "ai-feedback": 40, "human": 12}
    assert summary["sources"]["ai-feedback"]["replaced_by_human"] == 0
    assert summary["human_vs_ai"]["disagree"] == 3  # the report does not depend on the policy
    splits_of: dict[str, set[str]] = {}
    for name, split in (("train", train), ("test", test)):
        for p in split:
            splits_of.setdefault(p.id, set()).add(name)
    assert all(len(v) == 1 for v in splits_of.values())  # a pair's human and AI rows stay together
    shared = {p.id for p in train + test if p.source == "human"} & {p.id for p in train + test if p.source != "human"}
    assert len(shared) == 9


def test_caps_are_seeded_samples(data, tmp_path):
    summary = mix(data, tmp_path / "a", caps={"ai-feedback": 10, "human": 50}, seed=5, test_size=0)
    s = summary["sources"]["ai-feedback"]
    assert s["capped"] == 30 and s["train"] + s["replaced_by_human"] == 10 and s["test"] == 0
    assert summary["sources"]["human"]["capped"] == 0  # a cap above the count keeps everything
    pairs = list(read_pairs(data / "feedback"))
    first, _ = apply_caps(pairs, {"ai-feedback": 10}, seed=5)
    again, _ = apply_caps(pairs, {"ai-feedback": 10}, seed=5)
    other, _ = apply_caps(pairs, {"ai-feedback": 10}, seed=6)
    assert [p.id for p in first] == [p.id for p in again] != [p.id for p in other]
    assert [pairs.index(p) for p in first] == sorted(pairs.index(p) for p in first)  # input order kept


def test_small_source_goes_to_train_and_bare_paths_keep_row_sources(data, tmp_path):
    summary = mix(data, tmp_path / "m", inputs=inputs(data, hh=True), test_size=0.2)
    hh = summary["sources"]["hh"]
    assert (hh["read"], hh["train"], hh["test"]) == (1, 1, 0)
    assert summary["notes"] == ["source 'hh' is too small for a test row at test_size 0.2: all its pairs are in train"]
    # test_size 0: everything in train, an empty but loadable test split, no notes.
    from datasets import load_from_disk

    summary = mix(data, tmp_path / "z", test_size=0)
    assert summary["splits"]["test"] == 0 and summary["notes"] == []
    assert len(load_from_disk(str(tmp_path / "z" / "test" / "hf"))) == 0


def test_parse_input():
    assert parse_input("human=labels/x.jsonl").model_dump() == {"source": "human", "path": "labels/x.jsonl"}
    assert parse_input("labels/a=b.jsonl").model_dump() == {"source": None, "path": "labels/a=b.jsonl"}
    assert parse_input("plain.jsonl").source is None
    with pytest.raises(CaiError, match="expected SRC=PATH"):
        parse_input("human=")


def _snapshot(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_cli_mix_and_errors(data, tmp_path, capsys):
    out = tmp_path / "mix"
    (tmp_path / "mine.txt").write_text("not ours")
    args = ["mix", *sum((["--input", i] for i in inputs(data)), []), "--out", str(out)]
    assert main([*args, "--weight", "human=3", "--cap", "ai-feedback=20", "--seed", "4", "--test-size", "0.2"]) == 0
    printed = capsys.readouterr().out
    assert "human vs AI on" in printed and "disagree 3" in printed
    saved = json.loads((out / "mix.json").read_text())
    assert saved["weights"] == {"human": 3.0} and saved["caps"] == {"ai-feedback": 20} and saved["seed"] == 4
    before = _snapshot(out)

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ai_feedback(0).row()) + "\n" + json.dumps({"prompt": "x", "chosen": 3, "rejected": "y"}) + "\n")
    cases = [
        (["--weight", "humans=1"], "--weight humans: no input has source 'humans'"),
        (["--cap", "ai-feedbak=3"], "--cap ai-feedbak: no input has source 'ai-feedbak'"),
        (["--weight", "human=-1"], "--weight human=-1: a weight must be >= 0"),
        (["--cap", "human=lots"], "--cap human=lots: not a valid int"),
        (["--cap", "human=-2"], "--cap human=-2: a cap must be >= 0"),
        (["--input", f"human={tmp_path / 'missing'}"], f"--input human={tmp_path / 'missing'}: no such file or folder"),
        (["--input", f"ai-feedback={bad}"], f"{bad}:2: 'chosen' must be a string"),
        (["--test-size", "1.5"], "test_size"),
    ]
    for extra, message in cases:
        assert main([*args, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.strip().count("\n") == 0, err
    assert main([*args, "--human-policy", "merge"]) == 2  # the flag's choices are the field's Literal
    assert "Invalid value for '--human-policy': Value error, 'merge' is not one of 'replace', 'join'" in \
        capsys.readouterr().err
    assert _snapshot(out) == before  # nothing in OUT changed
    assert (tmp_path / "mine.txt").read_text() == "not ours"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mix.")]  # no staging folders left
    assert main(["mix", "--out", str(out)]) == 2 and "inputs" in capsys.readouterr().err


def test_cli_config_file(data, tmp_path, capsys):
    cfg = tmp_path / "mix.yaml"
    cfg.write_text(
        "inputs:\n"
        f"  ai-revision: {data / 'run'}\n"
        f"  ai-feedback: [{data / 'feedback'}]\n"
        f"  human: {data / 'humans'}\n"
        f"out: {tmp_path / 'from-file'}\n"
        "weights: {ai-feedback: 0.25}\n"
        "human_policy: join\n"
        "test_size: 0.5\n")
    assert main(["mix", "--config", str(cfg), "--test-size", "0.1", "--weight", "human=4"]) == 0
    saved = json.loads((tmp_path / "from-file" / "mix.json").read_text())
    assert saved["human_policy"] == "join" and saved["test_size"] == 0.1
    assert saved["weights"] == {"ai-feedback": 0.25, "human": 4.0}  # flags add to the file's mapping


@pytest.mark.train
@pytest.mark.slow
def test_reward_trainer_reads_the_mix_unchanged(replaced, tiny_llama, tmp_path):
    pytest.importorskip("trl")
    from datasets import load_from_disk
    from trl import RewardConfig, RewardTrainer

    _, out = replaced
    ds = load_from_disk(str(out / "train" / "hf"))
    args = RewardConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, use_cpu=True,
                        bf16=False, report_to=[], save_strategy="no", logging_steps=1, max_length=128)
    result = RewardTrainer(model=str(tiny_llama), args=args, train_dataset=ds).train()
    assert result.global_step == 1 and result.training_loss == result.training_loss


def test_repeated_prompt_spelling_joins_and_empty_responses_are_counted(tmp_path):
    """Human labels spelled with the prompt repeated inside chosen/rejected (and a raw HH file) join
    the AI labels of the same pairs; pairs with an empty response are dropped and counted."""
    fb = [ai_feedback(i) for i in range(3)]
    write_pairs(fb, tmp_path / "feedback")
    spelled = []
    for pair in fb[:2]:  # the human agrees with the AI on both, spelled TRL-style with the prompt repeated
        prompt = [m.model_dump() for m in pair.prompt]
        spelled.append({"prompt": prompt, "chosen": prompt + [m.model_dump() for m in pair.chosen],
                     "rejected": prompt + [m.model_dump() for m in pair.rejected]})
    spelled.append({"prompt": "Feedback prompt 2", "chosen": " ", "rejected": "Answer B 2"})
    (tmp_path / "human.jsonl").write_text("".join(json.dumps(r) + "\n" for r in spelled))
    hh = {"chosen": "\n\nHuman: Feedback prompt 2\n\nAssistant: Answer A 2",
          "rejected": "\n\nHuman: Feedback prompt 2\n\nAssistant: Answer B 2"}
    (tmp_path / "hh.jsonl").write_text(json.dumps(hh) + "\n")
    summary = run_mix(MixConfig(out=str(tmp_path / "mix"), test_size=0, human_sources=["human", "hh"],
                                inputs=[f"ai-feedback={tmp_path / 'feedback'}", f"human={tmp_path / 'human.jsonl'}",
                                        f"hh={tmp_path / 'hh.jsonl'}"]))
    assert summary["human_vs_ai"]["overlap"] == 3 and summary["human_vs_ai"]["agree"] == 3
    assert summary["sources"]["ai-feedback"]["replaced_by_human"] == 3
    assert summary["prompt_repeated"] == 2 and summary["dropped"] == {"empty_response": 1}
    assert summary["inputs"][1]["empty_response"] == 1 and summary["inputs"][1]["prompt_repeated"] == 2
    assert all(not p.empty_response for p in rows(tmp_path / "mix" / "train"))



def test_source_weight_multiplies_row_weights(tmp_path):
    """A human pair aggregated from 3 raters (weight 3) keeps that information under --weight."""
    three = PreferencePair(prompt=msg("user", "Which?"), chosen=msg("assistant", "This one"),
                           rejected=msg("assistant", "That one"), source="human", weight=3.0, p_chosen=2 / 3)
    one = PreferencePair(prompt=msg("user", "Other?"), chosen=msg("assistant", "Yes"),
                         rejected=msg("assistant", "No"), source="human")
    write_pairs([three, one], tmp_path / "humans")
    run_mix(MixConfig(out=str(tmp_path / "mix"), inputs=[f"human={tmp_path / 'humans'}"], weights={"human": 2.0},
                      test_size=0.0))
    got = sorted(p.weight for p in read_pairs(tmp_path / "mix" / "train"))
    assert got == [2.0, 6.0]
