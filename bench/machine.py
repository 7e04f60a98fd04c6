"""The facts of the machine a run was measured on, recorded beside its numbers."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.procs import ROOT


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        return f"{commit}{' + uncommitted changes' if dirty.strip() else ''}"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def facts(database: dict[str, str]) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": _version("Django"),
        "djangorestframework": _version("djangorestframework"),
        "uvicorn": _version("uvicorn"),
        "uvicorn_http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "event_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "server_variant": " ".join(
            part
            for part in (os.environ.get("BENCH_SERVER_PYTHON", ""), os.environ.get("BENCH_UVICORN_ARGS", ""))
            if part
        )
        or "as in the Dockerfile",
        "aiohttp": _version("aiohttp"),
        "database": database["engine"],
        "redis": database["redis"],
        "git": _git(),
        "load_average_start": load_average(),
    }
