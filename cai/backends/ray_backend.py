"""Many copies of one backend as Ray actors: a batch call is split into shards, fanned out to the
workers and gathered back in order.

Every stage already hands its whole batch to one backend call, so wrapping the backend is all the
stages need: ``generate``, ``sample`` and ``label`` keep their loops, and the driver (the process
that runs the stage) alone writes the append-only outputs, so resume and exactly-once hold as in
a single process. Chosen with ``BackendConfig.workers`` above 1 or a ``ray_address``
(``--workers N --ray-address ADDR`` on the CLI); :func:`cai.backends.load_backend` does the
wrapping::

    backend = load_backend(backend="vllm", model="m", workers=4, ray_address="auto")
    backend.generate(conversations, sampling)   # same rows, same order as with one process

Each worker builds its own backend from the same config (``workers=1``), so any registered backend
works (vLLM with its own tensor-parallel size, transformers, openai, scripted). Shards are handed
out one at a time to idle workers (a slow worker takes fewer). When a worker dies mid-call (node
lost, SIGKILL, OOM), Ray restarts it and its shard goes back to the queue for whichever worker is
idle next; the call returns once every shard has exactly one result. Shards are pure functions of
their rows, so a retry cannot change or duplicate an output. A worker that fails
``MAX_WORKER_FAILURES`` times in a row is retired; with none left the call fails with a
:class:`~cai.core.errors.CaiError`.

Same outputs as one process: greedy decoding and per-request seeded sampling (vLLM, transformers)
give the same text whatever the shard.

Why not Ray Data's LLM batch API (``ray.data.llm.build_llm_processor``): it fits a one-shot
"dataset in, dataset out" job with a vLLM engine, but the stages here interleave model calls with
Python between them (critiques of this round's drafts, revisions of the critiques that asked for
one), score option log-probabilities rather than decode (no ``score_choices``), and must run any
registered backend, including transformers and a scripted one for tests. Its executor would also
own the output files, while resume and exactly-once here rest on the driver being the only writer.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
from collections import deque
from typing import Any

from cai.backends.base import (
    Backend,
    BackendConfig,
    Batch,
    Completion,
    Labels,
    RowsRejected,
    SamplingConfig,
    as_conversations,
    option_lists,
)
from cai.core.errors import CaiError, require

SHARDS_PER_WORKER = 2
"""A batch is cut into about this many shards per live worker: enough to even out speeds and to
hand a dead worker's shard to another, few enough to keep each backend call a large batch."""
MAX_WORKER_FAILURES = 3
"""A worker whose calls fail this many times in a row (it keeps dying) is retired."""
MAX_SHARD_ATTEMPTS = 5
"""A shard whose worker died this many times is not retried again (it may be what kills them)."""
log = logging.getLogger("cai.backends")


class BackendWorker:
    """The Ray actor: one backend built from the config, answering the batch calls."""

    def __init__(self, config: dict[str, Any]):
        import sys

        from cai.backends.registry import backend_class

        cfg = BackendConfig.model_validate(config)  # workers=1: the plain backend, in this actor
        self.backend = backend_class(cfg.backend)(cfg)
        print(f"cai: backend {cfg.backend} (Ray worker), model {cfg.model}", file=sys.stderr, flush=True)

    def pid(self) -> int:
        return os.getpid()

    def describe(self) -> dict[str, Any]:
        return self.backend.describe()

    def generate(self, conversations, sampling) -> tuple[list, dict[int, str]]:
        """``(completions, rejected rows)``: a rejected row does not stop the shard."""
        from cai.backends.rows import generate_rows

        return generate_rows(self.backend, conversations, sampling)

    def score_choices(self, prompts, options) -> tuple[list, dict[int, str]]:
        from cai.backends.rows import score_rows

        return score_rows(self.backend, prompts, options)

    def close(self) -> None:
        self.backend.close()


