"""The judge: one scoring path for every shape. Pairwise comparisons, pointwise ratings and
groupwise rankings are rendered by :mod:`cai.judge.templates`, scored in one ``score_choices``
call per shape (every item x principle x order), and debiased by :mod:`cai.judge.scoring`'s rule
(both orders, averaged)."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cai.backends import Backend, SamplingConfig, label_mass
from cai.backends.rows import generate_rows, score_rows
from cai.judge import groupwise, scoring, templates
from cai.judge.health import HealthPolicy, HealthTracker, JudgeHealth, failure_text
from cai.judge.items import (
    Criterion, GroupItem, GroupScores, PairItem, PairVerdict, PointItem, PointVerdict, criterion_ref,
)
from cai.principles.constitution import Constitution
from cai.principles.principle import Principle

DEFAULT_ABSTAIN = "Neither: the question does not apply to these responses."


@dataclass(frozen=True)
class Cot:
    """Chain-of-thought before the answer: ``prompt`` starts the judge's turn, the reasoning is
    sampled with ``sampling`` (n = 1), then the answer is scored; each principle's P is clamped
    into ``clamp`` (CoT probabilities are extreme)."""

    prompt: str
    sampling: SamplingConfig
    clamp: tuple[float, float] | None = (0.4, 0.6)


@dataclass(frozen=True)
class Scale:
    """A pointwise rating scale: ``(label, meaning, value)`` per option; the rating is the expected
    value. ``ask`` ends a principle's question."""

    options: tuple[tuple[str, str, float], ...]
    ask: str

    @property
    def labels(self) -> list[str]:
        return [label for label, _, _ in self.options]

    @property
    def values(self) -> dict[str, float]:
        return {label: value for label, _, value in self.options}

    @classmethod
    def ratings(cls, n: int = 5) -> Scale:
        """``(1) ... (n)``, worst to best, valued 0 to 1."""
        names = {1: "does not follow the principle at all", n: "follows the principle fully"}
        return cls(tuple((str(k), names.get(k, ""), (k - 1) / (n - 1)) for k in range(1, n + 1)),
                   f"Rate the assistant's last response from 1 to {n} on how well it follows this principle.")


YES_NO = Scale((("A", "Yes", 1.0), ("B", "No", 0.0)),
               "Does the assistant's last response follow this principle?")
"""The default scale: P(Yes)."""
RATINGS_5 = Scale.ratings(5)


