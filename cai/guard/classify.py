"""The guard at serving time: a sequence classifier's P(violation) for inputs and outputs.

One model serves both roles: each text is prefixed with a role marker (:func:`marked`), so an
input ("the user asks ...") and an output ("the assistant answered ...") are told apart without two
heads. ``guard.json`` beside the weights holds the threshold calibrated at training (or by
`cai guard eval --target-fpr`) and what the guard was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from cai.core.errors import CaiError

MARKERS = {"input": "[user message]", "output": "[assistant response]"}
GUARD_FILE = "guard.json"


def marked(text: str, role: str) -> str:
    """``text`` with its role marker: ``"[user message] How do I ..."``. Raises CaiError for an
    unknown role."""
    if role not in MARKERS:
        raise CaiError(f"guard: role must be 'input' or 'output', got {role!r}")
    return f"{MARKERS[role]} {text}"


class Guard:
    """A trained guard folder: ``scores(texts, roles)`` -> P(violation) per text, ``flags`` at the
    calibrated threshold. Batched, sorted by length to pad little; CPU or the first CUDA device."""

    def __init__(self, folder: str | Path, *, batch_size: int = 32, device: str | None = None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(folder)
        meta_path = folder / GUARD_FILE
        if not meta_path.exists():
            raise CaiError(f"{folder} is not a cai guard (no {GUARD_FILE}); train one with 'cai guard train'")
        self.folder = folder
        self.meta = read_meta(meta_path)
        self.threshold = float(self.meta["threshold"])
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.tokenizer.truncation_side = "left"
        self.model = AutoModelForSequenceClassification.from_pretrained(folder).to(self.device).eval()
        self.max_length = int(self.meta.get("max_length", 256))

    def scores(self, texts: Sequence[str], roles: Sequence[str] | str = "output") -> list[float]:
        """P(violation) in [0, 1] for each text (``roles``: one role for all, or one per text)."""
        import torch

        roles = [roles] * len(texts) if isinstance(roles, str) else list(roles)
        inputs = [marked(t, r) for t, r in zip(texts, roles, strict=True)]
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        out = [0.0] * len(inputs)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            enc = self.tokenizer([inputs[i] for i in chunk], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                logits = self.model(**enc).logits.float()  # (B, 2)
            probs = torch.softmax(logits, dim=-1)[:, 1].cpu().tolist()
            for i, p in zip(chunk, probs, strict=True):
                out[i] = p
        return out

    def flags(self, texts: Sequence[str], roles: Sequence[str] | str = "output") -> list[bool]:
        """True where P(violation) reaches the calibrated threshold."""
        return [s >= self.threshold for s in self.scores(texts, roles)]

    def close(self) -> None:
        self.model = None


def read_meta(path: Path) -> dict:
    """``guard.json`` as a dict whose ``threshold`` is a number in [0, 1]. Raises CaiError naming the
    file (and the field) when it is not valid JSON, not an object, or its threshold is missing or
    not a probability."""
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CaiError(f"{path}: not valid JSON ({exc}); retrain the guard with 'cai guard train'") from None
    if not isinstance(meta, dict):
        raise CaiError(f"{path}: expected a JSON object with a threshold, got {type(meta).__name__}")
    value = meta.get("threshold")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise CaiError(f"{path}: threshold: expected a number in [0, 1], got {value!r}; recalibrate with "
                       "'cai guard eval --data DATA --target-fpr RATE' or retrain")
    return meta


def threshold_for(benign_scores: Sequence[float], target_fpr: float) -> float:
    """The smallest threshold at or above 0.5 that flags at most ``target_fpr`` of ``benign_scores``
    (scores at or above it are flagged). With no benign scores, 0.5.

    Never below 0.5: a guard that separates its benign rows cleanly scores them ~1e-5, and a
    threshold set "just above" them would sit at numerical noise (batch padding alone moves a score
    that much) and flag benign texts at serving time."""
    if not benign_scores:
        return 0.5
    ranked = sorted(benign_scores, reverse=True)
    allowed = int(target_fpr * len(ranked))  # benign rows that may be flagged
    if allowed >= len(ranked):
        return max(0.5, ranked[-1])
    return max(0.5, min(1.0, ranked[allowed] + 1e-6))  # just above the first benign score that must pass
