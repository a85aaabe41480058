"""HTTP for the ``openai`` backend: several base URLs, bounded concurrency, retries with backoff.

Requests are spread over the base URLs by row (row i goes to URL i mod N first) and a retry moves
to the next URL, so a dead replica costs one attempt, not the batch. Retried: timeouts, connection
errors, 408, 409, 425, 429 and 5xx. The wait before a retry is the exponential backoff
(``backoff`` doubling, capped at ``max_backoff``) or, when the server sends ``Retry-After``
(seconds or an HTTP date), that long, up to ``max_retry_wait`` seconds (a longer Retry-After is
waited for ``max_retry_wait`` and said once). Other 4xx answers are raised at once as
:class:`HTTPError` for the caller to interpret (context overflow, unknown model...); they never
change on a retry, so they carry ``permanent = True``, as does :class:`ServerCannot` (a server
lacks a feature) and a :class:`BatchFailed` caused by either: callers that retry whole calls (the
online-RL reward) read that attribute and do not retry them. When the retries are spent, the
error names the options that would let the request through (``max_retries``,
``max_retry_wait``, ``requests_per_minute``...).

Rate limits: besides ``max_concurrency`` (requests in flight), ``requests_per_minute`` and
``tokens_per_minute`` (:mod:`cai.backends.ratelimit`) pace the requests client-side.

Health: a replica that fails to answer (connection refused or reset, timeout, 502/503/504) is
marked down; requests then go only to the replicas that are up, including the retries of those
that were in flight on it, so a replica dying mid-run loses no row and each row still gets exactly
one answer. A down replica is probed (``GET /health``, else ``/v1/models``) at most every
``health_interval`` seconds and takes requests again once it answers. With every replica down,
requests try them all (one may be back).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx

from cai.backends.ratelimit import RateLimiter, estimate_tokens
from cai.core.errors import CaiError

T = TypeVar("T")
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
DOWN_STATUS = {502, 503, 504}
"""Answers that say the replica itself is unavailable (not just this request)."""
log = logging.getLogger("cai.backends")


class HTTPError(CaiError):
    """A non-retryable answer (4xx) from a server: the same request gets the same answer."""

    permanent = True

    def __init__(self, url: str, status: int, detail: str):
        self.url, self.status, self.detail = url, status, detail
        super().__init__(f"{url} answered {status}: {detail}")


class ServerCannot(CaiError):
    """The server lacks what the request needs (continuing an assistant message, log-probs...):
    retrying cannot help."""

    permanent = True


class RequestFailed(CaiError):
    """A request still failed after all retries (the server may recover: not permanent)."""

    permanent = False


class BatchFailed(CaiError):
    """Some rows of a batch failed; ``partial`` holds the results that did arrive (None where
    a row failed or was cancelled), so no finished work is silently lost."""

    def __init__(self, message: str, partial: list[Any], failed_rows: list[int], permanent: bool = False):
        self.partial, self.failed_rows, self.permanent = partial, failed_rows, permanent
        super().__init__(message)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        err = body.get("error", body) if isinstance(body, dict) else body
        msg = err.get("message", err) if isinstance(err, dict) else err
        return str(msg)[:500]
    except ValueError:
        return response.text[:500] or response.reason_phrase


class ServerPool:
    """POST/GET JSON with retries over a list of base URLs."""

    def __init__(
        self,
        base_urls: Sequence[str],
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_concurrency: int = 16,
        health_interval: float = 5.0,
        max_retry_wait: float = 60.0,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
    ):
        if not base_urls:
            raise CaiError("openai backend: no base_urls given")
        self.base_urls = [u.rstrip("/") for u in base_urls]
        self.headers = headers or {}
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.max_concurrency = max_concurrency
        self.health_interval = health_interval
        self.max_retry_wait = max_retry_wait
        self.limiter = RateLimiter(requests_per_minute, tokens_per_minute)
        self.stats: dict[str, float] = {"retries": 0, "retry_after_seconds": 0.0}
        """Retries (attempts after the first) and seconds waited for Retry-After, over the pool's life."""
        self._said_long_wait = self._said_wait = False
        self.down: dict[int, float] = {}
        """Replicas marked down: base URL index -> when last probed (monotonic seconds)."""
        self._probing: set[int] = set()
        self._probes: set[asyncio.Future] = set()
        self.sent = [0] * len(self.base_urls)
        """Requests sent to each base URL (attempts, not probes), over the pool's life."""
        self._client: httpx.AsyncClient | None = None
        self._gate: asyncio.Semaphore | None = None

    async def __aenter__(self) -> ServerPool:
        limits = httpx.Limits(max_connections=self.max_concurrency)
        self._client = httpx.AsyncClient(headers=self.headers, timeout=self.timeout, limits=limits)
        self._gate = asyncio.Semaphore(self.max_concurrency)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._client.aclose()
        self._client = self._gate = None
        self.limiter.reset_loop()
        self._probing.clear()

    def replica(self, row: int, attempt: int) -> int:
        """Index of the base URL for this row's attempt: row + attempt mod N, skipping replicas
        marked down (all of them when every one is down)."""
        n = len(self.base_urls)
        order = [(row + attempt + k) % n for k in range(n)]
        up = [i for i in order if i not in self.down]
        return (up or order)[0]

    def url(self, row: int, attempt: int, path: str, *, root: bool = False, replica: int | None = None) -> str:
        base = self.base_urls[self.replica(row, attempt) if replica is None else replica]
        if root and base.endswith("/v1"):
            base = base[: -len("/v1")]
        return base + path

    def mark_down(self, replica: int, why: str) -> None:
        if replica not in self.down:
            others = [i for i in range(len(self.base_urls)) if i != replica and i not in self.down]
            where = ("its requests go to the others" if others else
                     "no other replica is up, so requests keep retrying it" if len(self.base_urls) > 1 else
                     "requests keep retrying it")
            log.warning("replica %s is down (%s); %s", self.base_urls[replica], why, where)
        self.down.setdefault(replica, time.monotonic())

    def _probe_due(self) -> None:
        """Start a health probe of each down replica not probed within ``health_interval``."""
        now = time.monotonic()
        for replica, last in list(self.down.items()):
            if now - last >= self.health_interval and replica not in self._probing:
                self.down[replica] = now
                self._probing.add(replica)
                task = asyncio.ensure_future(self._probe(replica))
                self._probes.add(task)  # a reference, so the task is not collected mid-probe
                task.add_done_callback(self._probes.discard)

    async def _probe(self, replica: int) -> None:
        """GET /health (or /v1/models) on its own connection, outside the concurrency limit."""
        try:
            async with httpx.AsyncClient(headers=self.headers, timeout=min(self.timeout, 5.0)) as client:
                for path, root in (("/health", True), ("/models", False)):
                    try:
                        response = await client.get(self.url(0, 0, path, root=root, replica=replica))
                    except httpx.HTTPError:  # refused or timed out: still down
                        return
                    if response.status_code < 400:
                        log.warning("replica %s is back", self.base_urls[replica])
                        self.down.pop(replica, None)
                        return
        finally:
            self._probing.discard(replica)

    async def request(
        self,
        method: str,
        path: str,
        payload: dict | None = None,
        *,
        row: int = 0,
        root: bool = False,
    ) -> Any:
        """JSON answer of ``method`` ``path`` (on the server root instead of /v1 if ``root``).

        Raises :class:`HTTPError` on a 4xx that a retry cannot change, :class:`RequestFailed` once
        ``max_retries`` retries are spent (naming the options to change)."""
        last, limited = "", False
        for attempt in range(self.max_retries + 1):
            delay = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
            await self.limiter.acquire(estimate_tokens(payload) if method == "POST" else 1)
            async with self._gate:
                self._probe_due()
                replica = self.replica(row, attempt)
                url = self.url(row, attempt, path, root=root, replica=replica)
                self.sent[replica] += 1
                try:
                    response = await self._client.request(method, url, json=payload)
                except httpx.TimeoutException:
                    last = f"{url}: no answer within {self.timeout:g} s"
                    self.mark_down(replica, "timeout")
                except httpx.TransportError as exc:
                    last = f"{url}: {type(exc).__name__}: {exc or 'connection failed'}"
                    self.mark_down(replica, type(exc).__name__)
                else:
                    if response.status_code < 400:
                        try:
                            return response.json()
                        except ValueError:
                            last = f"{url}: answer is not JSON"
                    elif response.status_code in RETRY_STATUS:
                        last = f"{url} answered {response.status_code}: {_detail(response)}"
                        limited = limited or response.status_code == 429
                        after = _retry_after(response)
                        if after > 0:  # the server says when: wait that long (up to max_retry_wait)
                            delay = self._honoured(after)
                        if response.status_code in DOWN_STATUS:
                            self.mark_down(replica, f"HTTP {response.status_code}")
                    else:
                        raise HTTPError(url, response.status_code, _detail(response))
            if self.down and len(self.down) < len(self.base_urls) and replica in self.down:
                continue  # failing over to a live replica: no need to wait
            if attempt < self.max_retries:
                self.stats["retries"] += 1
                await asyncio.sleep(delay)
        hint = (f"to retry longer: -O max_retries=N (now {self.max_retries}) -O max_retry_wait=SECONDS "
                f"(now {self.max_retry_wait:g})")
        if limited:
            hint += "; to send less: -O requests_per_minute=N -O tokens_per_minute=N -O max_concurrency=N"
        raise RequestFailed(f"request failed after {self.max_retries + 1} attempts: {last} ({hint})")

    def _honoured(self, retry_after: float) -> float:
        """Seconds to wait for a ``Retry-After`` of ``retry_after``: all of it, up to ``max_retry_wait``."""
        wait = min(retry_after, self.max_retry_wait)
        if retry_after > self.max_retry_wait and not self._said_long_wait:
            self._said_long_wait = True
            log.warning("the server asks to wait %.0f s before retrying; waiting max_retry_wait = %g s "
                        "(raise it with -O max_retry_wait=SECONDS)", retry_after, self.max_retry_wait)
        elif wait >= 5 and not self._said_wait:  # a silent half-minute would look like a hang
            self._said_wait = True
            log.warning("the server is rate-limiting (Retry-After %.0f s): waiting before retrying "
                        "(-O requests_per_minute / tokens_per_minute pace requests below its limits)", wait)
        self.stats["retry_after_seconds"] += wait
        return wait


