"""`unigrec serve` in a child process on a free loopback port, and a keep-alive JSON client for it: what
``serving_bench.py`` (HTTP latency) and ``load_test.py`` (concurrent clients) measure against.

The server is the product's own command, started the way a user starts it; nothing here imports the
service, so what is timed includes uvicorn, FastAPI's validation and the JSON answers.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

STARTUP_TIMEOUT_S = 300.0  # torch, pandas and FastAPI imports plus the model load, on a loaded machine
HEALTH_POLL_S = 0.5
STOP_TIMEOUT_S = 30.0


def unigrec_command() -> list[str]:
    """The installed ``unigrec`` entry point beside this interpreter (else the module run by it)."""
    script = Path(sys.executable).parent / "unigrec"
    if script.exists():
        return [str(script)]
    found = shutil.which("unigrec")
    return [found] if found else [sys.executable, "-c", "import sys; from unigrec.cli import main; sys.exit(main())"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def thread_env(threads: int | None) -> dict[str, str]:
    """The environment of a child process limited to ``threads`` intra-op threads (None: as inherited)."""
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


class Client:
    """One keep-alive HTTP/1.1 connection to the service (what a client library reuses between calls)."""

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        self.port, self.timeout = port, timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        """(status, decoded JSON or None); ``raw`` sends bytes as they are (malformed bodies). A transport
        error (refused, reset, timeout) is raised."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"content-type": "application/json"} if data is not None else {}
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            payload = resp.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()  # the next call opens a fresh connection; this one counts as failed
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            raise
        try:
            return resp.status, json.loads(payload) if payload else None
        except ValueError:
            return resp.status, None

    def close(self) -> None:
        self.conn.close()


@contextlib.contextmanager
def served(
    root: Path, extra: Sequence[str] = (), threads: int | None = None, log: Path | None = None
) -> Iterator[tuple[int, int]]:
    """Run ``unigrec serve --root ROOT [extra]`` on a free loopback port until the block ends; yields the
    port and the server's pid once ``/health`` answers. The server's output goes to ``log`` (default:
    discarded)."""
    port = free_port()
    cmd = [*unigrec_command(), "serve", "--root", str(root), "--host", "127.0.0.1", "--port", str(port), *extra]
    out = open(log, "w", encoding="utf-8") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=thread_env(threads), cwd=root)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"`{' '.join(cmd)}` exited with {proc.returncode} before answering"
                                   + (f" (log: {log})" if log else ""))
            with contextlib.suppress(OSError, http.client.HTTPException):
                client = Client(port, timeout=5.0)
                status, _ = client.call("GET", "/health")
                client.close()
                if status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"`{' '.join(cmd)}` did not answer /health within {STARTUP_TIMEOUT_S:.0f} s")
            time.sleep(HEALTH_POLL_S)
        yield port, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn's clean stop (the alias poller stops too)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()


def process_rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")
