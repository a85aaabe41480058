"""Replica failover of the openai backend: two real local servers (cai.testing.openai_stub, child
processes on 127.0.0.1), one SIGKILLed mid-run; health probes bring it back."""

from __future__ import annotations

import json
import threading
import time

from cai.backends import load_backend
from cai.testing.openai_stub import StubServer


def backend(*urls, **options):
    return load_backend(backend="openai", model="stub", options={
        "base_urls": list(urls), "server": "generic", "max_concurrency": 8, "timeout": 10,
        "backoff": 0.01, "max_backoff": 0.05, "health_interval": 0.3, **options})


def test_replica_killed_mid_run_loses_and_duplicates_nothing(tmp_path):
    log = tmp_path / "served.jsonl"
    rows = [f"prompt {i}" for i in range(40)]
    with StubServer("a", delay=0.3, log=log) as a, StubServer("b", delay=0.3, log=log) as b:
        openai = backend(a.base_url, b.base_url)
        def kill_after_first_answers():  # a then holds requests of its second wave
            while '"server": "a"' not in (log.read_text() if log.exists() else ""):
                time.sleep(0.01)
            time.sleep(0.1)
            a.kill()

        killer = threading.Thread(target=kill_after_first_answers)
        killer.start()
        out = openai.generate(rows)
        killer.join()
        texts = [o[0].text for o in out]
        assert [t.split(": ", 1)[1] for t in texts] == rows  # every row, in order, its own answer
        assert {t.split(":")[0] for t in texts} == {"a", "b"}  # a answered some before it died
        assert 0 in openai.pool.down and 1 not in openai.pool.down
        served = [json.loads(line)["content"] for line in log.read_text().splitlines()]
        assert sorted(served) == sorted(rows)  # a's in-flight requests were answered once, by b
        # While a is down the next batch goes straight to b (no attempt wasted on a).
        sent = list(openai.pool.sent)
        again = openai.generate(rows[:8])
        assert {o[0].text.split(":")[0] for o in again} == {"b"}
        assert openai.pool.sent == [sent[0], sent[1] + 8]
        # a comes back on its port: a health probe notices and it takes requests again.
        with StubServer("a", port=a.port, log=log):
            for _ in range(10):  # a batch probes a replica down for over health_interval
                time.sleep(0.35)
                openai.generate(rows[:8])
                if not openai.pool.down:
                    break
            assert not openai.pool.down
            back = openai.generate(rows[:8])
            assert {o[0].text.split(":")[0] for o in back} == {"a", "b"}


def test_hung_replica_is_skipped_after_its_first_timeout(tmp_path):
    """A replica that stops answering (SIGSTOP: connections open, no replies) costs one timeout per
    in-flight request, then no more: later batches go to the live replica at once."""
    import os
    import signal

    rows = [f"prompt {i}" for i in range(8)]  # one wave: 4 rows wait on a until they time out
    with StubServer("a", delay=0.2) as a, StubServer("b", delay=0.2) as b:
        openai = backend(a.base_url, b.base_url, timeout=3.0, health_interval=30)
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            out = openai.generate(rows)
            assert [o[0].text for o in out] == [f"b: {r}" for r in rows]
            assert 0 in openai.pool.down
            sent = list(openai.pool.sent)
            again = openai.generate(rows)
            assert [o[0].text for o in again] == [f"b: {r}" for r in rows]
            assert openai.pool.sent == [sent[0], sent[1] + 8]  # no request (and timeout) on a
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
