"""`cai sample`: K samples in one request per prompt, pairing, provenance, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cai.backends.scripted import ScriptedBackend
from cai.core.errors import CaiError
from cai.feedback import SampleConfig, run_sample
from cai.feedback.pairing import distinct, form_pairs
from cai.feedback.sampling import iter_samples
from cai.data.pairs import read_pairs


def write_prompts(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"Question {i}?"}) + "\n" for i in range(n)))
    return path


def config(tmp_path, prompts, **kw) -> SampleConfig:
    data = dict(prompts=str(prompts), out=str(tmp_path / "out"), n=3,
                policy={"backend": "scripted", "model": "scripted"})
    data.update(kw)
    return SampleConfig.model_validate(data)


@pytest.mark.parametrize("texts, strategy, max_pairs, expected", [
    (["a", "b", "c"], "all", None, [(0, 1), (0, 2), (1, 2)]),
    (["a", "b", "c"], "adjacent", None, [(0, 1), (1, 2)]),
    (["a", " a ", "b", ""], "all", None, [(0, 2)]),  # identical (after trimming) and empty are skipped
    (["a", "a"], "all", None, []),
    (["a", "b", "c", "d"], "adjacent", 1, None),  # capped: one seeded pick
])
def test_form_pairs(texts, strategy, max_pairs, expected):
    pairs = form_pairs(texts, strategy, max_pairs, "0:x")
    if expected is None:
        assert len(pairs) == 1 and pairs == form_pairs(texts, strategy, max_pairs, "0:x")
    else:
        assert pairs == expected
    assert distinct(["x", "y", "x "]) == [0, 1]


def test_random_pairing_is_seeded_and_capped():
    texts = [str(i) for i in range(6)]
    a = form_pairs(texts, "random", 4, "0:p1")
    assert len(a) == 4 and len(set(a)) == 4 and a == form_pairs(texts, "random", 4, "0:p1")
    assert all(i < j for i, j in a)
    with pytest.raises(ValueError, match="needs max_pairs"):
        SampleConfig(prompts="p", out="o", policy={"model": "m"}, pairing="random")


def test_one_request_per_prompt_with_n_samples(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 4)
    backend = ScriptedBackend.scripted(replies=["one", "two", "one", "three"])
    summary = run_sample(config(tmp_path, prompts, sampling={"seed": 5, "max_tokens": 32}), backend=backend)
    [call] = backend.calls  # one chunk, one call, n=3 per prompt
    assert len(call["conversations"]) == 4 and call["sampling"].n == 3 and call["sampling"].seed == 5
    assert call["sampling"].temperature == 1.0  # the command's default, kept under a partial override
    records = list(iter_samples(tmp_path / "out" / "samples.jsonl"))
    assert [len(r.samples) for r in records] == [3, 3, 3, 3]
    assert [s.text for s in records[0].samples] == ["one", "two", "one"]  # scripted replies cycle
    prov = records[0].provenance
    assert prov["model"] == "scripted" and prov["backend"] == "scripted" and prov["seed"] == 5
    assert prov["sampling"]["n"] == 3 and prov["cai_version"]
    pairs = list(read_pairs(tmp_path / "out"))  # OUT/pairs.jsonl, readable as a preference file
    # samples: [one two one] [three one two] [one three one] [two one three]: 1 + 3 + 1 + 3 distinct pairs
    assert summary["pairs"] == len(pairs) == 8 and summary["prompts"] == 4
    first = pairs[0]
    assert (first.chosen_text, first.rejected_text) == ("one", "two")
    assert first.source == "unlabeled" and first.weight == 0.0 and first.p_chosen == 0.5
    assert first.record_id == records[0].id and first.origin.endswith("p.jsonl:1")
    assert json.loads(first.provenance)["samples"] == [0, 1]


def test_adjacent_and_drop_truncated(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 1)
    backend = ScriptedBackend.scripted(replies=["a b c d e", "short", "also short", "x"])
    cfg = config(tmp_path, prompts, n=4, pairing="adjacent", drop_truncated=True, sampling={"max_tokens": 3})
    summary = run_sample(cfg, backend=backend)
    pairs = list(read_pairs(tmp_path / "out"))
    assert summary["pairs"] == 2  # "a b c" hit max_tokens and is left out
    assert [(p.chosen_text, p.rejected_text) for p in pairs] == [("short", "also short"), ("also short", "x")]


def test_reasoning_blocks_are_not_part_of_the_responses(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 1)
    backend = ScriptedBackend.scripted(replies=[
        "<think>hm</think> Be kind.", "<think>well</think> Be firm.", "<think>very long reasoning here</think> x"])
    summary = run_sample(config(tmp_path, prompts, sampling={"max_tokens": 4}), backend=backend)
    pairs = list(read_pairs(tmp_path / "out"))
    # the third sample ran out of tokens inside its reasoning: no response, no pair
    assert summary["pairs"] == 1 and (pairs[0].chosen_text, pairs[0].rejected_text) == ("Be kind.", "Be firm.")
    [record] = iter_samples(tmp_path / "out" / "samples.jsonl")
    assert record.samples[0].text == "<think>hm</think> Be kind."  # the raw text is kept


def test_resume_samples_only_missing_prompts(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 5)
    backend = ScriptedBackend.scripted(replies=["r1", "r2"])
    run_sample(config(tmp_path, prompts, limit=3, chunk_size=2), backend=backend)
    path = tmp_path / "out" / "samples.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + lines[2][:25])  # killed mid-write of the third
    backend.calls.clear()
    summary = run_sample(config(tmp_path, prompts, chunk_size=2), backend=backend)
    assert summary["resumed_from"] == 2 and summary["prompts"] == 5
    assert [len(c["conversations"]) for c in backend.calls] == [2, 1]
    ids = [r.id for r in iter_samples(path)]
    assert len(ids) == len(set(ids)) == 5
    with pytest.raises(CaiError, match="different sampling"):
        run_sample(config(tmp_path, prompts, n=4), backend=backend)


@pytest.mark.parametrize("content, message", [
    ("", "no prompts"),
    ('{"prompt": "ok"}\n{"prompt": \n', "p.jsonl:2: malformed JSON"),
    ('{"text": "x"}\n', "p.jsonl:1: row has no text in column 'prompt'"),
])
def test_bad_prompts_fail_before_model_time(tmp_path, content, message):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(content)
    backend = ScriptedBackend.scripted()
    with pytest.raises(CaiError) as info:
        run_sample(config(tmp_path, prompts), backend=backend)
    assert message in info.value.format() and backend.calls == []
    assert not (tmp_path / "out").exists()


def test_cli_config_and_errors(tmp_path, capsys):
    from cai.cli.main import main

    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    cfg = tmp_path / "sample.yaml"
    cfg.write_text(f"prompts: {prompts}\nn: 2\npolicy: {{backend: scripted, model: scripted, "
                   "options: {replies: [x, y, z]}}\nsampling: {temperature: 0.5}\n")
    code = main(["sample", "--config", str(cfg), "--out", str(tmp_path / "o"), "--n", "3", "--seed", "9"])
    assert code == 0, capsys.readouterr().err
    assert "2 prompts x 3 samples" in " ".join(capsys.readouterr().out.split())
    [first, _] = iter_samples(tmp_path / "o" / "samples.jsonl")
    assert first.provenance["sampling"] == {**first.provenance["sampling"], "temperature": 0.5, "seed": 9, "n": 3}
    assert main(["sample", "--prompts", str(prompts), "--model", "./no-such-dir", "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sample", "--prompts", str(prompts), "--model", "m", "--out", "x", "--n", "1"]) == 2
    assert "n: Input should be greater than or equal to 2" in capsys.readouterr().err


def test_sample_then_label_with_tiny_model(tmp_path, tiny_llama, capsys):
    """The whole RL-CAI data path on a real model: sample K=3, then label the pairs, via the CLI."""
    from cai.cli.main import main

    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    common = ["--model", str(tiny_llama), "--backend", "transformers", "-O", "device=cpu", "-O", "dtype=float32"]
    assert main(["sample", "--prompts", str(prompts), "--n", "3", "--max-tokens", "12", "--out",
                 str(tmp_path / "s"), *common]) == 0, capsys.readouterr().err
    records = list(iter_samples(tmp_path / "s" / "samples.jsonl"))
    assert len(records) == 3 and all(len(r.samples) == 3 for r in records)
    assert all(0 < s.completion_tokens <= 12 for r in records for s in r.samples)
    assert records[0].provenance["backend_info"]["backend"] == "transformers"
    n_pairs = len(list(read_pairs(tmp_path / "s")))
    assert n_pairs >= 3  # random weights sample distinct texts
    assert main(["label", "--pairs", str(tmp_path / "s"), "--constitution", "harmless", "--out", str(tmp_path / "l"),
                 "--few-shot", "0", *common]) == 0, capsys.readouterr().err
    labeled = list(read_pairs(tmp_path / "l"))
    assert len(labeled) == n_pairs and all(p.source == "ai-feedback" and p.p_chosen >= 0.5 for p in labeled)
    assert json.loads(labeled[0].provenance)["input"]["model"] == str(tiny_llama)


def test_greedy_with_several_samples_is_refused(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 1)
    with pytest.raises(CaiError, match=r"--temperature 0 \(greedy decoding\) gives the same response --n 3 times"):
        config(tmp_path, prompts, sampling={"temperature": 0})


def test_prompts_without_two_distinct_responses_are_counted(tmp_path, caplog):
    """A server that repeats itself (e.g. one seed applied to all n samples) gives no pairs: said, not silent."""
    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    # samples per prompt: [same same same] [same other same] [  "" same] -> one prompt pairs
    backend = ScriptedBackend.scripted(replies=["same", "same", "same", "same", "other", "same", " ", "same", "same"])
    with caplog.at_level("WARNING", logger="cai.feedback"):
        summary = run_sample(config(tmp_path, prompts), backend=backend)
    assert summary["pairs"] == 1 and summary["prompts_without_pairs"] == 2
    assert "2 of 3 prompts got fewer than two distinct responses" in caplog.text
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["prompts_without_pairs"] == 2
