"""The results as a Markdown table (one row per bar: measured, target, PASS/MISS), JSON, and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BAR_SCALE = "full"


def _fmt(value: float | None, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def _load(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    for entry in results.get("proxy", {}).get("loads", []):
        if entry["name"] == name:
            return entry
    return None


def _way(results: dict[str, Any], load: str, way: str) -> dict[str, Any] | None:
    entry = _load(results, load)
    for row in entry["ways"] if entry else ():
        if row["way"] == way:
            return row
    return None


def bars(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every bar of the issue with its measured value and verdict (None: not measured in this run)."""
    rows: list[dict[str, Any]] = []

    def bar(name: str, measured: str, target: str, passed: bool | None, undecided: str = "") -> None:
        rows.append({"bar": name, "measured": measured, "target": target, "passed": passed, "undecided": undecided})

    if "proxy" in results:
        bare, ours = _way(results, "throughput", "bare"), _way(results, "throughput", "deepsight")
        cpu = None
        if bare and ours and bare["cpu_us_per_token"] and ours["cpu_us_per_token"]:
            cpu = ours["cpu_us_per_token"] / bare["cpu_us_per_token"]
        behind = [row["way"] for row in (bare, ours) if row and not row.get("kept_up")]
        # A relay that fell behind wrote several tokens at once, so its CPU per token reads low:
        # under the line, that decides nothing.
        cpu_passed = None if cpu is None or (cpu <= 1.8 and "deepsight" in behind) else cpu <= 1.8
        per_round = ""
        if bare and ours and bare.get("rounds_cpu_us_per_token"):
            ratios = [
                _fmt(mine / theirs if mine and theirs else None)
                for mine, theirs in zip(ours["rounds_cpu_us_per_token"], bare["rounds_cpu_us_per_token"], strict=True)
            ]
            per_round = f"; by round {', '.join(ratios)}"
        bar(
            "CPU per relayed token, deepsight / bare aiohttp proxy (throughput load, persistence on)"
            + (f"; {' and '.join(behind)} fell behind" if behind else ""),
            f"{_fmt(cpu)}x ({_fmt(ours and ours['cpu_us_per_token'], 1)} vs "
            f"{_fmt(bare and bare['cpu_us_per_token'], 1)} µs{per_round})",
            "≤ 1.8x",
            cpu_passed,
            "UNDECIDED (deepsight fell behind)" if cpu is not None and cpu_passed is None else "",
        )
        direct, ramp = _way(results, "ramp", "direct"), _way(results, "ramp", "deepsight")
        p99 = ramp and ramp["latency_ms"]["p99"]
        bar(
            "Per-token latency p99 through deepsight (ramp load: 1,000 streams x 10 tokens/s)",
            f"{_fmt(p99)} ms (direct {_fmt(direct and direct['latency_ms']['p99'])} ms)",
            "≤ 5 ms",
            None if p99 is None else p99 <= 5,
        )
        overhead = None
        if ramp and direct and ramp["ttft_ms"]["p50"] is not None and direct["ttft_ms"]["p50"] is not None:
            overhead = ramp["ttft_ms"]["p50"] - direct["ttft_ms"]["p50"]
        bar(
            "Time to first token p50, deepsight minus direct (ramp load)",
            f"{_fmt(overhead)} ms ({_fmt(ramp and ramp['ttft_ms']['p50'])} vs "
            f"{_fmt(direct and direct['ttft_ms']['p50'])} ms)",
            "≤ 5 ms",
            None if overhead is None else overhead <= 5,
        )
        opened = _way(results, "open", "deepsight")
        if opened:
            at_once = (opened.get("open_sample") or {}).get("open_streams", 0)
            ok = opened["errors"] == 0 and opened["lost"] == 0 and at_once == opened["streams"]
            bar(
                "Concurrent open streams in one uvicorn process: errors, lost tokens",
                f"{at_once:,} open at once; {opened['errors']} errors, {opened['lost']:,} lost",
                f"{opened['streams']:,} open, 0 errors, 0 lost",
                ok,
            )
    if "api" in results:
        api = results["api"]
        for name, title in (("sessions", "Session list"), ("messages", "Message history")):
            depth = api["depth"][name]
            ratio = api["deep_over_first"][name]
            first = api["latency"][f"{name}_first"]["p50_ms"]
            deep = api["latency"][f"{name}_deep"]["p50_ms"]
            bar(
                f"{title}: page {depth:,} rows deep / first page (p50)",
                f"{ratio:.2f} ({deep:.2f} vs {first:.2f} ms)",
                "≤ 1.2",
                ratio <= 1.2,
            )
        queries = api["queries"]
        constant = all(queries[f"{name}_first"] == queries[f"{name}_deep"] for name in ("sessions", "messages"))
        bar(
            "Queries per request, first page / deep page",
            f"sessions {queries['sessions_first']} / {queries['sessions_deep']}, "
            f"messages {queries['messages_first']} / {queries['messages_deep']}",
            "constant",
            constant and queries["sessions_deep_lands"] and queries["messages_deep_lands"],
        )
        rps = api["rps"]
        bar(
            "Session list requests/s / plain values() view",
            f"{rps['ratio']:.2f} ({rps['list']:,.0f} vs {rps['values']:,.0f} req/s)",
            "≥ 0.75",
            rps["ratio"] >= 0.75,
        )
    if "turns" in results:
        configurations = results["turns"]["configurations"]
        writers = 8 if any(c["writers"] == 8 for c in configurations) else max(c["writers"] for c in configurations)

        def configuration(mode: str) -> dict[str, Any]:
            return next(
                c
                for c in configurations
                if c["writers"] == writers and c["sessions"] == "distinct" and c["mode"] == mode
            )

        ordered, plain = configuration("ordered")["turns_per_s"], configuration("plain")["turns_per_s"]
        ratio = ordered / plain if plain else None
        rounds = [configuration(mode).get("rounds_turns_per_s", []) for mode in ("ordered", "plain")]
        per_round = ", ".join(_fmt(o / p if p else None) for o, p in zip(*rounds, strict=True))
        bar(
            f"Ordered / unordered turn creation, {writers} writers, distinct sessions",
            f"{_fmt(ratio)} ({ordered:,.0f} vs {plain:,.0f} turns/s"
            + (f"; by round {per_round}" if len(rounds[0]) > 1 else "")
            + ")",
            "≥ 0.8",
            None if ratio is None else ratio >= 0.8,
        )
        checks = [c["check"] for c in configurations if "check" in c]
        missing = sum(check["missing"] for check in checks)
        duplicates = sum(check["duplicates"] for check in checks)
        wrong = sum(check["wrong_counts"] for check in checks)
        bar(
            "message_order after every ordered run: missing / duplicates (and wrong message_count)",
            f"{missing} / {duplicates} ({wrong})",
            "0 / 0",
            missing == 0 and duplicates == 0 and wrong == 0,
        )
    return rows