class Judge:
    """A judge model (any backend) asking a constitution's questions.

    ``constitution``: its preference template and few-shot demonstrations (None: the default
    template and no demonstrations; plain-question items never use either). ``both_orders``: ask
    every comparison in both orders (else one order, seeded by ``seed`` and the item's key).
    ``abstain``: offer a third option ``(C) <text>`` in comparisons (off by default).
    ``group_score``: ``bradley-terry`` or ``win-rate`` for :meth:`groupwise`.
    ``dedupe``: :meth:`pointwise` and :meth:`groupwise` send identical questions once (identical
    completions then score exactly alike; the RL reward sets it).
    ``stats`` counts calls, prompts scored, CoT tokens and seconds spent in the backend.
    ``health``: the :class:`~cai.judge.health.HealthPolicy` (default: label-mass floor 0.1, or
    ``CAI_MIN_LABEL_MASS``). Every judgement is checked: NaN, no labels, or label mass below the
    floor FAILS it (the verdict's ``failed`` says why; with ``skip_rejected`` the verdict is None;
    :attr:`failures` maps the item's index to the reason, :attr:`failure_reasons` to its code),
    and :attr:`health` accumulates a :class:`~cai.judge.health.JudgeHealth` (:meth:`reset_health`).
    """

    def __init__(self, backend: Backend, constitution: Constitution | None = None, *, few_shot: int = 0,
                 both_orders: bool = True, seed: int = 0, cot: Cot | None = None, abstain: str | None = None,
                 scale: Scale = YES_NO, group_score: Literal["bradley-terry", "win-rate"] = "bradley-terry",
                 dedupe: bool = False, health: HealthPolicy | None = None):
        self.backend, self.constitution = backend, constitution
        self.few_shot, self.both_orders, self.seed = few_shot, both_orders, seed
        self.cot, self.abstain, self.scale, self.group_score = cot, abstain, scale, group_score
        self.band = cot.clamp if cot is not None else None
        self.dedupe = dedupe
        self._demos: dict[str, list[dict]] = {}
        self._rejected: dict[int, str] = {}
        self.failures: dict[int, str] = {}
        """After a call: item index -> why it failed (the backend rejected it, or its judgement failed)."""
        self.failure_reasons: dict[int, str] = {}
        """After a call: item index -> the failure's code (:data:`cai.judge.health.FAILURE_REASONS`)."""
        self.stats: Counter = Counter()
        self.health_policy = health if health is not None else HealthPolicy()
        self.health_tracker = HealthTracker(self.health_policy)

    @property
    def health(self) -> JudgeHealth:
        """Judge health over every judgement since the judge was made (or :meth:`reset_health`)."""
        return self.health_tracker.report()

    def reset_health(self) -> None:
        self.health_tracker.reset()

    def _fail(self, i: int, reason: str, text: str) -> None:
        self.failures.setdefault(i, text)
        self.failure_reasons.setdefault(i, reason)

    # ------------------------------------------------------------------ pairwise

    def orders(self, item: PairItem) -> tuple[int, ...]:
        if item.orders is not None:
            return item.orders
        if self.both_orders:
            return scoring.ORDERS
        return (random.Random(f"{self.seed}:{item.key}").randrange(2),)

    def demos(self, c: Criterion) -> list[dict]:
        if not isinstance(c, Principle):
            return []
        if c.id not in self._demos:
            self._demos[c.id] = templates.demo_messages(self.constitution, c, self.few_shot)
        return self._demos[c.id]

    def comparisons(self, items: Sequence[PairItem]) -> list[tuple[int, Criterion, int, list[dict], str]]:
        """Every comparison to ask: ``(item, criterion, order, conversation, answer prefix)``, item by
        item, principle by principle, both orders adjacent (they share the conversation and question).
        Identical responses are not asked (they get 0.5)."""
        cot = self.cot.prompt if self.cot is not None else None
        out = []
        for i, item in enumerate(items):
            if item.x.strip() == item.y.strip():
                continue
            for c in item.principles:
                principle, question = (c, None) if isinstance(c, Principle) else (None, c)
                for order in self.orders(item):
                    a, b = (item.x, item.y) if order == 0 else (item.y, item.x)
                    conv, prefix = templates.comparison(self.constitution, principle, item.prompt, a, b, self.demos(c),
                                                        cot, question=question, abstain=self.abstain)
                    out.append((i, c, order, conv, prefix))
        return out

    def pairwise(self, items: Sequence[PairItem], *, skip_rejected: bool = False,
                 dedupe: bool = False) -> list[PairVerdict | None]:
        """P(x ≻ y) for every item: with CoT one generate call, then one score_choices call.

        A comparison the backend rejects (too long for the context, refused by the chat template)
        fails the call, or with ``skip_rejected`` fails its item alone: that item's verdict is None
        and :attr:`failures` maps its index to why (the others are scored as usual)."""
        asked = self.comparisons(items)
        convs = [conv for _, _, _, conv, _ in asked]
        reasonings: list[str | None] = [None] * len(asked)
        self.failures, self.failure_reasons = {}, {}
        rejected: dict[int, str] = {}  # comparison index -> why
        if self.cot is not None and asked:
            t0 = time.perf_counter()
            sampling = self.cot.sampling.model_copy(update={"n": 1})
            if skip_rejected:
                outputs, rejected = generate_rows(self.backend, convs, sampling)
            else:
                outputs = self.backend.generate(convs, sampling)
            self.stats["seconds"] += time.perf_counter() - t0
            for k, out in enumerate(outputs):
                if out is None:
                    continue
                [c] = out
                reasonings[k] = c.text
                convs[k] = templates.after_reasoning(convs[k], c.text, asked[k][4])
                self.stats["cot_tokens"] += c.completion_tokens
        labels = list(templates.OPTIONS) + ([templates.ABSTAIN] if self.abstain is not None else [])
        keep = [k for k in range(len(asked)) if k not in rejected]
        scored = self._score([convs[k] for k in keep], labels, "comparisons", skip_rejected, dedupe)
        probs: list[dict | None] = [None] * len(asked)
        for k, p in zip(keep, scored, strict=True):
            probs[k] = p
        for k, why in {**rejected, **{keep[j]: why for j, why in self._rejected.items()}}.items():
            self._fail(asked[k][0], "rejected", why)
        for k, (i, c, _, _, _) in enumerate(asked):
            reason = self.health_tracker.judgement(probs[k], id=items[i].key or str(i), principle=criterion_ref(c))
            if reason is not None and reason != "rejected":
                self._fail(i, reason, failure_text(reason, probs[k], self.health_policy))
        self.stats["comparisons"] += len(asked)
        results: list[dict[str, scoring.PrincipleResult]] = [{} for _ in items]
        for (i, c, order, _, _), p, reasoning in zip(asked, probs, reasonings, strict=True):
            if i in self.failures:
                continue
            ref = criterion_ref(c)
            r = results[i].setdefault(ref, scoring.PrincipleResult(ref, {}))
            if label_mass(p) is not None:
                r.mass[order] = label_mass(p)
            if self.abstain is not None:
                r.abstain[order] = p[templates.ABSTAIN]
                p = scoring.without(p, templates.ABSTAIN)
            r.by_order[order] = scoring.p_x(p, order)
            if reasoning is not None:
                r.reasoning[order] = reasoning
        out: list[PairVerdict | None] = []
        for i, (item, res) in enumerate(zip(items, results, strict=True)):
            if i in self.failures:
                out.append(None if skip_rejected else PairVerdict(float("nan"), [], None, failed=self.failures[i]))
                continue
            v = self._verdict(item, res)
            if res:  # asked (identical responses are not)
                for r in v.results:
                    self.health_tracker.comparison(principle=r.principle, consistent=r.consistent, p_x=r.p(self.band),
                                                   x=item.x, y=item.y, human_x=item.human_x)
                self.health_tracker.comparison(principle=None, consistent=v.position_consistent, p_x=v.p_x,
                                               x=item.x, y=item.y, human_x=item.human_x)
            out.append(v)
        return out

    def _verdict(self, item: PairItem, res: dict[str, scoring.PrincipleResult]) -> PairVerdict:
        if not res:  # identical responses: no preference, nothing asked
            res = {criterion_ref(c): scoring.PrincipleResult(criterion_ref(c), {o: 0.5 for o in self.orders(item)})
                   for c in item.principles}
        rs = list(res.values())
        label = scoring.label(rs, self.band)
        p_x = label.p_chosen if label.x_chosen else 1.0 - label.p_chosen
        p_abstain = None
        if self.abstain is not None:
            per = [sum(r.abstain.values()) / len(r.abstain) if r.abstain else 0.0 for r in rs]
            p_abstain = sum(per) / len(per)
        return PairVerdict(p_x, rs, label.position_consistent, p_abstain, label)

    # ------------------------------------------------------------------ pointwise

    def rating_question(self, c: Criterion) -> str:
        return templates.principle_rating_question(c, self.scale.ask) if isinstance(c, Principle) else c

    def pointwise(self, items: Sequence[PointItem]) -> list[PointVerdict]:
        """The expected rating of every item under each of its principles, in one score_choices call.
        An item with a failed judgement (NaN, label mass below the floor, ...) gets a verdict whose
        ``failed`` says why and whose ``score`` is NaN (:attr:`failures` maps its index too)."""
        options = [(label, meaning) for label, meaning, _ in self.scale.options]
        asked = [(i, c) for i, item in enumerate(items) for c in item.principles]
        prompts = [templates.rating_prompt(items[i].conversation(), self.rating_question(c), options)
                   for i, c in asked]
        probs = self._score(prompts, self.scale.labels, "ratings", dedupe=self.dedupe)
        self.stats["ratings"] += len(asked)
        self.failures, self.failure_reasons = {}, {}
        out = [PointVerdict(0.0, {}, {}) for _ in items]
        for (i, c), p in zip(asked, probs, strict=True):
            ref = criterion_ref(c)
            reason = self.health_tracker.judgement(p, id=items[i].key or str(i), principle=ref)
            if reason is not None:
                self._fail(i, reason, failure_text(reason, p, self.health_policy))
                continue
            out[i].by_principle[ref] = scoring.expected(p, self.scale.values)
            out[i].probs[ref] = p
        for i, v in enumerate(out):
            if i in self.failures:
                out[i] = PointVerdict(float("nan"), {}, {}, failed=self.failures[i])
            else:
                v.score = sum(v.by_principle.values()) / len(v.by_principle)
        return out

    # ------------------------------------------------------------------ groupwise

    def groupwise(self, groups: Sequence[GroupItem]) -> list[GroupScores]:
        """One score per response of every group: all pairs of each group, both orders, in one call.
        A group with a failed pair judgement is not ranked: its ``failed`` says why and its scores
        are NaN (:attr:`failures` maps the group's index)."""
        pairs, where = [], []
        for g, group in enumerate(groups):
            for i, j in groupwise.pairs(len(group.responses)):
                pairs.append(PairItem(group.prompt, group.responses[i], group.responses[j], group.principles,
                                      key=f"{group.key or g}:{i}:{j}", orders=scoring.ORDERS))
                where.append((g, i, j))
        verdicts = self.pairwise(pairs, dedupe=self.dedupe)
        pair_failures, pair_reasons = self.failures, self.failure_reasons
        self.failures, self.failure_reasons = {}, {}
        by_group: list[dict[tuple[int, int], PairVerdict]] = [{} for _ in groups]
        for k, ((g, i, j), v) in enumerate(zip(where, verdicts, strict=True)):
            by_group[g][(i, j)] = v
            if k in pair_failures:
                self._fail(g, pair_reasons[k], f"responses {i} and {j}: {pair_failures[k]}")
        return [groupwise.scores(len(group.responses), by_group[g], self.group_score, self.failures.get(g))
                for g, group in enumerate(groups)]

    # ------------------------------------------------------------------ the one path and provenance

    def _score(self, prompts: list[list[dict]], labels: list[str], what: str,
               skip_rejected: bool = False, dedupe: bool = False) -> list[dict[str, float] | None]:
        """One score_choices call. ``dedupe``: identical prompts are sent once and share the answer
        (a batch's padding moves a backend's numbers in the last digits, so identical completions
        would otherwise score a little apart, and a group of them would show a spread)."""
        t0 = time.perf_counter()
        self._rejected = {}
        index = list(range(len(prompts)))
        if dedupe:
            first: dict[str, int] = {}
            index = [first.setdefault(json.dumps(p, sort_keys=True), k) for k, p in enumerate(prompts)]
        unique = sorted(set(index))
        sent = [prompts[k] for k in unique]
        if skip_rejected and sent:
            got, rejected = score_rows(self.backend, sent, labels)
        else:
            got, rejected = scoring.score(self.backend, sent, labels, what), {}
        at = dict(zip(unique, range(len(unique)), strict=True))
        probs = [got[at[k]] for k in index]
        self._rejected = {k: rejected[at[i]] for k, i in enumerate(index) if at[i] in rejected}
        prompts = sent
        if prompts:
            self.stats["calls"] += 1
            self.stats["prompts"] += len(prompts)
            self.stats["seconds"] += time.perf_counter() - t0
        return probs

    def template_hash(self) -> str:
        c = self.constitution
        preference = c.template("preference") if c is not None else templates.DEFAULT_TEMPLATES["preference"]
        return templates.template_hash(preference, templates.DEFAULT_TEMPLATES["preference"], templates.RATING, templates.DEFAULT_ANSWER_PREFIX, self.abstain or "",
                                       repr(self.scale.options))

    def provenance(self) -> dict:
        """What the judgements come from: constitution name@version and hash, the judge model and
        backend (``describe()``), the template hash, the orders, few-shot, CoT, abstain and scale.
        Each verdict names its principles (``id@version``)."""
        c, cot = self.constitution, self.cot
        return {
            "constitution": f"{c.spec.name}@{c.spec.version}" if c is not None else None,
            "constitution_hash": c.hash if c is not None else None,
            "model": self.backend.config.model, "backend": self.backend.config.backend,
            "backend_info": self.backend.describe(), "template_hash": self.template_hash(),
            "orders": "both" if self.both_orders else "one", "few_shot": self.few_shot, "seed": self.seed,
            "cot": None if cot is None else {"prompt": cot.prompt, "sampling": cot.sampling.model_dump(mode="json"),
                                             "clamp": list(cot.clamp) if cot.clamp else None},
            "abstain": self.abstain, "scale": [label for label, _, _ in self.scale.options],
        }