def _retry_after(response: httpx.Response) -> float:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date); 0 when absent or unreadable.
    ``retry-after-ms`` (the OpenAI API's own header) is read too."""
    headers = response.headers
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
    except ValueError:
        pass
    value = headers.get("retry-after", "").strip()
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    from datetime import datetime, timezone

    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


async def gather_rows(n_rows: int, work: Callable[[int], Awaitable[T]], what: str) -> list[T]:
    """Run ``work(i)`` for every row concurrently; on the first failure cancel the rest and raise
    :class:`BatchFailed` carrying what finished. A row whose work raises
    :class:`~cai.backends.base.PromptRejected` fails alone: the others finish, then
    :class:`~cai.backends.base.RowsRejected` names the rejected rows and carries the others' results."""
    from cai.backends.base import PromptRejected, RowsRejected

    rejected: dict[int, str] = {}

    async def guarded(i: int):
        try:
            return await work(i)
        except PromptRejected as exc:
            rejected[i] = exc.message.removeprefix(f"row {i}: ")
            return None

    results = await _gather_rows(n_rows, guarded, what)
    if rejected:
        raise RowsRejected(rejected, partial=results)
    return results


async def _gather_rows(n_rows: int, work: Callable[[int], Awaitable[T]], what: str) -> list[T]:
    results: list[Any] = [None] * n_rows
    tasks = {asyncio.ensure_future(work(i)): i for i in range(n_rows)}
    failure: tuple[int, BaseException] | None = None
    pending = set(tasks)
    while pending and failure is None:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is None:
                results[tasks[task]] = task.result()
            elif failure is None or tasks[task] < failure[0]:
                failure = (tasks[task], task.exception())
    if failure is None:
        return results
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    row, exc = failure
    if not isinstance(exc, CaiError):
        raise exc
    message = exc.message.removeprefix(f"row {row}: ")
    failed = [i for i, r in enumerate(results) if r is None]
    done = n_rows - len(failed)
    raise BatchFailed(
        f"openai backend: {what}, row {row}: {message} ({done} of {n_rows} rows finished, "
        "kept in the error's .partial)",
        results,
        failed,
        permanent=bool(getattr(exc, "permanent", False)),
    )


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, also when an event loop is running."""
    try:
        asyncio.get_running_loop()
        running = True
    except RuntimeError:
        running = False
    if not running:
        return asyncio.run(make())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