def _proxy_notes(results: dict[str, Any]) -> list[str]:
    """What a turn costs on its own, and the relay's cost with those starts amortized."""
    notes: list[str] = []
    ours, bare, direct = (_way(results, "starts", way) for way in ("deepsight", "bare", "direct"))
    if ours and bare and direct and ours["cpu_us_per_token"] and bare["cpu_us_per_token"]:
        notes.append(
            f"- One turn on its own (the `starts` load: a 1-token answer every 100 ms) costs deepsight "
            f"{ours['cpu_us_per_token'] / 1000:.1f} ms of CPU and {_fmt(ours['ttft_ms']['p50'])} ms to its first "
            f"token (direct {_fmt(direct['ttft_ms']['p50'])} ms); the bare proxy relays one in "
            f"{bare['cpu_us_per_token'] / 1000:.2f} ms of CPU."
        )
    burst, throughput = _way(results, "burst", "deepsight"), _way(results, "throughput", "deepsight")
    if burst and burst["cpu_us_per_token"]:
        note = (
            f"- Started together (the `burst` load: {burst['streams']} answers of 1 token at once, as the throughput "
            f"load starts its streams) a turn costs deepsight {burst['cpu_us_per_token'] / 1000:.1f} ms of CPU"
        )
        if throughput and throughput["cpu_us_per_token"]:
            # One turn per stream: its CPU over the CPU of all the stream's tokens.
            stream_cpu_us = throughput["cpu_us_per_token"] * _load(results, "throughput")["tokens"]
            share = burst["cpu_us_per_token"] / stream_cpu_us
            note += f": at that cost the throughput load's turns are {share:.0%} of its CPU, the relay the rest"
        notes.append(note + ".")
    ours, bare = _way(results, "long", "deepsight"), _way(results, "long", "bare")
    if ours and bare and ours["cpu_us_per_token"] and bare["cpu_us_per_token"]:
        notes.append(
            f"- With the starts amortized over 2,000 tokens each (the `long` load), deepsight relays a token for "
            f"{ours['cpu_us_per_token']:.1f} µs of CPU against the bare proxy's {bare['cpu_us_per_token']:.1f} µs: "
            f"{ours['cpu_us_per_token'] / bare['cpu_us_per_token']:.2f}x."
        )
    return ["", *notes] if notes else []


