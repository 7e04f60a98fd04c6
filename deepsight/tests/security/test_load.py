"""Load held: deepsight under uvicorn, many users opening sessions and streaming answers at once.

The short, bounded form of `deepsight/loadtest.py` that CI runs (on SQLite, and on PostgreSQL with
Redis): `LOAD_USERS` users with two streams each for `LOAD_SECONDS` seconds, answers streamed by
the fake OpenAI-compatible server. Afterwards: no 5xx, every stream ended with `done` or `error`,
every stored turn is whole, orders are gap-free, and the numbers are printed (`-s` shows them).
"""

from __future__ import annotations

import asyncio
import os

import pytest
from django.db.models import Count

from chat_sessions.models import ChatSession, MessageStatus, Sender, SessionChatMessage
from deepsight.loadtest import run_load, users_prepare

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LOAD_USERS = int(os.environ.get("DEEPSIGHT_LOAD_USERS", "10"))
LOAD_SECONDS = float(os.environ.get("DEEPSIGHT_LOAD_SECONDS", "8"))


def test_many_users_streaming_at_once_get_whole_answers_and_no_server_error(live_server_asgi, openai_agent, capsys):
    openai_agent.default.tokens = [f"w{i} " for i in range(12)]
    openai_agent.default.delay = 0.02
    users = users_prepare(LOAD_USERS)

    report = asyncio.run(
        run_load(base_url=live_server_asgi.url, users=users, duration=LOAD_SECONDS, streams_per_user=2)
    )
    with capsys.disabled():
        print(f"\n{report.summary()}")

    assert report.requests > LOAD_USERS * 4, "the load never got going"
    assert report.server_errors == [], report.problems[:5]
    assert set(report.statuses()) <= {200, 201}, report.statuses()
    assert report.stream_ends["none"] == 0
    assert sum(report.stream_ends.values()) == report.stream_ends["done"] + report.stream_ends["error"]
    assert report.max_open_streams >= LOAD_USERS  # many streams were open at once
    assert not SessionChatMessage.objects.filter(status=MessageStatus.STREAMING).exists()
    whole = "".join(openai_agent.default.tokens)
    for session in ChatSession.objects.annotate(stored=Count("messages")):
        messages = list(session.messages.order_by("message_order"))
        assert [m.message_order for m in messages] == list(range(1, len(messages) + 1))
        assert session.message_count == session.stored == len(messages)
        assert [m.sender for m in messages] == [Sender.USER, Sender.ASSISTANT] * (len(messages) // 2)
        for answer in messages[1::2]:
            assert (answer.status, answer.message) == (MessageStatus.COMPLETE, whole)
    assert SessionChatMessage.objects.filter(sender=Sender.ASSISTANT).count() == report.stream_ends["done"]
