"""The benchmarks still run: `python -m bench` at a toy scale, every section, on a SQLite file of its own.

It proves the machinery (servers, load client, seeding, writers, report), never the numbers: no
assertion here is about time, so a slow or busy CI machine cannot fail it.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def bench_env(directory: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": f"sqlite:///{directory / 'bench.sqlite3'}",
        "BENCH_REDIS_URL": "",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def bench(directory: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args, "--results-dir", str(directory)],
        cwd=ROOT,
        env=bench_env(directory),
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("bench")
    run = bench(directory, "--scale", "toy")
    assert run.returncode == 0, run.stderr[-3000:]
    assert (directory / "results.md").read_text().startswith("## Benchmark results")
    return directory


@pytest.fixture(scope="module")
def results(bench_dir) -> dict:
    return json.loads((bench_dir / "results.json").read_text())


def test_every_section_is_in_the_results(results):
    assert {"proxy", "api", "turns", "machine", "bars"} <= set(results)
    assert "errors" not in results


def test_every_load_delivers_tokens_every_way(results):
    for load in results["proxy"]["loads"]:
        assert [row["way"] for row in load["ways"]] == ["direct", "bare", "deepsight"]
        for row in load["ways"]:
            assert row["tokens"] > 0, (load["name"], row)
            assert row["errors"] == 0, (load["name"], row["error_samples"])


def test_deepsight_saves_every_answer_it_streams(results):
    for load in results["proxy"]["loads"]:
        deepsight = load["ways"][-1]
        assert deepsight["persisted_complete"] == load["streams"] * load["rounds"] == deepsight["streams"]


def test_the_report_says_what_a_turn_costs_when_turns_start_together(bench_dir, results):
    burst = next(load for load in results["proxy"]["loads"] if load["name"] == "burst")
    turn_cpu_us = burst["ways"][-1]["cpu_us_per_token"]  # one token per answer: the CPU of a turn

    assert turn_cpu_us > 0
    note = next(line for line in (bench_dir / "results.md").read_text().splitlines() if "`burst` load" in line)
    assert f"a turn costs deepsight {turn_cpu_us / 1000:.1f} ms of CPU" in note
    assert "of its CPU, the relay the rest" in note


def test_only_a_relay_that_fell_behind_between_tokens_is_marked_so(results):
    from bench import report

    results = copy.deepcopy(results)
    titles = {}
    for load in results["proxy"]["loads"]:
        if load["name"] in ("burst", "throughput"):
            load["ways"][-1]["kept_up"] = False  # both late: token latency p50 above their interval
            titles[load["name"]] = load["title"]
    rows = {
        name: next(line for line in report.markdown(results).splitlines() if line.startswith(f"| {title} | deepsight"))
        for name, title in titles.items()
    }

    assert rows["throughput"].split(" | ")[6].endswith(" †")
    assert not rows["burst"].split(" | ")[6].endswith(" †")  # one token per answer: nothing to fall behind


@pytest.mark.parametrize(
    ("ours_us", "kept_up", "verdict"),
    [
        (150.0, True, "PASS"),
        (150.0, False, "UNDECIDED (deepsight fell behind)"),
        (190.0, True, "MISS"),
        (190.0, False, "MISS"),  # behind, it reads low: the real figure is higher still
    ],
)
def test_a_cpu_ratio_under_the_line_from_a_relay_that_fell_behind_decides_nothing(results, ours_us, kept_up, verdict):
    from bench import report

    results = copy.deepcopy(results)
    throughput = next(load for load in results["proxy"]["loads"] if load["name"] == "throughput")
    bare, ours = throughput["ways"][1], throughput["ways"][2]
    bare["cpu_us_per_token"], bare["kept_up"] = 100.0, True
    ours["cpu_us_per_token"], ours["kept_up"] = ours_us, kept_up
    results["bars"] = report.bars(results)
    row = next(line for line in report.markdown(results).splitlines() if line.startswith("| CPU per relayed token"))

    assert row.rstrip(" |").endswith(verdict)


def test_the_api_section_seeds_and_lands_on_the_deep_pages(results):
    api = results["api"]
    assert api["seed"]["sessions"] > 0
    assert api["seed"]["messages"] > 0
    assert api["queries"]["sessions_deep_lands"]
    assert api["queries"]["messages_deep_lands"]
    assert api["rps"]["list"] > 0
    assert api["rps"]["values"] > 0


def test_turn_creation_leaves_no_gaps_or_duplicates(results):
    ordered = [c for c in results["turns"]["configurations"] if c["mode"] == "ordered"]
    assert ordered
    assert all(c["turns"] > 0 for c in results["turns"]["configurations"])
    assert all(c["check"]["missing"] == 0 and c["check"]["duplicates"] == 0 for c in ordered)


def test_every_bar_has_a_row(results):
    assert len(results["bars"]) == 10


def test_the_report_and_plot_can_be_drawn_again_from_the_saved_run(bench_dir):
    (bench_dir / "latency.png").unlink()
    table = (bench_dir / "results.md").read_text()

    run = bench(bench_dir, "--replot")

    assert run.returncode == 0, run.stderr[-3000:]
    assert (bench_dir / "latency.png").read_bytes().startswith(b"\x89PNG")
    assert (bench_dir / "results.md").read_text() == table
