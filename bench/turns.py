"""Benchmark 3, turn creation: writers adding turns side by side, with the product's ordering and without.

A writer is a process of its own (as web workers are), with its own database connection. A turn is
the question and an empty streaming answer, then that answer completed (the next turn in a session
waits for it). `ordered` stores them with `services.turn_start` (session row lock, gap-free
`message_order`, counters); `plain` inserts the same two rows with no ordering at all (each writer
numbers its own rows from a range no other writer uses) and completes the answer the same way.
Writers work on distinct sessions (one each) or all on one hot session; the ordered runs are
checked afterwards for duplicate and missing `message_order`s, and `message_count`.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from typing import Any

from bench import fixtures, writer
from bench.config import Scale

TURN_USER_PREFIX = "bench-turns-"
#: Writers start together this long after their work is handed out.
START_DELAY = 0.5


def _check(session_ids: list[uuid.UUID]) -> dict[str, int]:
    """Duplicate and missing orders, and counters that disagree with the rows, over these sessions."""
    from django.db.models import Count, Max

    from chat_sessions.models import ChatSession, SessionChatMessage

    rows = (
        SessionChatMessage.objects.filter(session_id__in=session_ids)
        .values("session_id")
        .annotate(rows=Count("id"), orders=Count("message_order", distinct=True), highest=Max("message_order"))
    )
    counters = dict(ChatSession.objects.filter(pk__in=session_ids).values_list("pk", "message_count"))
    return {
        "rows": sum(row["rows"] for row in rows),
        "duplicates": sum(row["rows"] - row["orders"] for row in rows),
        # Orders run 1..highest: any number in that range with no row is missing.
        "missing": sum(row["highest"] - row["orders"] for row in rows),
        "wrong_counts": sum(1 for row in rows if counters[row["session_id"]] != row["rows"]),
    }


def _round(pool, owners, *, writers: int, target: str, mode: str, scale: Scale) -> dict[str, Any]:
    """`writers` processes adding turns for `turn_seconds`, on fresh sessions; ordered ones checked after."""
    from chat_sessions.models import ChatSession

    count = writers if target == "distinct" else 1
    sessions = fixtures.stream_sessions(owners[:count], count)
    ChatSession.objects.filter(pk__in=[s.session_id for s in sessions]).update(message_count=0)
    start_at = time.monotonic() + START_DELAY
    tasks = [
        {
            "index": index,
            "mode": mode,
            "session_id": sessions[index % count].session_id,
            "user_id": sessions[index % count].owner.user_id,
            "start_at": start_at,
            "seconds": scale.turn_seconds,
        }
        for index in range(writers)
    ]
    results = pool.map_async(writer.write_turns, tasks, chunksize=1).get(timeout=START_DELAY + scale.turn_seconds + 120)
    measured: dict[str, Any] = {
        "turns": sum(result["turns"] for result in results),
        "conflicts": sum(result["conflicts"] for result in results),
        "late_writers": sum(1 for result in results if result["late_seconds"] > 0),
    }
    if mode == "ordered":
        measured["check"] = _check([session.session_id for session in sessions])
    return measured


def run(scale: Scale, *, env: dict[str, str], progress) -> dict[str, Any]:

    most = max(scale.writers)
    owners = fixtures.owners(most, prefix=TURN_USER_PREFIX)
    fixtures.sessions_delete(user_ids=[owner.user_id for owner in owners])
    context = multiprocessing.get_context("spawn")
    progress(f"turns: starting {most} writer processes")
    configurations: list[dict[str, Any]] = []
    with context.Pool(most, initializer=writer.setup) as pool:
        pool.map(time.sleep, [0.2] * most)  # every process imported Django before the clock starts
        for writers in scale.writers:
            for target in ("distinct", "hot"):
                runs: dict[str, list[dict[str, Any]]] = {"ordered": [], "plain": []}
                for round_number in range(scale.turn_rounds):
                    for mode in ("ordered", "plain"):
                        rounds = f" (round {round_number + 1} of {scale.turn_rounds})" if scale.turn_rounds > 1 else ""
                        progress(f"turns: {writers} writers, {target} sessions, {mode}{rounds}")
                        runs[mode].append(_round(pool, owners, writers=writers, target=target, mode=mode, scale=scale))
                for mode, measured in runs.items():
                    turns = sum(run["turns"] for run in measured)
                    row: dict[str, Any] = {
                        "writers": writers,
                        "sessions": target,
                        "mode": mode,
                        "turns": turns,
                        "turns_per_s": round(turns / (scale.turn_seconds * len(measured)), 1),
                        "rounds_turns_per_s": [round(run["turns"] / scale.turn_seconds, 1) for run in measured],
                        "conflicts": sum(run["conflicts"] for run in measured),
                        "late_writers": sum(run["late_writers"] for run in measured),
                    }
                    if mode == "ordered":
                        checks = [run["check"] for run in measured]
                        row["check"] = {key: sum(check[key] for check in checks) for key in checks[0]}
                    configurations.append(row)
    return {"seconds": scale.turn_seconds, "rounds": scale.turn_rounds, "configurations": configurations}