def _verdict(passed: bool | None, undecided: str = "") -> str:
    if passed is None:
        return undecided or "n/a"
    return "PASS" if passed else "MISS"


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    scale = results["scale"]
    lines = [f"## Benchmark results ({scale} scale, {machine['date']})", ""]
    if scale != BAR_SCALE:
        lines += [f"*{scale} scale: smaller loads than the bar is set for; the verdicts only show the machinery.*", ""]
    lines += ["| Bar | Measured | Target | Result |", "|---|---|---|---|"]
    for row in results["bars"]:
        verdict = _verdict(row["passed"], row.get("undecided", ""))
        lines.append(f"| {row['bar']} | {row['measured']} | {row['target']} | {verdict} |")
    if "proxy" in results:
        lines += ["", "### Token proxy", ""]
        lines += [
            "| Load | Way | Tokens (lost) | Errors | Token latency p50 / p99 | TTFT p50 / p99 | CPU µs/token "
            "| RSS KiB / threads per open stream |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for entry in results["proxy"]["loads"]:
            for row in entry["ways"]:
                # An answer of one token has no interval between tokens to fall behind.
                behind = not row.get("kept_up") and entry["tokens"] > 1
                per_stream = "-"
                if "rss_kib_per_stream" in row:
                    per_stream = f"{row['rss_kib_per_stream']:,.1f} / {row['threads_per_stream']:.2f}"
                lines.append(
                    f"| {entry['title']} | {row['way']} | {row['tokens']:,} ({row['lost']:,}) | {row['errors']} "
                    f"| {_fmt(row['latency_ms']['p50'])} / {_fmt(row['latency_ms']['p99'])} ms "
                    f"| {_fmt(row['ttft_ms']['p50'])} / {_fmt(row['ttft_ms']['p99'])} ms "
                    f"| {_fmt(row['cpu_us_per_token'], 1)}{' †' if behind else ''} | {per_stream} |"
                )
        lines += [
            "",
            "CPU µs/token is the relaying process's own CPU time (`/proc/<pid>/stat`) over the load, divided by "
            "the tokens delivered; for `direct` it is the fake upstream's. † the relay fell behind (token latency "
            "p50 above the interval between tokens): it then writes several tokens at once, so its CPU per token "
            "reads lower than it would be at that rate.",
        ]
        lines += _proxy_notes(results)
    if "api" in results:
        api = results["api"]
        seed = api["seed"]
        how = "reused from an earlier run" if seed["reused"] else f"loaded in {seed['seconds']:,.1f} s"
        lines += [
            "",
            "### API at scale",
            "",
            f"{seed['sessions']:,} sessions and {seed['messages']:,} messages for one user ({how}); "
            f"the long conversation has {seed['long_session_messages']:,} messages.",
            "",
            "| Request | p50 | p99 | Queries |",
            "|---|---|---|---|",
        ]
        for name in ("sessions", "messages"):
            for which in ("first", "deep"):
                key = f"{name}_{which}"
                label = f"{name}, first page" if which == "first" else f"{name}, {api['depth'][name]:,} rows deep"
                latency = api["latency"][key]
                lines.append(
                    f"| {label} | {latency['p50_ms']:.2f} ms | {latency['p99_ms']:.2f} ms | {api['queries'][key]} |"
                )
        rps = api["rps"]
        lines += [
            "",
            f"Requests/s with {rps['concurrency']} concurrent clients, {rps['seconds']:g} s rounds, alternated: "
            f"session list {rps['rounds']['list']}, values() view {rps['rounds']['values']} (medians "
            f"{rps['list']:,.0f} vs {rps['values']:,.0f}).",
        ]
    if "turns" in results:
        lines += [
            "",
            "### Turn creation",
            "",
            "| Writers | Sessions | Ordered turns/s | Unordered turns/s | Ratio | Conflicts (hot) "
            "| Missing / duplicate orders |",
            "|---|---|---|---|---|---|---|",
        ]
        configurations = results["turns"]["configurations"]
        keys = sorted({(c["writers"], c["sessions"]) for c in configurations}, key=lambda k: (k[0], k[1] != "distinct"))
        for writers, target in keys:
            pair = {c["mode"]: c for c in configurations if c["writers"] == writers and c["sessions"] == target}
            ordered, plain = pair["ordered"], pair["plain"]
            ratio = ordered["turns_per_s"] / plain["turns_per_s"] if plain["turns_per_s"] else None
            check = ordered["check"]
            lines.append(
                f"| {writers} | {target} | {ordered['turns_per_s']:,.0f} | {plain['turns_per_s']:,.0f} "
                f"| {_fmt(ratio)} | {ordered['conflicts']:,} | {check['missing']} / {check['duplicates']} |"
            )
        turns = results["turns"]
        lines += [
            "",
            f"Each configuration ran {turns.get('rounds', 1)} round(s) of {turns['seconds']:g} s, ordered and "
            "unordered alternating; turns/s are pooled over the rounds.",
        ]
        lines += [
            "",
            "A hot session takes one turn at a time by design (a second send while an answer streams is "
            "refused with 409 and retried here): its ratio is shown, not held to the bar.",
        ]
    lines += ["", "### Machine", ""]
    lines += [
        f"- {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB RAM, Linux {machine['kernel']}",
        f"- Python {machine['python']}, Django {machine['django']}, DRF {machine['djangorestframework']}, "
        f"uvicorn {machine['uvicorn']} ({machine['uvicorn_http']}, {machine['event_loop']}), "
        f"aiohttp {machine['aiohttp']}; deepsight server: {machine.get('server_variant', 'as in the Dockerfile')}",
        f"- {machine['database']}; Redis: {machine['redis']}",
        f"- code: {machine['git']}; load average at start {machine['load_average_start']}, "
        f"at end {machine.get('load_average_end')}",
        f"- sections took {results.get('timings')} s",
    ]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], samples: dict[str, Any], path: Path) -> bool:
    """Latency distributions (CDFs) per load and way; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
        from matplotlib.ticker import LogLocator, NullFormatter
    except ImportError:
        return False
    loads = results.get("proxy", {}).get("loads", [])
    if not loads:
        return False
    # One row per load: per-token latency on the left, time to first token on the right.
    figure, axes = plt.subplots(len(loads), 2, figsize=(11, 2.9 * len(loads)), squeeze=False)
    colours = {"direct": "#4c72b0", "bare": "#55a868", "deepsight": "#c44e52"}
    panels = (("latency_us", "per-token latency"), ("ttft_us", "time to first token"))
    for row, entry in enumerate(loads):
        for column, (key, label) in enumerate(panels):
            axis = axes[row][column]
            for way in ("direct", "bare", "deepsight"):
                values = samples.get(f"{entry['name']}/{way}", {}).get(key)
                if not values:
                    continue
                ordered = np.sort(np.asarray(values, dtype=float) / 1000)
                ordered = np.maximum(ordered, 0.01)
                style = {"marker": "o"} if len(ordered) < 5 else {}  # one stream: a point, not a line
                fractions = np.arange(1, len(ordered) + 1) / len(ordered)
                axis.plot(ordered, fractions, label=way, color=colours[way], **style)
            axis.set_xscale("log")
            axis.xaxis.set_major_locator(LogLocator(base=10))
            axis.xaxis.set_minor_formatter(NullFormatter())  # labels at powers of ten only: no overlaps
            axis.set_ylim(0, 1.0)
            axis.axhline(0.99, color="grey", linewidth=0.5, linestyle=":")
            axis.axhline(0.5, color="grey", linewidth=0.5, linestyle=":")
            axis.set_xlabel(f"{label} (ms, log)", fontsize=8)
            axis.set_ylabel("fraction of tokens" if column == 0 else "fraction of streams", fontsize=8)
            axis.set_title(entry["title"], fontsize=9)
            axis.grid(True, which="both", alpha=0.2)
            axis.legend(fontsize=7, loc="lower right")
    figure.suptitle(f"deepsight token proxy vs direct and a bare aiohttp proxy ({results['machine']['date']})")
    figure.tight_layout(rect=(0, 0, 1, 0.985))  # room for the title above the first row
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def write(results: dict[str, Any], samples: dict[str, Any], directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    results["bars"] = bars(results)
    results["plot"] = "latency.png" if plot(results, samples, directory / "latency.png") else None
    text = markdown(results)
    (directory / "results.md").write_text(text)
    (directory / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return text
