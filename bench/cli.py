"""`python -m bench`: run the benchmarks, print the table, write results.md, results.json, latency.png."""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.config import SCALES
from bench.procs import ROOT

SECTIONS = ("proxy", "api", "turns")
#: Every latency the last run measured, for `--replot` (the plot is drawn from them).
SAMPLES = "samples.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small loads, under two minutes")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this section (repeatable)")
    parser.add_argument("--scale", choices=sorted(SCALES), help=argparse.SUPPRESS)  # "toy": the smoke test
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--reseed", action="store_true", help="seed the API data again even if it is there")
    parser.add_argument("--load", action="append", help="run only this proxy load (single, throughput, ramp, open)")
    parser.add_argument("--way", action="append", choices=("direct", "bare", "deepsight"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--replot", action="store_true", help="rewrite results.md and latency.png from the last run's saved files"
    )
    return parser


def _raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    scale = SCALES[args.scale or ("quick" if args.quick else "full")]
    if args.load:
        scale = dataclasses.replace(scale, loads=tuple(load for load in scale.loads if load.name in args.load))
    sections = args.only or list(SECTIONS)
    results_dir: Path = args.results_dir
    if args.replot:
        _replot(results_dir)
        return
    logs = results_dir / "logs"
    began = time.monotonic()

    def progress(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {text}", file=sys.stderr, flush=True)

    _raise_open_files_limit()  # 2,000 streams: client, server and upstream sockets (the children inherit it)
    from bench import database

    env = database.configure(results_dir)
    progress(f"preparing the database ({env['DATABASE_URL'].split('@')[-1]})")
    database.prepare()
    from bench import machine, report

    results: dict[str, Any] = {"scale": scale.name, "machine": machine.facts(database.describe()), "timings": {}}
    samples: dict[str, Any] = {}
    failed: list[str] = []
    for section in sections:
        started = time.monotonic()
        try:
            if section == "proxy":
                from bench import proxy

                results["proxy"] = proxy.run(scale, env=env, logs=logs, progress=progress, ways=args.way)
                samples.update(results["proxy"].pop("samples"))
            elif section == "api":
                from bench import api

                results["api"] = api.run(scale, env=env, logs=logs, progress=progress, reseed=args.reseed)
                results["api"].pop("samples")
            else:
                from bench import turns

                results["turns"] = turns.run(scale, env=env, progress=progress)
        except Exception:
            failed.append(section)
            results.setdefault("errors", {})[section] = traceback.format_exc()
            progress(f"{section} failed:\n{traceback.format_exc()}")
        results["timings"][section] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_end"] = machine.load_average()
    text = report.write(results, samples, results_dir)
    (results_dir / SAMPLES).write_text(json.dumps(samples))
    print(text)
    progress(f"done; results in {results_dir}")
    if failed:
        sys.exit(f"benchmark sections failed: {', '.join(failed)}")


def _replot(results_dir: Path) -> None:
    from bench import report

    results = json.loads((results_dir / "results.json").read_text())
    samples = json.loads((results_dir / SAMPLES).read_text())
    print(report.write(results, samples, results_dir))
