"""The judge-health record and its thresholds: :class:`HealthPolicy`, :class:`JudgeHealth` (with
its JSON, terminal and HTML forms), :class:`Rate`, :class:`MassSummary`. Built by
:class:`cai.judge.health.HealthTracker`; read :mod:`cai.judge.health` first."""

from __future__ import annotations

import html as _html
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Literal

from cai.core.errors import CaiError
from cai.core.rates import rate_text, wilson

DEFAULT_MIN_LABEL_MASS = 0.1
ENV_MIN_LABEL_MASS = "CAI_MIN_LABEL_MASS"


def _floor_from_env() -> float:
    raw = os.environ.get(ENV_MIN_LABEL_MASS)
    if raw is None or raw.strip() == "":
        return DEFAULT_MIN_LABEL_MASS
    try:
        value = float(raw)
    except ValueError:
        raise CaiError(f"{ENV_MIN_LABEL_MASS}={raw!r} is not a number (expected a label-mass floor in [0, 1])") from None
    if not 0.0 <= value <= 1.0:
        raise CaiError(f"{ENV_MIN_LABEL_MASS}={raw!r} is outside [0, 1]")
    return value


@dataclass(frozen=True)
class HealthPolicy:
    """Thresholds of judge health, the same in every summary and report.

    - ``min_label_mass``: a judgement whose label mass (probability on the answer labels before
      normalizing) is below this fails (default 0.1; ``CAI_MIN_LABEL_MASS`` overrides the default).
    - ``weak_label_mass``: median label mass below this: weak.
    - ``max_failed_share``: more failed judgements than this share: unhealthy (any failure: weak).
    - ``weak_position_consistency``: consistency below this: weak; ``min_position_consistency``:
      the 95% interval's upper end below this: unhealthy (the answers follow the shown order).
    - ``max_length_bias``: the vote follows the longer response more often than this (or less than
      1 - this): weak; with people's choices known, a gap over ``length_gap`` from their own rate.
    - ``min_n``: fewer judgements (or decided comparisons, for length bias) than this: too few to
      call a judge healthy (status ``unknown``) or a bias real.
    - ``on_unhealthy``: ``"warn"`` (say it everywhere) or ``"error"`` (stop: :meth:`JudgeHealth.raise_if_unhealthy`).
    """

    min_label_mass: float = field(default_factory=_floor_from_env)
    weak_label_mass: float = 0.5
    max_failed_share: float = 0.2
    weak_position_consistency: float = 0.7
    min_position_consistency: float = 0.5
    max_length_bias: float = 0.7
    length_gap: float = 0.2
    min_n: int = 10
    on_unhealthy: Literal["warn", "error"] = "warn"

    def __post_init__(self):
        if not 0.0 <= self.min_label_mass <= 1.0 or math.isnan(self.min_label_mass):
            raise CaiError(f"min_label_mass must be in [0, 1], got {self.min_label_mass}")
        if self.on_unhealthy not in ("warn", "error"):
            raise CaiError(f"judge health: on_unhealthy must be 'warn' or 'error', got {self.on_unhealthy!r}")

    @classmethod
    def from_options(cls, min_label_mass: float | None = None, on_unhealthy: str | None = None) -> HealthPolicy:
        """The default policy with a config's or flag's overrides (None: keep the default)."""
        kwargs: dict = {}
        if min_label_mass is not None:
            kwargs["min_label_mass"] = float(min_label_mass)
        if on_unhealthy is not None:
            kwargs["on_unhealthy"] = on_unhealthy
        return cls(**kwargs)


@dataclass
class Rate:
    """A share with its n and 95% Wilson interval (None where n is 0)."""

    n: int
    k: int

    @property
    def rate(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.k, self.n) if self.n else None

    def to_dict(self) -> dict:
        lo_hi = self.interval
        return {"n": self.n, "k": self.k, "rate": _r(self.rate),
                "low": _r(lo_hi[0]) if lo_hi else None, "high": _r(lo_hi[1]) if lo_hi else None}

    def text(self, of: str = "") -> str:
        """``41.7% of 24 comparisons (95% CI 24-61%, small sample)`` (:func:`cai.core.rates.rate_text`)."""
        return rate_text(self.rate, self.n, of=of)


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


