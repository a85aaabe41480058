"""Where the RL reward meets the one judge (:mod:`cai.judge`): which principles judge which
completion, and the judge opened on its backend. The reward (:mod:`~cai.train.online.judging`)
sees only :class:`ConstitutionJudge`'s ``rate``/``rank``.

Principles are picked as `cai label` picks them (:func:`cai.feedback.labeler.feedback_principles`
and the constitution's sampling, or ``principles_per_completion``), seeded by a content key: the
completion (pointwise) or the prompt (groupwise: the group is judged under the same principles).
"""

from __future__ import annotations

import hashlib
import json

from cai.judge import GroupItem, GroupScores, Judge, PointItem, RATINGS_5, YES_NO


def content_key(*parts) -> str:
    """A stable 16-hex key of JSON-able parts."""
    blob = json.dumps(parts, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class ConstitutionJudge:
    """The constitution's judge for the policy's completions (one :class:`cai.judge.Judge`)."""

    def __init__(self, judge: Judge, picker, *, owns_backend: bool = False):
        self.judge, self.picker, self.owns_backend = judge, picker, owns_backend

    @property
    def stats(self):
        return self.judge.stats

    @property
    def failures(self) -> dict[int, str]:
        """After a call: item (pointwise) or group (groupwise) index -> why its judgement failed."""
        return getattr(self.judge, "failures", {})

    @property
    def failure_reasons(self) -> dict[int, str]:
        """After a call: index -> the failure's code (``nan``, ``below_label_mass``, ...)."""
        return getattr(self.judge, "failure_reasons", {})

    @property
    def health(self):
        """The judge's :class:`~cai.judge.health.JudgeHealth` since it was opened (None if unknown)."""
        return getattr(self.judge, "health", None)

    @property
    def health_policy(self):
        return getattr(self.judge, "health_policy", None)

    def rate(self, prompts: list[list[dict]], responses: list[str]) -> list[float]:
        """Expected rating in [0, 1] of each response, averaged over its principles (one call)."""
        items = [PointItem(p, r, self.picker.pick(content_key(p, r), 0)) for p, r in zip(prompts, responses, strict=True)]
        return [v.score for v in self.judge.pointwise(items)]

    def rank(self, prompts: list[list[dict]], groups: list[list[str]]) -> list[GroupScores]:
        """One :class:`GroupScores` per group of responses to one prompt (every pair, both orders, one call)."""
        items = [GroupItem(p, g, self.picker.pick(content_key(p), 0)) for p, g in zip(prompts, groups, strict=True)]
        return self.judge.groupwise(items)

    def provenance(self) -> dict:
        return self.judge.provenance()

    def close(self) -> None:
        if self.owns_backend:
            self.judge.backend.close()


def open_judge(cfg, backend=None) -> ConstitutionJudge:
    """The judge of a :class:`~cai.train.online.config.ConstitutionReward` block: its constitution,
    its feedback backend (default: the embedded model on ``auto``), or ``backend`` if given."""
    from cai.backends import BackendConfig, load_backend
    from cai.feedback.labeler import _picker
    from cai.judge.health import HealthPolicy
    from cai.models import DEFAULT_MODEL
    from cai.sl.pipeline import resolve_constitution

    constitution = resolve_constitution(cfg.constitution, cfg.principles_dir)
    picker = _picker(constitution, cfg.principles_per_completion)
    owns = backend is None
    if backend is None:
        backend = load_backend(cfg.feedback or BackendConfig(model=DEFAULT_MODEL))
    judge = Judge(backend, constitution, few_shot=cfg.few_shot, seed=cfg.seed,
                  scale=RATINGS_5 if cfg.scale == "ratings-5" else YES_NO, group_score=cfg.group_score,
                  dedupe=True, health=HealthPolicy.from_options(cfg.min_label_mass, cfg.judge_health))
    return ConstitutionJudge(judge, picker, owns_backend=owns)
