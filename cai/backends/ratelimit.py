"""Client-side rate limits for the ``openai`` backend: requests per minute and tokens per minute.

Hosted APIs meter both (the OpenAI API answers 429 once either is spent); sending no faster than
the account allows keeps a judge run from spending its retries on 429s. Each limit is a token
bucket refilled continuously at the rate that holds one second's allowance: the OpenAI API says
its per-minute limits may be enforced over shorter periods (60,000 a minute as 1,000 a second), so
a burst of a whole minute's allowance at the start would meet 429s. A request waits, without
holding a concurrency slot, until both buckets can pay for it.

Tokens are counted before the answer exists, so they are an estimate: the prompt's characters / 4
(the usual rule of thumb for English with a BPE vocabulary) plus the most tokens the request may
generate (``max_tokens`` x ``n``). A request larger than the bucket is let through once the
bucket is full and leaves it in debt, so the next request waits until the debt is paid: the
average stays at the limit.

A few dozen lines instead of a dependency (``aiolimiter`` covers one bucket, not two with
per-request costs).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

CHARS_PER_TOKEN = 4


def estimate_tokens(payload: dict[str, Any] | None) -> int:
    """Rough token cost of one request: prompt characters / 4 plus ``max_tokens`` x ``n``."""
    if not payload:
        return 1
    text = payload.get("messages") or payload.get("prompt") or ""
    if not isinstance(text, str):
        text = json.dumps(text, ensure_ascii=False)
    return len(text) // CHARS_PER_TOKEN + int(payload.get("max_tokens") or 16) * int(payload.get("n") or 1)


class _Bucket:
    """``per_minute`` units, refilled continuously, holding one second's worth (at least 1);
    ``wait_for(cost)`` returns the seconds to wait, ``pay(cost)`` spends (possibly into debt)."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def wait_for(self, cost: float) -> float:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        need = min(cost, self.capacity) - self.level
        return max(0.0, need / self.rate)

    def pay(self, cost: float) -> None:
        self.level -= cost


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits shared by every request of one pool.

    ``requests_per_minute`` / ``tokens_per_minute``: None for no limit. ``await acquire(tokens)``
    returns once the request may be sent (both buckets paid); ``waited`` sums the seconds spent
    waiting, for the run's statistics.
    """

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None):
        self.requests = _Bucket(requests_per_minute) if requests_per_minute else None
        self.tokens = _Bucket(tokens_per_minute) if tokens_per_minute else None
        self.waited = 0.0
        self._lock: asyncio.Lock | None = None

    @property
    def active(self) -> bool:
        return self.requests is not None or self.tokens is not None

    async def acquire(self, tokens: int = 1) -> None:
        """Wait until one request of about ``tokens`` tokens fits both limits, then pay for it."""
        if not self.active:
            return
        if self._lock is None:  # made inside the running loop (a pool may live across loops)
            self._lock = asyncio.Lock()
        async with self._lock:  # first come, first served: a large request is not starved
            while True:
                wait = max(b.wait_for(cost) for b, cost in ((self.requests, 1), (self.tokens, tokens)) if b)
                if wait <= 0:
                    break
                self.waited += wait
                await asyncio.sleep(wait)
            for bucket, cost in ((self.requests, 1), (self.tokens, tokens)):
                if bucket:
                    bucket.pay(cost)

    def reset_loop(self) -> None:
        """Forget the lock bound to a finished event loop (each backend call runs its own loop)."""
        self._lock = None