@dataclass
class MassSummary:
    """Label mass over the judgements where it is known: n, median, 10th percentile, minimum."""

    n: int = 0
    median: float | None = None
    p10: float | None = None
    min: float | None = None

    @classmethod
    def of(cls, values) -> MassSummary:
        """The summary of a sequence of label masses (None and NaN are left out)."""
        v = sorted(x for x in values if x is not None and not math.isnan(x))
        if not v:
            return cls()
        mid = len(v) // 2
        median = v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2
        return cls(len(v), median, v[int(0.1 * (len(v) - 1))], v[0])

    def text(self) -> str:
        if not self.n:
            return "unknown"
        return f"median {self.median:.3g}, p10 {self.p10:.3g}, min {self.min:.3g} (n {self.n})"


@dataclass
class JudgeHealth:
    """The health of a judge over a set of judgements (overall, and ``per_principle`` alike).

    ``n``: judgements (score rows: one per item x principle x order); ``failures``: reason -> count;
    ``failed_ids``: reason -> the first ids; ``label_mass``: :class:`MassSummary`; ``position``:
    comparisons whose two orders agreed; ``length``: decided comparisons of responses of different
    length whose vote went to the longer one; ``human_length``: the same for people's choices
    (None when unknown); ``sources``: how the numbers were read (``logprobs``, ``top_logprobs``,
    ``generated``) -> count; ``status`` and ``reasons``; ``notes``: caveats that do not change it.
    """

    n: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    failed_ids: dict[str, list[str]] = field(default_factory=dict)
    label_mass: MassSummary = field(default_factory=MassSummary)
    position: Rate = field(default_factory=lambda: Rate(0, 0))
    length: Rate = field(default_factory=lambda: Rate(0, 0))
    human_length: Rate | None = None
    sources: dict[str, int] = field(default_factory=dict)
    per_principle: dict[str, JudgeHealth] = field(default_factory=dict)
    status: str = "unknown"
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    policy: HealthPolicy = field(default_factory=HealthPolicy)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    # -------------------------------------------------------------- JSON

    def to_dict(self) -> dict:
        """A JSON-ready dict (``summary.json``, ``metrics.jsonl``); :meth:`from_dict` reads it back."""
        return {
            "status": self.status, "reasons": list(self.reasons), "notes": list(self.notes),
            "n": self.n, "failed": self.failed, "failures": dict(self.failures),
            "failed_ids": {k: list(v) for k, v in self.failed_ids.items()},
            "label_mass": asdict(self.label_mass), "position_consistency": self.position.to_dict(),
            "length_bias": self.length.to_dict(),
            "human_length_rate": self.human_length.to_dict() if self.human_length is not None else None,
            "sources": dict(self.sources),
            "per_principle": {k: v.to_dict() for k, v in self.per_principle.items()},
            "thresholds": asdict(self.policy),
        }

    @classmethod
    def from_dict(cls, d: dict) -> JudgeHealth:
        def rate(x):
            return Rate(x["n"], x["k"]) if x else Rate(0, 0)

        thresholds = d.get("thresholds") or {}
        return cls(
            n=d.get("n", 0), failures=dict(d.get("failures", {})),
            failed_ids={k: list(v) for k, v in d.get("failed_ids", {}).items()},
            label_mass=MassSummary(**(d.get("label_mass") or {})), position=rate(d.get("position_consistency")),
            length=rate(d.get("length_bias")),
            human_length=rate(d["human_length_rate"]) if d.get("human_length_rate") else None,
            sources=dict(d.get("sources", {})),
            per_principle={k: cls.from_dict(v) for k, v in d.get("per_principle", {}).items()},
            status=d.get("status", "unknown"), reasons=list(d.get("reasons", [])), notes=list(d.get("notes", [])),
            policy=HealthPolicy(**thresholds) if thresholds else HealthPolicy(),
        )

    # -------------------------------------------------------------- text

    def headline(self, who: str = "judge") -> str:
        """One line: ``judge health: weak (n 48): position consistency 41.7% of 24 [...] < 70%; ...``."""
        why = "; ".join(self.reasons) if self.reasons else "no problem found"
        return f"{who} health: {self.status} (n {self.n} judgements): {why}"

    def warning(self, who: str = "judge") -> str | None:
        """The one-line warning for a weak or unhealthy judge (None when healthy or unknown without reasons)."""
        if self.status in ("healthy",) or (self.status == "unknown" and not self.reasons):
            return None
        return "warning: " + self.headline(who)

    def lines(self, who: str = "judge", principles: bool = True) -> list[str]:
        """Plain-text lines for a terminal (print them with markup off: ids and principles are data)."""
        out = [self.headline(who)]
        out.append(f"  label mass: {self.label_mass.text()}; floor {self.policy.min_label_mass:g}")
        if self.failed:
            parts = [f"{reason} {count} ({', '.join(self.failed_ids.get(reason, [])[:5])})"
                     for reason, count in sorted(self.failures.items())]
            out.append(f"  failed judgements: {self.failed} of {self.n}: " + "; ".join(parts))
        out.append(f"  position consistency: {self.position.text('comparisons')}")
        length = f"  length bias (vote follows the longer response): {self.length.text('decided comparisons')}"
        if self.human_length is not None:
            length += f"; people chose the longer one in {self.human_length.text('pairs')}"
        out.append(length)
        if self.sources:
            out.append("  read from: " + ", ".join(f"{k} {v}" for k, v in sorted(self.sources.items())))
        out.extend(f"  note: {n}" for n in self.notes)
        if principles and len(self.per_principle) > 1:
            for ref, h in sorted(self.per_principle.items()):
                out.append(f"  {_short(ref)}: {h.status}; mass {h.label_mass.text()}; failed {h.failed}; "
                           f"consistency {h.position.text()}; longer {h.length.text()}")
        return out

    def html(self, who: str = "judge") -> str:
        """An HTML fragment (every value escaped): status, reasons, the figures, per principle."""
        e = _html.escape
        cls = {"healthy": "ok", "weak": "warn", "unhealthy": "bad"}.get(self.status, "unknown")
        rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in self._figures())
        reasons = "".join(f"<li>{e(r)}</li>" for r in self.reasons)
        notes = "".join(f"<li>{e(n)}</li>" for n in self.notes)
        per = ""
        if len(self.per_principle) > 1:
            body = "".join(
                f"<tr><td title='{e(ref)}'>{e(_short(ref))}</td><td>{e(h.status)}</td><td>{e(h.label_mass.text())}</td><td>{h.failed}</td>"
                f"<td>{e(h.position.text())}</td><td>{e(h.length.text())}</td></tr>"
                for ref, h in sorted(self.per_principle.items()))
            per = ("<table class='judge-health-principles'><tr><th>principle</th><th>status</th><th>label mass</th>"
                   f"<th>failed</th><th>position consistency</th><th>follows longer</th></tr>{body}</table>")
        return (f"<div class='judge-health {cls}'><p><strong>{e(who)} health: {e(self.status)}</strong>"
                f" ({self.n} judgements)</p>{'<ul>' + reasons + '</ul>' if reasons else ''}"
                f"<table>{rows}</table>{'<ul class=notes>' + notes + '</ul>' if notes else ''}{per}</div>")

    def _figures(self) -> list[tuple[str, str]]:
        out = [("label mass", f"{self.label_mass.text()}; floor {self.policy.min_label_mass:g}"),
               ("failed judgements", f"{self.failed} of {self.n}" + (
                   " (" + "; ".join(f"{k} {v}: {', '.join(self.failed_ids.get(k, [])[:5])}"
                                    for k, v in sorted(self.failures.items())) + ")" if self.failed else "")),
               ("position consistency", self.position.text("comparisons")),
               ("vote follows the longer response", self.length.text("decided comparisons"))]
        if self.human_length is not None:
            out.append(("people chose the longer response", self.human_length.text("pairs")))
        return out

    def raise_if_unhealthy(self, policy: HealthPolicy | None = None, who: str = "judge") -> str | None:
        """With ``policy.on_unhealthy == "error"`` and status unhealthy: raise a one-line
        :class:`CaiError`. Otherwise return :meth:`warning` (None when there is nothing to say)."""
        policy = policy or self.policy
        if self.status == "unhealthy" and policy.on_unhealthy == "error":
            raise CaiError(self.headline(who) + " (stopping: on_unhealthy is 'error'; fix the judge, or use "
                           "--judge-health warn to go on)")
        return self.warning(who)


def _short(ref: str, width: int = 72) -> str:
    """A per-principle name as shown: ``id@version``, or a plain question cut to ``width``
    characters (the whole question stays in the JSON and the HTML cell's title)."""
    ref = " ".join(ref.split())
    return ref if len(ref) <= width else ref[: width - 1] + "…"
