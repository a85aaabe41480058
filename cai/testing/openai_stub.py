"""A small real OpenAI-compatible HTTP server with a scripted reply, for failover tests and
benchmarks where a pair of ``vllm serve`` processes would be too heavy.

    python -m cai.testing.openai_stub --port 8001 --delay 0.2 --log served.jsonl

Answers ``POST /v1/chat/completions`` and ``POST /v1/completions`` with ``"<name>: <last message>"``
after ``--delay`` seconds (like a model at work), ``GET /health`` and ``GET /v1/models``. Each
answered request appends ``{"server", "content"}`` to ``--log``, so a test can count what every
replica served. :class:`StubServer` runs one as a child process that a test can SIGKILL.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cai.testing.server import free_port


def serve(port: int, name: str, delay: float, log: str | None, model: str = "stub") -> None:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _json(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                return self._json(200, {})
            if self.path == "/v1/models":
                return self._json(200, {"object": "list", "data": [{"id": model, "object": "model"}]})
            self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path == "/v1/chat/completions":
                content = body["messages"][-1]["content"]
                make = lambda text: {"message": {"role": "assistant", "content": text}}  # noqa: E731
            elif self.path == "/v1/completions":
                content = body["prompt"]
                make = lambda text: {"text": text}  # noqa: E731
            else:
                return self._json(404, {"error": {"message": f"no route {self.path}"}})
            time.sleep(delay)
            n = int(body.get("n", 1))
            text = f"{name}: {content}"
            if log:
                with lock, open(log, "a") as fh:
                    fh.write(json.dumps({"server": name, "content": content}) + "\n")
            self._json(200, {
                "object": "chat.completion", "model": model,
                "choices": [{"index": i, "finish_reason": "stop", **make(text)} for i in range(n)],
                "usage": {"prompt_tokens": len(content.split()), "completion_tokens": len(text.split()) * n},
            })

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    httpd.serve_forever(0.05)


class StubServer:
    """:func:`serve` in a child process on a free (or given) port of 127.0.0.1."""

    def __init__(self, name: str, *, delay: float = 0.0, log: str | Path | None = None, port: int | None = None):
        self.name, self.port = name, port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        cmd = [sys.executable, "-m", "cai.testing.openai_stub", "--port", str(self.port), "--name", name,
               "--delay", str(delay)] + (["--log", str(log)] if log else [])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parents[2]),
                                                                     os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"stub server {self.name} exited with {self.proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"stub server {self.name} did not start within {timeout:g} s")

    def kill(self) -> None:
        """SIGKILL: the server dies with its requests in flight."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> StubServer:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="stub")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--log")
    parser.add_argument("--model", default="stub")
    a = parser.parse_args()
    serve(a.port, a.name, a.delay, a.log, a.model)
