"""Option labels as token sequences, and their probabilities from next-token log-probs.

Shared by every backend that scores choices from token ids. A label such as ``A`` counts in each
way it can be written after the prompt: bare (``"A"``) and with a leading space (``" A"``); each
spelling is a token sequence (a *variant*). The probability of a variant is the product of its
tokens' conditional probabilities; a label's is the sum over its variants; the result is
normalized over the labels.

The variants of all labels form a prefix tree. Each inner node (the empty prefix, plus the first
tokens of multi-token variants) is one query: "log-probs of these next tokens after prompt +
prefix". For single-token labels that is one query per prompt: one forward pass, no decoding.

Caveat: a label whose variant is a prefix of another label's variant (``1`` and ``10`` when ``10``
is two tokens ``1``,``0``) also collects the longer label's mass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cai.core.errors import CaiError

TokenIds = tuple[int, ...]


class ChoiceProbs(dict):
    """One row's option probabilities, normalized over the labels (a plain ``dict`` to every
    caller), with what the normalization hides:

    - ``mass``: the probability the model put on the option labels *before* normalizing (the sum
      over labels and spellings of P(label as the next token(s))), in [0, 1]; ``None`` where the
      backend cannot know it (a scripted backend). A judge whose next token is not an answer label
      (a reasoning model starting with ``<think>``, a template/tokenizer mismatch) still yields
      confident-looking normalized probabilities; its mass shows it (the embedded SmolLM2 puts
      0.93-0.96 on A/B; a model off-format, ~1e-20). NaN when the model's log-probs are NaN.
    - ``source``: how the numbers were read: ``"logprobs"`` (exact next-token log-probs),
      ``"top_logprobs"`` (an OpenAI-compatible server's top-k list: labels outside it are bounded,
      not known) or ``"generated"`` (a verdict parsed from generated text: p is 0/1, uncalibrated).

    Source of the check: open-instruct PR #62 and t2v_metrics#41 (label probabilities normalized
    over candidates hide a judge that is not answering).
    """

    mass: float | None = None
    source: str = "logprobs"

    failure: str | None = None
    """Why the backend could not read this row (a failure reason of :mod:`cai.judge.health`,
    e.g. ``"labels_missing"``, ``"parse"``), or None."""

    def __init__(self, probs=(), mass: float | None = None, source: str = "logprobs", failure: str | None = None):
        super().__init__(probs)
        self.mass = mass
        self.source = source
        self.failure = failure

    def __reduce__(self):  # keep mass/source/failure across pickling (Ray workers, multiprocessing)
        return (ChoiceProbs, (dict(self), self.mass, self.source, self.failure))


def label_mass(probs) -> float | None:
    """The pre-normalization label mass of a ``score_choices`` row, or ``None`` if unknown."""
    return getattr(probs, "mass", None)


def label_spellings(label: str) -> list[str]:
    """The texts a label may be written as right after the prompt."""
    bare = label.lstrip(" ")
    return [bare, " " + bare] if bare else [label]


@dataclass(frozen=True)
class ChoicePlan:
    """Token variants of one label list, and the queries needed to score them."""

    labels: tuple[str, ...]
    variants: tuple[tuple[TokenIds, ...], ...]
    """variants[i]: the distinct token sequences of labels[i]."""
    queries: tuple[tuple[TokenIds, tuple[int, ...]], ...] = field(default=())
    """(prefix, next tokens): append prefix to the prompt, read those next tokens' log-probs."""

    @property
    def longest(self) -> int:
        """Tokens in the longest variant (room the prompt must leave in the context)."""
        return max(len(v) for vs in self.variants for v in vs)


def plan_choices(labels: Sequence[str], encode: Callable[[str], list[int]]) -> ChoicePlan:
    """Tokenize each label's spellings (``encode`` adds no special tokens) into a plan."""
    variants: list[tuple[TokenIds, ...]] = []
    owner: dict[TokenIds, str] = {}
    for label in labels:
        mine: list[TokenIds] = []
        for text in label_spellings(label):
            ids = tuple(encode(text))
            if not ids or ids in mine:
                continue
            if ids in owner:
                raise CaiError(f"option labels {owner[ids]!r} and {label!r} tokenize the same")
            owner[ids] = label
            mine.append(ids)
        if not mine:
            raise CaiError(f"option label {label!r} encodes to no tokens")
        variants.append(tuple(mine))
    children: dict[TokenIds, list[int]] = {}
    for ids in owner:
        for j in range(len(ids)):
            nxt = children.setdefault(ids[:j], [])
            if ids[j] not in nxt:
                nxt.append(ids[j])
    queries = tuple((prefix, tuple(tokens)) for prefix, tokens in children.items())
    return ChoicePlan(tuple(labels), tuple(variants), queries)


def combine(plan: ChoicePlan, answers: Sequence[dict[int, float]]) -> ChoiceProbs:
    """Label probabilities from ``answers[k]`` (token -> log-prob) for ``plan.queries[k]``, with
    the label mass before normalizing (:class:`ChoiceProbs`). NaN log-probs give NaN
    probabilities and a NaN mass (the judge counts the row as failed; it is never a label)."""
    table = {prefix: answer for (prefix, _), answer in zip(plan.queries, answers, strict=True)}
    label_logps = []
    for variants in plan.variants:
        logps = []
        for ids in variants:
            logps.append(sum(table[ids[:j]].get(ids[j], -math.inf) for j in range(len(ids))))
        label_logps.append(_logsumexp(logps))
    if any(math.isnan(lp) for lp in label_logps):
        return ChoiceProbs({label: math.nan for label in plan.labels}, mass=math.nan)
    total = _logsumexp(label_logps)
    if total == -math.inf:
        raise CaiError("the model gives every option label zero probability")
    return ChoiceProbs(
        {label: math.exp(lp - total) for label, lp in zip(plan.labels, label_logps, strict=False)},
        mass=min(1.0, math.exp(total)),
    )


def combine_rows(
    plans: Sequence[ChoicePlan], owners: Sequence[int], answers: Sequence[dict[int, float]]
) -> list[ChoiceProbs]:
    """Each row's label probabilities from the answers to its queries (``owners[k]`` is the row of
    ``answers[k]``)."""
    per_row: list[list[dict[int, float]]] = [[] for _ in plans]
    for i, answer in zip(owners, answers, strict=True):
        per_row[i].append(answer)
    return [combine(plan, per_row[i]) for i, plan in enumerate(plans)]


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values))


class PlanCache:
    """Plans per label list, so a batch with shared labels tokenizes them once."""

    def __init__(self, encode: Callable[[str], list[int]]):
        self.encode = encode
        self._plans: dict[tuple[str, ...], ChoicePlan] = {}

    def __call__(self, labels: Sequence[str]) -> ChoicePlan:
        key = tuple(labels)
        if key not in self._plans:
            self._plans[key] = plan_choices(key, self.encode)
        return self._plans[key]
