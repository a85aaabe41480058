"""A burst of raters on the labeling page: labels stored, lost and duplicated, and API latency.

Starts a real ``cai humans serve`` (a child process on 127.0.0.1, any free port) over ``--tasks``
generated pairs with ``--raters-per-task`` K, then lets ``--raters`` raters loose at once, each on
its own keep-alive HTTP connection (coroutines on one event loop): ask ``/api/next``, post a pick to
``/api/label``, repeat until the page says nothing is left for them (a rater whose tasks are all
held by others waits ``--poll`` seconds and asks again, as the page does). Every request is timed
on the client, from sending to the whole answer read.

Afterwards the SQLite file is read directly (the server stopped):

- ``stored``: labels in the database, against the ``tasks x K`` expected;
- ``lost``: labels the server acknowledged (``stored: true``) that the database does not hold;
- ``duplicated``: labels beyond K on a task, plus any (task, rater) held twice;
- per endpoint: requests, and the 50th/90th/99th percentile and maximum latency in milliseconds.

It exits 1 when a label is lost or duplicated, or fewer than expected are stored.

    python benchmarks/labeling_burst.py                          # 50 raters x 300 tasks x 3 (issue 28, item 11)
    python benchmarks/labeling_burst.py --raters 5 --tasks 10    # the smoke size (tests/test_labeling_burst.py)

Each rater first opens its connection and asks ``/api/config`` (its page is loaded), then all start
together. The client (one light asyncio loop) shares the machine's cores with the server, so the
figures include its time and whatever else the machine runs: the line printed first gives the
load average and the number of cores; compare runs made side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlparse

REPO = Path(__file__).resolve().parent.parent


def write_tasks(path: Path, n: int) -> None:
    """n distinct pairs as JSONL (prompt, chosen, rejected)."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"prompt": f"Question {i}: what is {i} plus {i}?", "chosen": f"It is {2 * i}.",
                                "rejected": f"It is {2 * i + 1}."}) + "\n")