class RayBackend(Backend):
    """``config.workers`` Ray actors, each holding the backend ``config.backend`` names.

    ``config`` is the plain backend's config plus ``workers``/``ray_address``/``worker_gpus``;
    ``self.config`` keeps it, so provenance names the real backend. Raises
    :class:`~cai.core.errors.CaiError` when Ray is missing, a worker cannot build its backend, or every
    worker has died.
    """

    name = "ray"

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        ray = require("ray", extra="ray", purpose="--workers / --ray-address (Ray workers)")
        self._ray = ray
        self._started_ray = False
        if not ray.is_initialized():
            self._start_ray(config)
        inner = config.model_copy(update={"workers": 1, "ray_address": None, "worker_gpus": None})
        gpus = self._worker_gpus(config)
        actor = ray.remote(BackendWorker).options(
            num_cpus=1, num_gpus=gpus, max_restarts=-1, max_task_retries=0
        )
        self._workers = [actor.remote(inner.model_dump(mode="json")) for _ in range(config.workers)]
        self._failures = [0] * config.workers
        self._retired: set[int] = set()
        try:
            self.pids = self._wait_ready(gpus)
            self._describe = ray.get(self._workers[0].describe.remote())
        except ray.exceptions.RayError as exc:
            self.close()
            raise CaiError(f"a Ray worker could not start the {config.backend} backend: "
                           f"{_last_line(exc)}") from None
        self.retried_shards = 0
        """Shards handed to another worker after theirs died (over this backend's life)."""
        atexit.register(self.close)

    def _wait_ready(self, gpus: float) -> list[int]:
        """The workers' process ids once every one has built its backend. Fails at once when the
        cluster could never hold them; says every minute what it is waiting for."""
        ray = self._ray
        total = ray.cluster_resources()
        n = len(self._workers)
        if total.get("CPU", 0) < n or total.get("GPU", 0) < gpus * n:
            self.close()
            raise CaiError(f"{n} Ray workers need {n} CPUs and {gpus * n:g} GPUs; the cluster has "
                           f"{total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs")
        refs = [w.pid.remote() for w in self._workers]
        while True:
            ready, waiting = ray.wait(refs, num_returns=len(refs), timeout=60)
            if not waiting:
                return ray.get(refs)
            free = ray.available_resources()
            log.warning("waiting for %d of %d Ray workers to start (free: %g CPUs, %g GPUs)", len(waiting), n,
                        free.get("CPU", 0), free.get("GPU", 0))

    def _start_ray(self, config: BackendConfig) -> None:
        ray = self._ray
        if config.ray_address:
            # Ship this process's `cai` to the cluster so every worker runs the driver's code.
            import cai

            ray.init(address=config.ray_address, log_to_driver=False,
                     runtime_env={"py_modules": [os.path.dirname(cai.__file__)]})
        else:  # a local instance, big enough for the workers asked for
            ray.init(num_cpus=max(config.workers, os.cpu_count() or 1), include_dashboard=False,
                     log_to_driver=False)
        self._started_ray = True

    def _worker_gpus(self, config: BackendConfig) -> float:
        if config.worker_gpus is not None:
            return config.worker_gpus
        if not self._ray.cluster_resources().get("GPU", 0):
            return 0
        return float(getattr(self.options, "tensor_parallel_size", 1))

    @property
    def live_workers(self) -> int:
        return len(self._workers) - len(self._retired)

    def describe(self) -> dict[str, Any]:
        return {**self._describe, "workers": len(self._workers)}

    def generate(
        self, conversations: Batch, sampling: SamplingConfig | None = None
    ) -> list[list[Completion]]:
        rows = as_conversations(conversations)
        s = sampling or SamplingConfig()
        return self._fan_out("generate", [(piece, s) for piece in self._split(rows)])

    def score_choices(self, prompts: Batch, options: Labels) -> list[dict[str, float]]:
        rows = as_conversations(prompts)
        if not rows:
            return []
        lists = option_lists(options, len(rows))
        shards, start = [], 0
        for piece in self._split(rows):
            shards.append((piece, lists[start:start + len(piece)]))
            start += len(piece)
        return self._fan_out("score_choices", shards)

    def _split(self, rows: list) -> list[list]:
        """Contiguous shards of about equal size (concatenated, they are ``rows`` again)."""
        if not rows:
            return []
        size = math.ceil(len(rows) / max(1, SHARDS_PER_WORKER * self.live_workers))
        return [rows[i:i + size] for i in range(0, len(rows), size)]

    def _fan_out(self, method: str, shards: list[tuple]) -> list:
        """Run ``method(*shard)`` for every shard on idle workers; results concatenated in shard
        order. A shard whose worker died is queued again (at the front) for another worker."""
        ray = self._ray
        dead_errors = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                       ray.exceptions.ObjectLostError)
        results: list = [None] * len(shards)
        pending = deque(range(len(shards)))
        attempts = [0] * len(shards)
        idle = deque(i for i in range(len(self._workers)) if i not in self._retired)
        running: dict = {}  # ObjectRef -> (shard index, worker index)
        while pending or running:
            while pending and idle:
                shard, worker = pending.popleft(), idle.popleft()
                ref = getattr(self._workers[worker], method).remote(*shards[shard])
                running[ref] = (shard, worker)
            if not running:
                raise CaiError(f"every Ray worker died; {len(pending)} of {len(shards)} shards "
                               "of this batch got no result")
            [ref], _ = ray.wait(list(running), num_returns=1)
            shard, worker = running.pop(ref)
            try:
                results[shard] = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the backend raised: not a lost worker
                cause = exc.cause if isinstance(getattr(exc, "cause", None), Exception) else None
                if isinstance(cause, CaiError):
                    raise cause from None
                raise CaiError(f"Ray worker {worker} ({method}): {_last_line(exc)}") from None
            except dead_errors:
                attempts[shard] += 1
                self.retried_shards += 1
                if attempts[shard] >= MAX_SHARD_ATTEMPTS:
                    raise CaiError(f"a shard of {len(shards[shard][0])} rows killed its Ray worker "
                                   f"{attempts[shard]} times; giving up") from None
                pending.appendleft(shard)
                self._failures[worker] += 1
                if self._failures[worker] >= MAX_WORKER_FAILURES:
                    self._retired.add(worker)
                else:
                    idle.append(worker)  # Ray restarts it; calls wait for the new process
                continue
            self._failures[worker] = 0
            idle.append(worker)
        rejected, start = {}, 0
        for (piece, *_), (_, reasons) in zip(shards, results, strict=True):
            rejected.update({start + i: why for i, why in reasons.items()})
            start += len(piece)
        rows = [row for part, _ in results for row in part]
        if rejected:  # the other rows ran: hand their results over with the reasons
            raise RowsRejected(rejected, partial=rows)
        return rows

    def close(self) -> None:
        workers, self._workers = getattr(self, "_workers", []), []
        ray = getattr(self, "_ray", None)
        if ray is None or not ray.is_initialized():
            return
        for w in workers:
            try:
                ray.kill(w, no_restart=True)
            except Exception:  # already gone
                pass
        if self._started_ray:
            self._started_ray = False
            ray.shutdown()


def _last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__
