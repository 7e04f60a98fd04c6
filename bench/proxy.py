"""Benchmark 1, the token proxy: one client load run straight to the fake upstream, through a bare
aiohttp proxy, and through deepsight's real send endpoint, one after the other in the same run.

For each load and each way: per-token latency and time to first token (p50/p99), the CPU the
relaying process spent per delivered token (from its own `/proc/<pid>/stat`; the upstream's for the
direct way), tokens delivered against expected, and for the open-streams load the server's RSS and
threads per open stream. deepsight runs the full turn: token authentication, throttles, the turn's
two inserts, the periodic flushes of the growing answer and the final save.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from pathlib import Path
from typing import Any

from bench import fixtures
from bench.client import LoadResult, Target, run_load
from bench.config import Load, Scale
from bench.procs import Process, aiohttp_server, deepsight_server
from bench.stats import summary_ms

WAYS = ("direct", "bare", "deepsight")
WAY_TITLES = {"direct": "direct to upstream", "bare": "bare aiohttp proxy", "deepsight": "deepsight (uvicorn)"}
#: Database connections the bench server's pool may open (PostgreSQL only).
SERVER_POOL_SIZE = 24
WARMUP = Load("warmup", "warm-up", 10, 10, 5)


def _ragflow_target(base_url: str, load: Load) -> Target:
    url = f"{base_url}/api/v1/agents/bench/completions"
    body = json.dumps({"question": f"n={load.tokens} d={load.delay_ms:g}", "stream": True}).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench"}
    return Target("ragflow", lambda index: (url, body, headers))


def _deepsight_target(base_url: str, load: Load, sessions: list[fixtures.StreamSession]) -> Target:
    body = json.dumps({"message": f"n={load.tokens} d={load.delay_ms:g}"}).encode()

    def request(index: int) -> tuple[str, bytes, dict[str, str]]:
        session = sessions[index]
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "Authorization": f"Token {session.owner.token}",
        }
        return base_url + session.messages_path(), body, headers

    return Target("deepsight", request)


def _measure(process: Process, target: Target, load: Load) -> tuple[LoadResult, dict[str, Any]]:
    gc.collect()
    before_cpu = process.cpu_seconds()
    before = process.status()

    def sampler(open_streams: int) -> dict[str, Any]:
        now = process.status()
        return {
            "rss_kib": now["rss_kib"],
            "threads": now["threads"],
            "rss_kib_before": before["rss_kib"],
            "threads_before": before["threads"],
        }

    result = asyncio.run(run_load(target, load, sampler=sampler))
    cpu = process.cpu_seconds() - before_cpu
    return result, {"cpu_seconds": cpu, "after": process.status()}


def _pooled(runs: list[tuple[LoadResult, dict[str, Any]]]) -> tuple[LoadResult, dict[str, Any]]:
    """One way's rounds of a load as one result: counts and CPU summed, latencies pooled."""
    if len(runs) == 1:
        return runs[0]
    pooled = LoadResult()
    for result, _ in runs:
        pooled.tokens += result.tokens
        pooled.expected += result.expected
        pooled.errors += result.errors
        pooled.error_samples += result.error_samples[: 5 - len(pooled.error_samples)]
        pooled.latency_us.extend(result.latency_us)
        pooled.ttft_us.extend(result.ttft_us)
        pooled.persisted_complete += result.persisted_complete
        pooled.out_of_order += result.out_of_order
        pooled.max_open = max(pooled.max_open, result.max_open)
        pooled.wall_seconds += result.wall_seconds
        pooled.sample = pooled.sample or result.sample
    return pooled, {"cpu_seconds": sum(cpu["cpu_seconds"] for _, cpu in runs), "after": runs[-1][1]["after"]}