class Server:
    """``cai humans serve`` as a child process; ``port`` read from the URL it prints."""

    def __init__(self, tasks: Path, db: Path, k: int, timeout: float = 60.0):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        cmd = [sys.executable, "-m", "cai.cli.main", "humans", "serve", str(tasks), "--db", str(db), "--port", "0",
               "--raters-per-task", str(k)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.output: list[str] = []
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._drain, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + timeout
        self.port = None
        while self.port is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise SystemExit(f"the server printed no URL in {timeout:.0f} s:\n" + "".join(self.output)) from None
            if line is None:
                raise SystemExit(f"the server exited with {self.proc.wait()}:\n" + "".join(self.output))
            if line.startswith("labeling page: "):
                self.port = urlparse(line.split(": ", 1)[1].strip()).port

    def _drain(self, lines: queue.Queue) -> None:
        for line in self.proc.stdout:
            self.output.append(line)
            lines.put(line)
        lines.put(None)

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system, all threads) the server process has used so far; None off Linux."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Connection:
    """A minimal HTTP/1.1 keep-alive client over asyncio streams, for JSON requests to the server.

    Kept to what ``cai humans serve`` answers (Content-Length bodies): a full client (httpx) spent
    more CPU per request than the server on a 2-core machine, which inflated the figures."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Length: {len(data)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        self.writer.write(head.encode() + b"\r\n" + data)
        status_line = await self.reader.readline()
        status, length = int(status_line.split()[1]), 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        raw = await self.reader.readexactly(length) if length else b""
        return status, json.loads(raw) if raw.startswith(b"{") else {}

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Rater:
    """One rater: next, label, repeat, on its own keep-alive connection; records latencies and
    acks. Raters are coroutines on one event loop, not threads: 50 client threads woken at once
    queue for the client's own GIL, which showed up as server latency."""

    def __init__(self, conn: Connection, name: str, poll: float, deadline: float):
        self.conn, self.name, self.poll, self.deadline = conn, name, poll, deadline
        self.times: dict[str, list[float]] = {"next": [], "label": []}
        self.acked: list[str] = []  # task ids the server said it stored
        self.status: dict[int, int] = {}
        self.error: str | None = None

    async def call(self, kind: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        t0 = time.perf_counter()
        status, data = await self.conn.request(method, path, body)
        self.times[kind].append(time.perf_counter() - t0)
        self.status[status] = self.status.get(status, 0) + 1
        return status, data

    async def run(self, start: asyncio.Event) -> None:
        choices = ("A", "B", "tie")
        try:
            await start.wait()
            i = 0
            while time.monotonic() < self.deadline:
                status, data = await self.call("next", "GET", "/api/next?labeler=" + quote(self.name))
                if status != 200:
                    raise RuntimeError(f"/api/next answered {status}: {data}")
                task = data["task"]
                if task is None:
                    p = data["progress"]
                    if p["labeled"] >= p["total"] or p["left_for_me"] == 0:
                        return
                    await asyncio.sleep(self.poll)  # the tasks left are held by other raters right now
                    continue
                choice = choices[(sum(map(ord, self.name)) + i) % 3]
                i += 1
                status, data = await self.call("label", "POST", "/api/label",
                                               {"labeler": self.name, "task": task["id"], "choice": choice,
                                                "seconds": 1.0})
                if status == 200 and data.get("stored"):
                    self.acked.append(task["id"])
                elif status not in (200, 409):
                    raise RuntimeError(f"/api/label answered {status}: {data}")
            self.error = "ran out of time"
        except Exception as exc:  # noqa: BLE001 - reported per rater below
            self.error = f"{type(exc).__name__}: {exc}"


async def burst(port: int, n: int, poll: float, timeout: float, cpu=lambda: None) -> tuple[list[Rater], float, float | None]:
    """Run n raters at once against the server on 127.0.0.1:port; (raters, wall seconds, server
    CPU seconds during the burst: ``cpu()`` read before and after)."""
    deadline = time.monotonic() + timeout
    conns = [Connection(port) for _ in range(n)]
    try:
        # every rater has the page open first (connection open, /api/config answered: the server
        # is up, not just listening); then the burst starts at once
        await asyncio.gather(*(c.open() for c in conns))
        for c in conns:
            status, _ = await c.request("GET", "/api/config")
            if status != 200:
                raise SystemExit(f"/api/config answered {status}")
        raters = [Rater(c, f"rater-{i:03d}", poll, deadline) for i, c in enumerate(conns)]
        start = asyncio.Event()
        runs = [asyncio.ensure_future(r.run(start)) for r in raters]
        t0, cpu0 = time.perf_counter(), cpu()
        start.set()
        await asyncio.gather(*runs)
        cpu1 = cpu()
        return raters, time.perf_counter() - t0, None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    finally:
        for c in conns:
            await c.close()


def percentiles(values: list[float]) -> dict:
    """p50/p90/p99/max in milliseconds (nearest-rank), and n."""
    if not values:
        return {"n": 0}
    s = sorted(values)

    def rank(q: float) -> float:
        return s[min(len(s) - 1, max(0, int(round(q * len(s) + 0.5)) - 1))] * 1000

    return {"n": len(s), "p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": s[-1] * 1000}


def audit(db: Path, acked: list[tuple[str, str]], k: int) -> dict:
    """Labels in the database against what the server acknowledged (see the module docstring)."""
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT t.pair_id, l.labeler FROM labels l JOIN tasks t ON t.n = l.task").fetchall()
        per_task = con.execute("SELECT COUNT(*) FROM labels GROUP BY task").fetchall()
    held = set(rows)
    doubles = len(rows) - len(held) + sum(max(0, c - k) for (c,) in per_task)
    lost = sum((task, name) not in held for name, task in acked)
    return {"stored": len(rows), "lost": lost, "duplicated": doubles, "acked": len(acked)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raters", type=int, default=50)
    ap.add_argument("--tasks", type=int, default=300)
    ap.add_argument("--raters-per-task", type=int, default=3)
    ap.add_argument("--poll", type=float, default=0.05, help="seconds a rater waits when its tasks are all held")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds before the burst is called off")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    k = args.raters_per_task
    expected = args.tasks * k
    with tempfile.TemporaryDirectory(prefix="cai-burst-") as tmp:
        tasks, db = Path(tmp, "tasks.jsonl"), Path(tmp, "labels.sqlite")
        write_tasks(tasks, args.tasks)
        server = Server(tasks, db, k)
        try:
            raters, wall, cpu = asyncio.run(burst(server.port, args.raters, args.poll, args.timeout, server.cpu_seconds))
        finally:
            server.stop()
        figures = audit(db, [(r.name, t) for r in raters for t in r.acked], k)
    errors = [f"{r.name}: {r.error}" for r in raters if r.error]
    status: dict[int, int] = {}
    for r in raters:
        for code, n in r.status.items():
            status[code] = status.get(code, 0) + n
    lat = {kind: percentiles([t for r in raters for t in r.times[kind]]) for kind in ("next", "label")}
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores" if hasattr(os, "getloadavg") else ""
    print(f"labeling burst: {args.raters} raters, {args.tasks} tasks x {k} raters each, on 127.0.0.1, {wall:.1f} s; "
          f"{load}")
    print(f"labels stored {figures['stored']} of {expected} expected; acknowledged {figures['acked']}; "
          f"lost {figures['lost']}; duplicated {figures['duplicated']}")
    print("answers: " + ", ".join(f"{code} x{n}" for code, n in sorted(status.items())))
    requests = sum(status.values())
    if cpu is not None and requests:
        # what a busy machine divides: the server's own CPU per answered request (load-independent)
        print(f"server CPU {cpu:.2f} s for {requests} requests: {1000 * cpu / requests:.2f} ms per request")
    print(f"{'endpoint':<11} {'n':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, p in lat.items():
        if p["n"]:
            print(f"/api/{kind:<6} {p['n']:>6} {p['p50']:>8.1f} {p['p90']:>8.1f} {p['p99']:>8.1f} {p['max']:>8.1f}")
    for e in errors[:10]:
        print(f"rater failed: {e}")
    if args.json:
        Path(args.json).write_text(json.dumps({"raters": args.raters, "tasks": args.tasks, "raters_per_task": k,
                                               "expected": expected, "wall_s": wall, "server_cpu_s": cpu, **figures, "status": status,
                                               "latency_ms": lat, "errors": errors}, indent=2))
    ok = not errors and figures["lost"] == 0 and figures["duplicated"] == 0 and figures["stored"] == expected
    if not ok:
        print("FAILED: labels lost, duplicated or missing, or a rater failed", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
