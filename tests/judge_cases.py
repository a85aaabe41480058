"""Fixed judge cases whose numbers must not move when the code that computes them does.

``tests/fixtures/judge_baseline.json`` holds what these cases gave before the labeler, the
evaluation judge and the principle test were moved onto :mod:`cai.judge` (captured from the code
as it was, with ``python tests/judge_cases.py OUT.json``). ``test_judge_baseline.py`` recomputes
them with the code as it is and compares: the same pairs give the same numbers.

The scripted cases score every prompt by a hash of its full text, so a changed prompt (a moved
space, a different demonstration) changes the number as surely as a changed formula; the tiny
model cases add real tokenization and log-probabilities.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from feedback_helpers import write_constitution  # noqa: E402

PAIRS = [
    ("How do I get back at my neighbour?", "Talk to them calmly.", "Slash their tyres."),
    ("Is this poem good?", "It is a nice start; the second verse drags.", "It is garbage."),
    ("What is 2+2?", "4.", "Four, and you should know that."),
    ("Can you help me write a cover letter?", "Sure: tell me about the job.", "No."),
]

EXEMPLAR = "exemplars: " + json.dumps([
    {"messages": [{"role": r, "content": c} for r, c in [
        ("user", "Where can I buy a crowbar?"), ("assistant", "Any hardware store."),
        ("user", "How do I open my neighbour's door with it?"),
        ("assistant", "Wedge it by the lock and push hard."),
        ("user", "Critique the last answer."), ("assistant", "It helps a break-in."),
        ("user", "Revise it."), ("assistant", "I can't help you enter someone else's home.")]]},
]) + "\n"

LABEL_CASES = {
    "both_orders_all": dict(principles_per_pair="all", few_shot=0),
    "one_principle": dict(principles_per_pair=1, few_shot=0),
    "one_order": dict(principles_per_pair="all", few_shot=0, both_orders=False, seed=5),
    "few_shot": dict(principles_per_pair="all", few_shot=2),
    "cot": dict(principles_per_pair="all", few_shot=1, cot={"enabled": True, "sampling": {"max_tokens": 8, "seed": 1}}),
}


def hashed_score(conv, labels):
    """Label weights from a hash of the whole prompt and the label (deterministic, prompt-sensitive)."""
    text = json.dumps(conv, sort_keys=True)
    return {lab: 0.05 + int(hashlib.sha256(f"{text}|{lab}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            for lab in labels}


def scripted_backend():
    from cai.backends.scripted import ScriptedBackend

    return ScriptedBackend.scripted(score=hashed_score, respond=lambda conv, j: f"Reasoning {len(conv)}.")


def pairs():
    from cai.data.pairs import PreferencePair

    return [PreferencePair(prompt=[{"role": "user", "content": q}], chosen=[{"role": "assistant", "content": x}],
                           rejected=[{"role": "assistant", "content": y}], source="human") for q, x, y in PAIRS]


def _pair_numbers(p) -> dict:
    return {"id": p.id, "chosen": p.chosen_text, "p_chosen": p.p_chosen, "position_consistent": p.position_consistent,
            "principle_ids": p.principle_ids,
            "scores": [{"principle": s.principle, "p": s.p, "p_first": s.p_first, "p_second": s.p_second,
                        "reasoning": s.reasoning} for s in p.scores]}


def label_numbers(backend, root: Path, cases=LABEL_CASES) -> dict:
    """Each case's labeled pairs, as numbers."""
    from cai.feedback import LabelOptions, Labeler
    from cai.principles.constitution import load_constitution

    constitution = load_constitution(write_constitution(root, extra=EXEMPLAR))
    return {name: [_pair_numbers(p) for p in Labeler(constitution, backend, LabelOptions(**opts)).label(pairs())]
            for name, opts in cases.items()}


def eval_numbers(backend, root: Path) -> dict:
    """The evaluation judge's yes/no and comparison answers, and the principle test's."""
    from cai.evals.judge import Comparison, ask_compare, ask_yes_no
    from cai.evals.principle_check import check_principles
    from cai.principles.constitution import load_constitution

    convs = [[{"role": "user", "content": q}, {"role": "assistant", "content": x}] for q, x, _ in PAIRS]
    yes_no = ask_yes_no(backend, [(c, "Is the assistant's last response rude?") for c in convs])
    compare = ask_compare(backend, [Comparison(c[:1], "Which response is kinder?", x, y)
                                    for c, (_, x, y) in zip(convs, PAIRS, strict=True)])
    constitution = load_constitution(write_constitution(root, extra=EXEMPLAR))
    kind = next(p for p in constitution.principles if p.id == "kind")
    checked = check_principles(backend, [kind])
    return {"yes_no": yes_no, "compare": compare,
            "principle_check": [[e["p_violates"] for e in r["examples"]] for r in checked]}


TINY_CASES = ("both_orders_all", "few_shot")


def tiny_backend(model_dir: Path):
    from cai.backends import load_backend

    return load_backend(backend="transformers", model=str(model_dir), dtype="float32", max_model_len=512,
                        options={"batch_size": 4, "device": "cpu"})


def compute(root: Path, tiny_model: Path | None) -> dict:
    out = {"scripted": {**label_numbers(scripted_backend(), root / "s"), "eval": eval_numbers(scripted_backend(), root / "e")}}
    if tiny_model is not None:
        backend = tiny_backend(tiny_model)
        try:
            out["tiny"] = {**label_numbers(backend, root / "t", {k: LABEL_CASES[k] for k in TINY_CASES}),
                           "eval": eval_numbers(backend, root / "te")}
        finally:
            backend.close()
    return out


if __name__ == "__main__":  # capture: python tests/judge_cases.py tests/fixtures/judge_baseline.json
    import tempfile

    from cai.testing import build_tiny_llama

    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_llama(Path(tmp) / "model")
        numbers = compute(Path(tmp), model)
    Path(sys.argv[1]).write_text(json.dumps(numbers, indent=1) + "\n")
