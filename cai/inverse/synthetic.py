"""Preference pairs that follow hidden rules, and a scripted model that knows the rules.

The check of inverse CAI (Findeis et al. 2024 test it the same way, on synthetic data with known
principles): build pairs whose choice is explained by one rule each, then see whether
`cai principles propose` finds the rules again and `cai principles test --pairs` ranks them
first. Each pair differs in exactly one rule's feature; the chosen response has it. Pairs built
with ``rules=()`` differ only in wording that no rule looks at, so every rule abstains on them.

:func:`scripted_backend` returns a :class:`~cai.backends.scripted.ScriptedBackend` that plays both
roles a model plays here, reading whatever prompt it is sent (it does not depend on any template):

- as a judge (``score_choices``): it finds which principle the prompt asks about by the words it
  uses, finds the pair by its ``Question N:`` line and the two responses in the order they are
  shown, and answers (A)/(B) for the response with the rule's feature, or the abstain option when
  neither or both have it; a *decoy* principle (politeness, confidence, ...) picks at random half
  the time; a question naming no principle gets no preference;
- as a proposer (``generate``): it reads which response the prompt says people preferred and
  writes one principle per feature that sets it apart, in varied wording, sometimes with a decoy,
  and now and then an answer with no principle in it (to be counted as unparseable); when the
  answer is prefilled, it continues the prefill.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cai.backends.scripted import ScriptedBackend
from cai.data.pairs import PreferencePair


@dataclass(frozen=True)
class Rule:
    """A hidden rule: its feature (a test on a response's text) and the ways a proposer words it."""

    name: str
    has: Callable[[str], bool]
    phrasings: tuple[str, ...]


def _ends_with_question(text: str) -> bool:
    return text.rstrip().endswith("?")


def _numbered(text: str) -> bool:
    return bool(re.search(r"(?m)^\s*1\.\s", text)) and bool(re.search(r"(?m)^\s*2\.\s", text))


def _example(text: str) -> bool:
    return "for example" in text.lower()


RULES: tuple[Rule, ...] = (
    Rule("ends-with-question", _ends_with_question,
         ("Select the response that ends with a question to the user.",
          "Select the response that finishes by asking the user a question.",
          "Select the response that closes with a follow-up question.")),
    Rule("numbered-list", _numbered,
         ("Select the response that uses a numbered list.",
          "Select the response that sets out its steps as a numbered list.",
          "Select the response that presents the answer as a numbered list of steps.")),
    Rule("gives-example", _example,
         ("Select the response that gives a concrete example.",
          "Select the response that includes an example.",
          "Select the response that illustrates its advice with an example.")),
)
DECOYS = ("Select the response that is more polite.", "Select the response that sounds more confident.",
          "Select the response that is friendlier in tone.")
TOPICS = ("learning the guitar", "saving money", "sleeping better", "a job interview", "cooking rice",
          "running a first 5k", "writing a cover letter", "keeping houseplants alive", "learning Spanish",
          "a noisy neighbour", "planning a trip", "studying for an exam")
LEAD = "Select the response that "
_QUESTION = re.compile(r"Question (\d+):")


def compose(topic: str, variant: int, features: set[str]) -> str:
    """A response about ``topic`` with exactly the named rules' features."""
    opener = ("Here is a plan", "Here is what usually works", "A simple approach")[variant % 3]
    steps = ("set a small goal", "practise a little every day", "check your progress each week")
    if "numbered-list" in features:
        text = f"{opener} for {topic}:\n" + "\n".join(f"{k}. {s.capitalize()}." for k, s in enumerate(steps, 1))
    else:
        text = f"{opener} for {topic}. First, {steps[0]}. Then, {steps[1]}. Finally, {steps[2]}."
    if "gives-example" in features:
        text += " For example, start with ten minutes a day."
    if "ends-with-question" in features:
        text += " What have you tried so far?"
    return text


def make_pairs(n: int, rules: Sequence[Rule] = RULES, seed: int = 0, offset: int = 0) -> list[PreferencePair]:
    """``n`` pairs, the k-th explained by rule ``k mod len(rules)`` (its feature only in the chosen
    response; every other rule's feature the same in both, at random). With no rules, the two
    responses differ only in their opening words."""
    rng = random.Random(seed)
    out = []
    for i in range(offset, offset + n):
        topic = TOPICS[i % len(TOPICS)]
        prompt = [{"role": "user", "content": f"Question {i}: can you help me with {topic}?"}]
        shared = {r.name for r in RULES if rng.random() < 0.5}
        if rules:
            rule = rules[i % len(rules)].name
            variant = rng.randrange(3)
            chosen, rejected = compose(topic, variant, shared | {rule}), compose(topic, variant, shared - {rule})
        else:
            a, b = rng.sample(range(3), 2)
            chosen, rejected = compose(topic, a, shared), compose(topic, b, shared)
        out.append(PreferencePair(prompt=prompt, chosen=[{"role": "assistant", "content": chosen}],
                                  rejected=[{"role": "assistant", "content": rejected}], source="human",
                                  labeler="hidden-rules", origin=f"synthetic:{i}"))
    return out


def _core(phrasing: str) -> str:
    """What a phrasing says after "Select the response that", without the full stop: the words a
    prompt holds when it asks about this principle, however the principle was rendered."""
    return phrasing.removeprefix(LEAD).rstrip(".")


def rule_for(text: str) -> Rule | None:
    """The hidden rule a principle's wording is one of the phrasings of, if any."""
    return next((r for r in RULES if any(_core(ph) in text for ph in r.phrasings)), None)


def _seeded(*parts: object) -> random.Random:
    return random.Random(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest())


class HiddenRuleModel:
    """The scripted model's two roles over one set of pairs (see the module docstring)."""

    def __init__(self, pairs: Sequence[PreferencePair], decoy_rate: float = 0.5, unparseable: float = 0.1):
        self.pairs = {self._index(p): p for p in pairs}
        self.decoy_rate, self.unparseable = decoy_rate, unparseable

    @staticmethod
    def _index(pair: PreferencePair) -> int:
        return int(_QUESTION.search(pair.prompt[-1].content).group(1))

    def _shown(self, text: str) -> tuple[PreferencePair, str, str] | None:
        """The pair the prompt is about, and its two responses in the order shown."""
        m = _QUESTION.search(text)
        pair = self.pairs.get(int(m.group(1))) if m else None
        if pair is None:
            return None
        # One response may be the other plus a sentence: find the longer first, then the shorter
        # outside it.
        long, short = sorted((pair.chosen_text, pair.rejected_text), key=len, reverse=True)
        il = text.find(long)
        if il < 0:
            return None
        i_s = (text[:il] + "\0" * len(long) + text[il + len(long):]).find(short)
        if i_s < 0:
            return None
        return (pair, long, short) if il < i_s else (pair, short, long)

    def score(self, conv: list[dict], labels: list[str]) -> dict[str, float]:
        text = "\n".join(m["content"] for m in conv)
        shown = self._shown(text)
        abstain = labels[2] if len(labels) > 2 else None
        unsure = {labels[0]: 1.0, labels[1]: 1.0}
        if shown is None:
            return unsure

        def pick(first: bool, sure: float) -> dict[str, float]:
            rest = (1.0 - sure) / 2
            return {labels[0]: sure if first else rest, labels[1]: rest if first else sure,
                    **({abstain: rest} if abstain else {})}

        def none_applies() -> dict[str, float]:
            return {abstain: 0.9, labels[0]: 0.05, labels[1]: 0.05} if abstain else unsure

        pair, a, b = shown
        asked = text
        for response in sorted((a, b), key=len, reverse=True):
            asked = asked.replace(response, "")
        rule = next((r for r in RULES if any(_core(ph) in asked for ph in r.phrasings)), None)
        if rule is not None:
            fa, fb = rule.has(a), rule.has(b)
            return pick(fa, 0.9) if fa != fb else none_applies()
        decoy = next((d for d in DECOYS if _core(d) in asked), None)
        if decoy is not None:
            rng = _seeded("decoy", decoy, pair.id)
            if abstain and rng.random() >= self.decoy_rate:
                return none_applies()
            favoured = sorted((a, b))[rng.random() < 0.5]  # a response, not a position
            return pick(favoured == a, 0.8)
        return unsure

    def respond(self, conv: list[dict], sample: int) -> str:
        text = "\n".join(m["content"] for m in conv)
        shown = self._shown(text)
        if shown is None:
            return "I am not sure what to say."
        pair, a, b = shown
        rng = _seeded("propose", pair.id, sample)
        prefilled = conv[-1]["role"] == "assistant" and conv[-1]["content"].rstrip().endswith(LEAD.strip())
        if rng.random() < self.unparseable:
            return "" if prefilled else "Both responses seem fine to me."
        preferred = a if re.search(r"preferred[^\n]*\(A\)", text, re.IGNORECASE) else b
        other = b if preferred is a else a
        lines = [rng.choice(r.phrasings) for r in RULES if r.has(preferred) and not r.has(other)]
        if rng.random() < 0.5:
            lines.append(rng.choice(DECOYS))
        text = "\n".join(f"{k}. {line}" for k, line in enumerate(lines, 1))
        # a prefilled answer already says "1. Select the response that": continue it
        return text.removeprefix(f"1. {LEAD.strip()}") if prefilled else text


def scripted_backend(pairs: Sequence[PreferencePair], **kwargs) -> ScriptedBackend:
    """A scripted judge and proposer that follow the hidden rules of ``pairs``."""
    model = HiddenRuleModel(pairs, **kwargs)
    return ScriptedBackend.scripted(respond=model.respond, score=model.score)