def _row(way: str, load: Load, result: LoadResult, cpu: dict[str, Any], log_errors: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "way": way,
        "tokens": result.tokens,
        "expected": result.expected,
        "lost": result.expected - result.tokens,
        "errors": result.errors,
        "error_samples": result.error_samples,
        "out_of_order": result.out_of_order,
        "server_log_errors": log_errors,
        "latency_ms": summary_ms(result.latency_us),
        "ttft_ms": summary_ms(result.ttft_us),
        "cpu_seconds": round(cpu["cpu_seconds"], 3),
        "cpu_us_per_token": round(cpu["cpu_seconds"] * 1e6 / result.tokens, 1) if result.tokens else None,
        "max_open": result.max_open,
        # Behind: tokens waited longer than the interval between them. A relay that falls behind
        # writes several tokens at once, which lowers (flatters) its CPU per token.
        "kept_up": result.tokens > 0 and summary_ms(result.latency_us)["p50"] <= load.delay_ms,
        "wall_seconds": round(result.wall_seconds, 2),
    }
    if way == "deepsight":
        row["persisted_complete"] = result.persisted_complete
        row["streams"] = load.streams * load.rounds
    sample = result.sample
    if sample and sample.get("open_streams"):
        opened = sample["open_streams"]
        row["open_sample"] = sample
        row["rss_kib_per_stream"] = round((sample["rss_kib"] - sample["rss_kib_before"]) / opened, 1)
        row["threads_per_stream"] = round((sample["threads"] - sample["threads_before"]) / opened, 3)
    return row


def run(scale: Scale, *, env: dict[str, str], logs: Path, progress, ways: list[str] | None = None) -> dict[str, Any]:
    upstream = aiohttp_server("upstream", log=logs / "upstream.log")
    bare = server = None
    try:
        bare = aiohttp_server("bareproxy", log=logs / "bareproxy.log", upstream=upstream.url)
        server_env = {**env, "BENCH_UPSTREAM_URL": upstream.url, "DATABASE_POOL_MAX_SIZE": str(SERVER_POOL_SIZE)}
        server = deepsight_server(log=logs / "deepsight.log", env=server_env)
        owners = fixtures.owners(scale.proxy_users)
        fixtures.sessions_delete(user_ids=[owner.user_id for owner in owners])
        processes = {"direct": upstream, "bare": bare, "deepsight": server}
        samples: dict[str, dict[str, list[int]]] = {}
        loads: list[dict[str, Any]] = []
        for load in (WARMUP, *scale.loads):
            measured: dict[str, list[tuple[LoadResult, dict[str, Any]]]] = {way: [] for way in ways or WAYS}
            for round_number in range(load.rounds):
                for way in ways or WAYS:
                    if way == "deepsight":
                        target = _deepsight_target(server.url, load, fixtures.stream_sessions(owners, load.streams))
                    else:
                        target = _ragflow_target(processes[way].url, load)
                    rounds = f" (round {round_number + 1} of {load.rounds})" if load.rounds > 1 else ""
                    progress(f"proxy: {load.title}, {WAY_TITLES[way]}{rounds}")
                    measured[way].append(_measure(processes[way], target, load))
                    time.sleep(scale.settle_s)
            rows = []
            for way, runs in measured.items():
                result, cpu = _pooled(runs)
                row = _row(way, load, result, cpu, processes[way].log_errors())
                if load.rounds > 1:
                    row["rounds_cpu_us_per_token"] = [
                        round(c["cpu_seconds"] * 1e6 / r.tokens, 1) if r.tokens else None for r, c in runs
                    ]
                rows.append(row)
                if load is not WARMUP:
                    samples[f"{load.name}/{way}"] = {
                        "latency_us": result.latency_us.tolist(),
                        "ttft_us": result.ttft_us.tolist(),
                    }
            if load is not WARMUP:
                loads.append({"name": load.name, "title": load.title, **_load_fields(load), "ways": rows})
        return {"loads": loads, "samples": samples, "server_pool_size": SERVER_POOL_SIZE}
    finally:
        for process in (server, bare, upstream):
            if process is not None:
                process.stop()


def _load_fields(load: Load) -> dict[str, Any]:
    return {
        "streams": load.streams,
        "rounds": load.rounds,
        "tokens": load.tokens,
        "delay_ms": load.delay_ms,
        "ramp_s": load.ramp_s,
        "expected_tokens": load.expected_tokens,
    }
