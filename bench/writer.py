"""One turn-creation writer, run in a pool process of its own (see `bench.turns`).

Nothing here imports Django at module level: a spawned process unpickles these functions before
its initializer (`setup`) has configured Django.
"""

from __future__ import annotations

import time
from typing import Any


def setup() -> None:
    import django

    django.setup()


def write_turns(task: dict[str, Any]) -> dict[str, Any]:
    """One writer: turns into its session until its time is up (runs in a pool process)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from chat_sessions.exceptions import GenerationInProgress
    from chat_sessions.models import ChatSession, MessageStatus, Sender, SessionChatMessage
    from chat_sessions.services import turn_start

    session = ChatSession.objects.get(pk=task["session_id"])
    user = get_user_model().objects.get(pk=task["user_id"])
    connection.ensure_connection()
    turns = conflicts = 0
    order = (task["index"] + 1) * 10_000_000
    late = max(time.monotonic() - task["start_at"], 0.0)
    time.sleep(max(task["start_at"] - time.monotonic(), 0))
    stop_at = task["start_at"] + task["seconds"]
    while time.monotonic() < stop_at:
        if task["mode"] == "ordered":
            try:
                answer_id = turn_start(session=session, user=user, text="A question").assistant_message.pk
            except GenerationInProgress:
                conflicts += 1
                time.sleep(0.001)
                continue
        else:
            now = timezone.now()
            with transaction.atomic():
                _, answer = SessionChatMessage.objects.bulk_create(
                    [
                        SessionChatMessage(
                            session=session,
                            sender=Sender.USER,
                            message="A question",
                            message_order=order + 1,
                            timestamp=now,
                            updated_at=now,
                        ),
                        # Not `streaming`: with no ordering, several writers of one hot session
                        # would hold answers open at once, which the database refuses.
                        SessionChatMessage(
                            session=session,
                            sender=Sender.ASSISTANT,
                            status=MessageStatus.INTERRUPTED,
                            message_order=order + 2,
                            timestamp=now,
                            updated_at=now,
                        ),
                    ]
                )
            order += 2
            answer_id = answer.pk
        SessionChatMessage.objects.filter(pk=answer_id).update(
            message="An answer", status=MessageStatus.COMPLETE, updated_at=timezone.now()
        )
        turns += 1
    connection.close()
    return {"turns": turns, "conflicts": conflicts, "late_seconds": round(late, 3)}
