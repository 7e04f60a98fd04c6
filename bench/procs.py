"""The processes a benchmark runs (deepsight under uvicorn, the fake upstream, the bare proxy) and what
the kernel says about them: CPU time from `/proc/<pid>/stat`, RSS and threads from `/proc/<pid>/status`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A server started for the bench; its output goes to `log`. Stop it with `stop()`."""

    def __init__(self, name: str, argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log.open("w")
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=self._log_file, stderr=subprocess.STDOUT
        )
        self.pid = self.popen.pid
        self.url = ""

    def cpu_seconds(self) -> float:
        """User + system CPU time of every thread of the process so far."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def status(self) -> dict[str, int]:
        """RSS (KiB) and thread count."""
        values = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                values[key] = int(value.split()[0])
        return {"rss_kib": values.get("VmRSS", 0), "threads": values.get("Threads", 0)}

    def log_errors(self) -> int:
        """Tracebacks and ERROR lines in the log so far."""
        text = self.log.read_text(errors="replace")
        return text.count("Traceback (most recent call last)") + text.count(" ERROR ")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self._log_file.close()


def aiohttp_server(kind: str, *, log: Path, upstream: str = "") -> Process:
    """`bench.servers` as a process; waits for the port it prints."""
    argv = [sys.executable, "-m", "bench.servers", kind]
    if upstream:
        argv += ["--upstream", upstream]
    process = Process(kind, argv, log=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("PORT "):
                process.url = f"http://127.0.0.1:{line.split()[1]}"
                return process
        if not process.alive():
            break
        time.sleep(0.05)
    process.stop()
    raise RuntimeError(f"{kind} did not start; see {log}")


def deepsight_server(*, log: Path, env: dict[str, str]) -> Process:
    """deepsight under uvicorn, started the way the Dockerfile starts it, on a free loopback port.

    To measure a deployment variant, `BENCH_SERVER_PYTHON` names another interpreter (a venv with
    other packages) and `BENCH_UVICORN_ARGS` adds uvicorn options (`--http httptools --loop uvloop`).
    """
    port = free_port()
    argv = [
        os.environ.get("BENCH_SERVER_PYTHON") or sys.executable,
        "-m",
        "uvicorn",
        "deepsight.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--http",
        "httptools",
        "--timeout-graceful-shutdown",
        "5",
        *os.environ.get("BENCH_UVICORN_ARGS", "").split(),
    ]
    process = Process("deepsight", argv, log=log, env=env)
    process.url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{process.url}/healthz/", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            if not process.alive():
                break
            time.sleep(0.1)
    process.stop()
    raise RuntimeError(f"deepsight did not start; see {log}")
