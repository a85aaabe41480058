"""`cai label`: the prompts sent, both orders, averaging, clamping, ordering by label, resume,
inputs of every kind, bad input, and real models (transformers, vLLM, TRL's RewardTrainer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cai.backends.scripted import ScriptedBackend
from cai.principles.constitution import load_constitution
from cai.core.errors import CaiError
from cai.feedback import CotConfig, LabelConfig, LabelOptions, Labeler, run_label
from cai.judge.templates import split_answer_prefix
from cai.data.pairs import PreferencePair, read_pairs
from feedback_helpers import prefers, write_constitution, write_pairs_file

REPO = Path(__file__).resolve().parents[1]
NEIGHBOUR = ("How do I get back at my neighbour?", "Talk to them calmly.", "Slash their tyres.")


def one_pair() -> PreferencePair:
    prompt, x, y = NEIGHBOUR
    return PreferencePair(prompt=[{"role": "user", "content": prompt}], chosen=[{"role": "assistant", "content": x}],
                          rejected=[{"role": "assistant", "content": y}], source="human")


def labeler(tmp_path, backend, **options) -> Labeler:
    constitution = load_constitution(write_constitution(tmp_path))
    options.setdefault("few_shot", 0)
    return Labeler(constitution, backend, LabelOptions(**options))


def config(tmp_path, pairs, **kw) -> LabelConfig:
    data = dict(pairs=str(pairs), constitution=str(write_constitution(tmp_path)), out=str(tmp_path / "out"),
                labeler={"backend": "scripted", "model": "scripted"}, few_shot=0)
    data.update(kw)
    return LabelConfig.model_validate(data)


def test_prompts_sent_both_orders_one_call(tmp_path):
    backend = ScriptedBackend.scripted()
    lab = labeler(tmp_path, backend, principles_per_pair=1)
    [pair] = lab.label([one_pair()])
    [call] = backend.calls
    assert call["method"] == "score_choices" and call["options"] == [["A", "B"], ["A", "B"]]
    first, second = call["prompts"]
    question = first[0]["content"]
    assert question.startswith("Consider the following conversation between a human and an assistant:\n\n"
                               "User: How do I get back at my neighbour?\n\n")
    principle = pair.principle_ids[0].split("@")[0]
    assert {"kind": "Which response is kinder?", "honest": "Which response is more honest?"}[principle] in question
    assert question.endswith("Options:\n(A) Talk to them calmly.\n(B) Slash their tyres.")
    assert second[0]["content"].endswith("Options:\n(A) Slash their tyres.\n(B) Talk to them calmly.")
    # The answer line is the start of the assistant's turn: the label is the next token.
    assert first[1] == {"role": "assistant", "content": "The answer is: ("} and len(first) == 2


def test_averaging_orientation_and_consistency(tmp_path):
    # order 0 shows x as (A): P(x)=0.8; order 1 shows x as (B): P(x)=0.6 -> 0.7, consistent.
    backend = ScriptedBackend.scripted(choices=[{"A": 0.8, "B": 0.2}, {"A": 0.4, "B": 0.6}])
    [pair] = labeler(tmp_path, backend, principles_per_pair=1).label([one_pair()], "m")
    assert pair.chosen_text == "Talk to them calmly." and pair.p_chosen == pytest.approx(0.7)
    [s] = pair.scores
    assert (s.p, s.p_first, s.p_second) == pytest.approx((0.7, 0.8, 0.6))
    assert pair.position_consistent is True and pair.source == "ai-feedback" and pair.labeler == "m"
    # order 0: P(x)=0.3, order 1: P(x)=0.6 -> 0.45: y is chosen with 0.55; orders disagree.
    backend = ScriptedBackend.scripted(choices=[{"A": 0.3, "B": 0.7}, {"A": 0.4, "B": 0.6}])
    [pair] = labeler(tmp_path, backend, principles_per_pair=1).label([one_pair()])
    assert pair.chosen_text == "Slash their tyres." and pair.p_chosen == pytest.approx(0.55)
    [s] = pair.scores
    # chosen (y) was (A) in order 1 where P(y)=0.4, and (B) in order 0 where P(y)=0.7
    assert (s.p, s.p_first, s.p_second) == pytest.approx((0.55, 0.4, 0.7))
    assert pair.position_consistent is False
    assert pair.id == one_pair().id  # the id does not depend on which response won


def test_principle_ensemble_keeps_each_score(tmp_path):
    # 'all' principles (kind, honest) x 2 orders = 4 comparisons in one call
    backend = ScriptedBackend.scripted(choices=[{"A": 0.9, "B": 0.1}, {"A": 0.1, "B": 0.9},
                                                {"A": 0.6, "B": 0.4}, {"A": 0.6, "B": 0.4}])
    [pair] = labeler(tmp_path, backend, principles_per_pair="all").label([one_pair()])
    assert len(backend.calls) == 1 and len(backend.calls[0]["prompts"]) == 4
    assert pair.principle_ids == ["honest@2.0.0", "kind@1.2.0"]
    by = {s.principle: s for s in pair.scores}
    assert by["honest@2.0.0"].p == pytest.approx(0.9)
    assert by["kind@1.2.0"].p == pytest.approx(0.5) and by["kind@1.2.0"].p_first == pytest.approx(0.6)
    assert pair.p_chosen == pytest.approx(0.7)


def test_principle_picks_are_seeded_by_pair(tmp_path):
    backend = ScriptedBackend.scripted()
    lab = labeler(tmp_path, backend, principles_per_pair=1)
    pairs = [PreferencePair(prompt=[{"role": "user", "content": f"q{i}"}], chosen=[{"role": "assistant", "content": "a"}],
                            rejected=[{"role": "assistant", "content": "b"}], source="human") for i in range(12)]
    first = [p.principle_ids for p in lab.label(pairs)]
    assert first == [p.principle_ids for p in lab.label(pairs)]
    assert {tuple(ids) for ids in first} == {("kind@1.2.0",), ("honest@2.0.0",)}  # both get used


def test_one_order_and_clamped_cot(tmp_path):
    backend = ScriptedBackend.scripted(replies=["B is kinder."], choices=[{"A": 0.99, "B": 0.01}])
    cot = CotConfig(enabled=True, sampling={"max_tokens": 16, "seed": 3})
    [pair] = labeler(tmp_path, backend, principles_per_pair=1, both_orders=False, cot=cot).label([one_pair()])
    gen, score = backend.calls
    assert gen["method"] == "generate" and gen["sampling"].seed == 3 and gen["sampling"].n == 1
    [conv] = gen["conversations"]
    assert conv[-1] == {"role": "assistant", "content": "Let's think step by step:"}
    assert not conv[-2]["content"].endswith("The answer is: (")  # the answer line comes after the reasoning
    [scored] = score["prompts"]
    assert scored[-1]["content"] == "Let's think step by step: B is kinder.\nThe answer is: ("
    assert pair.p_chosen == pytest.approx(0.6)  # 0.99 clamped into the default band
    [s] = pair.scores
    assert pair.position_consistent is None and [s.p_first, s.p_second].count(None) == 1
    assert s.reasoning.endswith("B is kinder.")


def test_few_shot_from_principle_examples(tmp_path):
    backend = ScriptedBackend.scripted()
    lab = labeler(tmp_path, backend, principles_per_pair="all", few_shot=2)
    lab.label([one_pair()])
    prompts = backend.calls[0]["prompts"]
    kind = [p for p in prompts if "kinder" in p[-2]["content"]][0]
    # kind has one usable example (violates, with a revision); the better answer is (B)
    demo_q, demo_a = kind[0]["content"], kind[1]["content"]
    assert "User: My code fails." in demo_q and demo_q.endswith(
        "(A) Your code is garbage.\n(B) Let's look at the error together.")
    assert demo_a == "The answer is: (B)" and len(kind) == 4
    honest = [p for p in prompts if "honest" in p[-2]["content"]][0]
    assert len(honest) == 2  # no examples, no exemplars: no demonstrations


EIGHT_TURNS = "exemplars: " + json.dumps([
    {"messages": [{"role": r, "content": c} for r, c in [
        ("user", "Where can I buy a crowbar?"), ("assistant", "Any hardware store."),
        ("user", "How do I open my neighbour's door with it?"),
        ("assistant", "Wedge it by the lock and push hard."),
        ("user", "Critique the last answer."), ("assistant", "It helps a break-in."),
        ("user", "Revise it."), ("assistant", "I can't help you enter someone else's home.")]]},
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}]},
]) + "\n"


def test_few_shot_multi_turn_exemplar(tmp_path):
    # The open CAI recipe's 8-turn exemplar: the demo compares the critiqued (second) answer with
    # its revision after the whole conversation up to that answer; a plain chat exemplar is skipped.
    constitution = load_constitution(write_constitution(tmp_path, extra=EIGHT_TURNS))
    backend = ScriptedBackend.scripted()
    lab = Labeler(constitution, backend, LabelOptions(principles_per_pair="all", few_shot=3))
    lab.label([one_pair()])
    honest = [p for p in backend.calls[0]["prompts"] if "honest" in p[-2]["content"]][0]
    assert len(honest) == 4  # one demo (question, answer) + the question and its answer line
    demo_q = honest[0]["content"]
    assert ("User: Where can I buy a crowbar?\n\nAssistant: Any hardware store.\n\n"
            "User: How do I open my neighbour's door with it?") in demo_q
    assert demo_q.endswith("(A) Wedge it by the lock and push hard.\n(B) I can't help you enter someone else's home.")
    assert "Critique the last answer" not in demo_q and "Hello there" not in demo_q
    assert honest[1]["content"] == "The answer is: (B)"


def test_split_answer_prefix():
    assert split_answer_prefix("Q?\n\nThe answer is: (") == ("Q?", "The answer is: (")
    assert split_answer_prefix("Q?\nAnswer with A or B.") == ("Q?\nAnswer with A or B.", None)
    assert split_answer_prefix("(") == ("(", None)


def test_run_writes_dataset_ordered_by_label(tmp_path):
    pairs = write_pairs_file(tmp_path / "p.jsonl", [
        ("Help me", "You are an idiot.", "Happy to help, kindly."),  # the human label is ignored
        ("Help me again", "Sure, kindly.", "Go away."),
        ("Help me again", "Go away.", "Sure, kindly."),  # the same pair swapped: a duplicate
        ("Same", "x", "x"),  # identical responses: nothing to compare
    ])
    backend = ScriptedBackend.scripted(score=prefers("kindly"))
    summary = run_label(config(tmp_path, pairs, principles_per_pair="all"), backend=backend)
    assert summary["pairs"] == 2 and summary["skipped"] == {"duplicate": 1, "identical": 1, "invalid": 0,
                                                               "empty_response": 0}
    assert summary["position_consistency"] == 1.0 and summary["mean_margin"] == pytest.approx(0.4)
    assert summary["per_principle"] == {"honest@2.0.0": 2, "kind@1.2.0": 2}
    assert len(backend.calls) == 1 and len(backend.calls[0]["prompts"]) == 8  # 2 pairs x 2 principles x 2 orders
    out = list(read_pairs(tmp_path / "out"))
    assert [p.chosen_text for p in out] == ["Happy to help, kindly.", "Sure, kindly."]
    assert all(p.p_chosen == pytest.approx(0.9) and p.source == "ai-feedback" for p in out)
    prov = json.loads(out[0].provenance)
    assert prov["constitution"] == "tiny@0.1.0" and prov["model"] == "scripted" and prov["cai_version"]
    assert out[0].constitution_hash == prov["constitution_hash"] and prov["few_shot"] == 0
    assert (tmp_path / "out" / "data.parquet").exists() and (tmp_path / "out" / "hf").is_dir()
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["pairs"] == 2


class Dies(ScriptedBackend):
    """Scores ``calls_left`` chunks, then fails like a killed process."""

    calls_left = 1

    def score_choices(self, prompts, options):
        if self.calls_left == 0:
            raise KeyboardInterrupt
        self.calls_left -= 1
        return super().score_choices(prompts, options)


def test_resume_after_interrupted_run(tmp_path):
    pairs = write_pairs_file(tmp_path / "p.jsonl", [(f"q{i}", f"kindly {i}", f"rude {i}") for i in range(5)])
    cfg = config(tmp_path, pairs, chunk_size=2)
    dying = Dies.scripted(score=prefers("kindly"))
    with pytest.raises(KeyboardInterrupt):
        run_label(cfg, backend=dying)
    labels = tmp_path / "out" / "labels.jsonl"
    assert len(labels.read_text().splitlines()) == 2  # the finished chunk survived
    with open(labels, "a") as fh:
        fh.write('{"id": "torn-wri')  # killed in the middle of a write
    backend = ScriptedBackend.scripted(score=prefers("kindly"))
    summary = run_label(cfg, backend=backend)
    assert summary["resumed_from"] == 2 and summary["pairs"] == 5
    assert [len(c["prompts"]) for c in backend.calls] == [8, 4]  # only the 3 missing pairs (x 2 principles x 2 orders)
    ids = [p.id for p in read_pairs(tmp_path / "out")]
    assert len(ids) == len(set(ids)) == 5
    with pytest.raises(CaiError, match="different options"):
        run_label(config(tmp_path, pairs, both_orders=False), backend=backend)


def test_sl_run_folder_is_draft_vs_final(tmp_path):
    from cai.sl import GenerateConfig, run_generate
    from sl_helpers import EchoCritic
    from test_generate import write_prompts

    prompts = write_prompts(tmp_path / "prompts.jsonl", 3)
    echo = EchoCritic()
    run_generate(GenerateConfig(constitution=str(REPO / "constitution" / "harmless.yaml"), prompts=str(prompts),
                                out=str(tmp_path / "sl"), policy={"backend": "transformers", "model": "echo"},
                                export=False), backends=(echo, echo))
    backend = ScriptedBackend.scripted(score=prefers("Draft"))  # this judge likes the drafts
    summary = run_label(config(tmp_path, tmp_path / "sl"), backend=backend)
    assert summary["pairs"] == 3
    for pair in read_pairs(tmp_path / "out"):
        assert pair.chosen_text.startswith("Draft answer") and pair.rejected_text.startswith("A kinder answer")
        assert pair.record_id and json.loads(pair.provenance)["input"]["policy_model"] == "echo"


def test_sample_output_is_accepted(tmp_path):
    from cai.feedback import SampleConfig, run_sample

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Say something"}\n')
    policy = ScriptedBackend.scripted(replies=["kindly one", "rude two", "kindly three"])
    run_sample(SampleConfig(prompts=str(prompts), out=str(tmp_path / "s"), n=3,
                            policy={"backend": "scripted", "model": "scripted"}), backend=policy)
    summary = run_label(config(tmp_path, tmp_path / "s"), backend=ScriptedBackend.scripted(score=prefers("kindly")))
    assert summary["pairs"] == 3
    labeled = list(read_pairs(tmp_path / "out"))
    assert all(p.chosen_text.startswith("kindly") for p in labeled)
    tie = next(p for p in labeled if p.rejected_text.startswith("kindly"))  # the judge always picks (A)
    assert tie.p_chosen == pytest.approx(0.5) and tie.position_consistent is False
    assert json.loads(labeled[0].provenance)["input"]["samples"] == [0, 1]


@pytest.mark.parametrize("content, message", [
    ('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{oops\n', "p.jsonl:2: invalid JSON"),
    ('{"prompt": "a", "chosen": "b"}\n', "p.jsonl:1: missing column(s) rejected"),
    ('{"prompt": "a", "chosen": "", "rejected": "c"}\n', "'empty_response': 1"),  # dropped, counted
    ('{"prompt": [], "chosen": "b", "rejected": "c"}\n', "p.jsonl:1: the prompt has no user message"),
    ('{"prompt": "a", "chosen": "b", "rejected": "b"}\n', "no pairs to label"),
])
def test_bad_input_fails_before_model_time(tmp_path, content, message):
    pairs = tmp_path / "p.jsonl"
    pairs.write_text(content)
    backend = ScriptedBackend.scripted()
    with pytest.raises(CaiError) as info:
        run_label(config(tmp_path, pairs), backend=backend)
    assert message in info.value.format() and backend.calls == []
    assert not (tmp_path / "out" / "labels.jsonl").exists()


def test_constitution_must_drive_feedback(tmp_path):
    pairs = write_pairs_file(tmp_path / "p.jsonl", [NEIGHBOUR])
    cfg = config(tmp_path, pairs)
    (tmp_path / "principles" / "polite.md").write_text(
        "---\nid: polite\nversion: 1.0.0\ntitle: Polite\ntags: [harmless]\n---\n"
        "## Critique\nIs it rude?\n\n## Revision\nMake it polite.\n")
    path = tmp_path / "constitution" / "tiny.yaml"
    for stages, message in (("[revision]", "does not drive the 'feedback' stage"),
                            ("[feedback]", "has no principle with a '## Preference' section")):
        path.write_text(f"name: tiny\nversion: 0.1.0\nprinciples:\n  ids: [polite]\nstages: {stages}\n")
        with pytest.raises(CaiError, match=message):
            run_label(cfg, backend=ScriptedBackend.scripted())


def test_cli_errors_are_one_line(tmp_path, capsys):
    from cai.cli.main import main

    pairs = write_pairs_file(tmp_path / "p.jsonl", [NEIGHBOUR])
    base = ["label", "--pairs", str(pairs), "--constitution", str(write_constitution(tmp_path)), "--out", str(tmp_path / "o")]
    assert main(base + ["--model", "./no-such-model-dir"]) == 2 and "does not exist" in capsys.readouterr().err
    assert main(base + ["--model", "m", "--clamp", "x"]) == 2 and "--clamp expects" in capsys.readouterr().err
    assert main(base + ["--model", "m", "--principles-per-pair", "many"]) == 2
    assert "principles_per_pair" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text("{nope\n")
    assert main(["label", "--pairs", str(tmp_path / "bad.jsonl")] + base[3:] + ["--model", "m", "--backend", "scripted"]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:1: invalid JSON" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------- real models


def test_cli_end_to_end_tiny_model(tmp_path, tiny_llama, capsys):
    """`cai label` through the CLI with the transformers backend on the tiny model."""
    from cai.cli.main import main

    pairs = write_pairs_file(tmp_path / "p.jsonl", [NEIGHBOUR, ("Write a poem", "Roses are red.", "No.")])
    cfg = tmp_path / "label.yaml"
    cfg.write_text("few_shot: 0\nlabeler: {options: {device: cpu}, dtype: float32, max_model_len: 512}\n")
    code = main(["label", "--pairs", str(pairs), "--constitution", str(REPO / "constitution" / "harmless.yaml"),
                 "--model", str(tiny_llama), "--backend", "transformers", "--out", str(tmp_path / "out"),
                 "--principles-per-pair", "2", "--config", str(cfg)])
    assert code == 0, capsys.readouterr().err
    assert "position consistency" in " ".join(capsys.readouterr().out.split())
    labeled = list(read_pairs(tmp_path / "out"))
    assert len(labeled) == 2
    for pair in labeled:
        assert 0.5 <= pair.p_chosen <= 1.0 and len(pair.scores) == 2 and pair.labeler == str(tiny_llama)
        for s in pair.scores:
            assert 0.0 < s.p_first < 1.0 and 0.0 < s.p_second < 1.0
            assert s.p == pytest.approx((s.p_first + s.p_second) / 2)
        assert pair.p_chosen == pytest.approx(sum(s.p for s in pair.scores) / 2)
        assert pair.position_consistent == ((pair.scores[0].p_first + pair.scores[1].p_first - 1)
                                            * (pair.scores[0].p_second + pair.scores[1].p_second - 1) > 0)
    assert json.loads(labeled[0].provenance)["backend_info"]["backend"] == "transformers"


def test_cot_with_tiny_model(tmp_path, hf_backend):
    pairs = write_pairs_file(tmp_path / "p.jsonl", [NEIGHBOUR])
    cfg = config(tmp_path, pairs, cot={"enabled": True, "sampling": {"max_tokens": 8}})
    run_label(cfg, backend=hf_backend)
    [pair] = read_pairs(tmp_path / "out")
    assert 0.5 <= pair.p_chosen <= 0.6 and pair.scores[0].reasoning
    assert json.loads(pair.provenance)["cot"]["sampling"]["max_tokens"] == 8


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_labels_match_transformers(tmp_path, vllm_backend, hf_backend):
    pairs = write_pairs_file(tmp_path / "p.jsonl", [NEIGHBOUR, ("Write a poem", "Roses are red.", "No.")])
    run_label(config(tmp_path, pairs, principles_per_pair="all", out=str(tmp_path / "v")), backend=vllm_backend)
    run_label(config(tmp_path, pairs, principles_per_pair="all", out=str(tmp_path / "t")), backend=hf_backend)
    v, t = list(read_pairs(tmp_path / "v")), list(read_pairs(tmp_path / "t"))
    assert [p.id for p in v] == [p.id for p in t]
    for a, b in zip(v, t):
        assert a.chosen_text == b.chosen_text and a.p_chosen == pytest.approx(b.p_chosen, abs=1e-3)
        assert json.loads(a.provenance)["backend_info"]["backend"] == "vllm"


@pytest.mark.train
@pytest.mark.slow
def test_reward_trainer_on_label_output(tmp_path, tiny_llama):
    """TRL's RewardTrainer trains one step on a `cai label` output, unchanged."""
    pytest.importorskip("trl")
    from datasets import load_from_disk
    from trl import RewardConfig, RewardTrainer

    pairs = write_pairs_file(tmp_path / "p.jsonl", [(f"q{i}", f"kindly {i}", f"rude {i}") for i in range(4)])
    run_label(config(tmp_path, pairs), backend=ScriptedBackend.scripted(score=prefers("kindly")))
    ds = load_from_disk(str(tmp_path / "out" / "hf"))
    args = RewardConfig(output_dir=str(tmp_path / "rm"), max_steps=1, per_device_train_batch_size=2, use_cpu=True,
                        bf16=False, report_to=[], save_strategy="no", logging_steps=1, max_length=256)
    result = RewardTrainer(model=str(tiny_llama), args=args, train_dataset=ds).train()
    assert result.global_step == 1 and result.training_loss == result.training_loss
