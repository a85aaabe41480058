"""A small real OpenAI-compatible HTTP server with a scripted reply, for failover tests and
benchmarks where a pair of ``vllm serve`` processes would be too heavy, and for judging on servers
that are not vLLM.

    python -m cai.testing.openai_stub --port 8001 --delay 0.2 --log served.jsonl [--mode openai]

Answers ``POST /v1/chat/completions`` and ``POST /v1/completions`` after ``--delay`` seconds (like
a model at work), ``GET /health`` and ``GET /v1/models`` (``/version`` is 404: not vLLM). Each
answered request appends ``{"server", "content"}`` to ``--log``, so a test can count what every
replica served. :class:`StubServer` runs one as a child process that a test can SIGKILL.

``--mode``:

- ``echo`` (default): the reply is ``"<name>: <last message>"``.
- ``openai``: as the OpenAI API judges: vLLM-only fields (``continue_final_message``,
  ``logprob_token_ids``, ...) and ``top_logprobs`` above 20 are refused with 400, a final
  assistant message is not continued (a fresh reply starts with "The"), and a reply to a user
  message listing options ``(X) ...`` starts with the first option's label: ``top_logprobs``
  puts 0.6 on it, 0.3 on the second, the rest on other words.
- ``nologprobs``: as ``openai`` but ``logprobs`` is always null (Ollama before 0.12); the text
  is the first option's label.
- ``refuse-logprobs``: as ``nologprobs``, but a request asking for log-probs gets 400 (as the
  OpenAI API answers for its reasoning models).
- ``think``: a reasoning model: the first token is ``<think>`` (0.97); only the first label is
  listed, at 0.008.
- ``ratelimit``: 429 with ``Retry-After: <window>`` for the first ``--window`` seconds, then as
  ``openai``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cai.testing.server import free_port


VLLM_ONLY = ("continue_final_message", "add_generation_prompt", "logprob_token_ids", "return_token_ids",
             "return_tokens_as_token_ids", "truncate_prompt_tokens", "chat_template", "top_k", "min_p")


def _options(messages: list[dict]) -> list[str]:
    """Option labels ``(X)`` starting lines of the last user message."""
    users = [m for m in messages if m["role"] == "user"]
    return re.findall(r"^\((\w+)\)", users[-1]["content"], re.M) if users else []


def judge_reply(body: dict, mode: str) -> tuple[int, dict]:
    """``(status, answer)`` of a judge-like server in ``mode`` (see the module docstring)."""
    import math

    unknown = [k for k in VLLM_ONLY if k in body]
    if unknown:
        return 400, {"error": {"message": f"Unrecognized request argument supplied: {unknown[0]}"}}
    if mode == "refuse-logprobs" and body.get("logprobs"):
        return 400, {"error": {"message": "logprobs is not supported with this model"}}
    if mode == "refuse-logprobs":
        mode = "nologprobs"
    if int(body.get("top_logprobs") or 0) > 20:
        return 400, {"error": {"message": "top_logprobs must be less than or equal to 20"}}
    messages = body["messages"]
    labels = _options(messages) if messages[-1]["role"] == "user" else []
    if mode == "think":
        top = [("<think>", 0.97), ("Okay", 0.02)] + ([(labels[0], 0.008)] if labels else [])
    elif labels:
        top = [(labels[0], 0.6)] + ([(" " + labels[1], 0.3)] if len(labels) > 1 else []) + [("The", 0.05)]
    else:
        top = [("The", 0.9), ("I", 0.05)]
    top += [(f"w{i}", 0.0001) for i in range(20)]
    k = int(body.get("top_logprobs") or 0)
    first = top[0][0]
    text = first if mode != "nologprobs" else (f"{labels[0]}" if labels else "The answer is unclear.")
    logprobs = None
    if body.get("logprobs") and mode != "nologprobs":
        listed = [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in top[:k]]
        logprobs = {"content": [{"token": first, "logprob": math.log(top[0][1]), "top_logprobs": listed}]}
    return 200, {"object": "chat.completion", "model": body.get("model"),
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                              "logprobs": logprobs, "finish_reason": "length"}],
                 "usage": {"prompt_tokens": 10, "completion_tokens": 1}}


def serve(port: int, name: str, delay: float, log: str | None, model: str = "stub", mode: str = "echo",
          window: float = 2.0) -> None:
    lock = threading.Lock()
    start = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _json(self, status: int, payload: dict, headers: tuple = ()) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
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
            if mode != "echo":
                if log:
                    with lock, open(log, "a") as fh:
                        fh.write(json.dumps({"server": name, "t": round(time.monotonic() - start, 3),
                                             "path": self.path, "body": body}) + "\n")
                if mode == "ratelimit" and time.monotonic() - start < window:
                    return self._json(429, {"error": {"message": f"Rate limit reached. Try again in {window:g}s."}},
                                      (("Retry-After", f"{window:g}"),))
                if self.path != "/v1/chat/completions":
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                time.sleep(delay)
                return self._json(*judge_reply(body, "openai" if mode == "ratelimit" else mode))
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

    def __init__(self, name: str, *, delay: float = 0.0, log: str | Path | None = None, port: int | None = None,
                 mode: str = "echo", window: float = 2.0):
        self.name, self.port = name, port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        cmd = [sys.executable, "-m", "cai.testing.openai_stub", "--port", str(self.port), "--name", name,
               "--delay", str(delay), "--mode", mode, "--window", str(window)] + (["--log", str(log)] if log else [])
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
    parser.add_argument("--mode", default="echo", choices=["echo", "openai", "nologprobs", "refuse-logprobs", "think", "ratelimit"])
    parser.add_argument("--window", type=float, default=2.0, help="ratelimit: seconds of 429s at the start")
    a = parser.parse_args()
    serve(a.port, a.name, a.delay, a.log, a.model, a.mode, a.window)
