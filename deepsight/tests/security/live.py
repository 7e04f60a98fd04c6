"""Helpers for the security suite's tests over real sockets: sending, reading streams, checking turns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connection

from chat_sessions.models import ChatSession, MessageStatus, Sender, SessionChatMessage
from deepsight.testing.servers import free_socket
from deepsight.testing.sse import SSEResponse, sse_request

ROOT = Path(__file__).resolve().parents[3]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


def session_url(base_url: str, session: ChatSession) -> str:
    return f"{base_url}/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/"


def send(base_url: str, session: ChatSession, token: str, text: str = "Question?", **body) -> SSEResponse:
    return sse_request(
        "POST", session_url(base_url, session) + "messages/", json_body={"message": text, **body}, headers=auth(token)
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def nothing_streams(session: ChatSession) -> bool:
    return not SessionChatMessage.objects.filter(session=session, status=MessageStatus.STREAMING).exists()


def assert_turns_whole(session: ChatSession) -> None:
    """Orders 1..n with no gap, the counter equal to the messages, questions and answers in pairs."""
    session.refresh_from_db()
    messages = list(SessionChatMessage.objects.filter(session=session).order_by("message_order"))
    assert [m.message_order for m in messages] == list(range(1, len(messages) + 1))
    assert session.message_count == len(messages)
    assert [m.sender for m in messages] == [Sender.USER, Sender.ASSISTANT] * (len(messages) // 2)


class ServerProcess:
    """deepsight under uvicorn in its own OS process, on the test's database (and Redis, if any)."""

    def __init__(self, *, openai_url: str, stale_after: float | None = None, heartbeat: float | None = None) -> None:
        """`stale_after` and `heartbeat` (seconds): the process's `STALE_STREAM_AFTER` and
        `HEARTBEAT_INTERVAL`, for a test that needs an answer to go stale in seconds."""
        database = settings.DATABASES["default"]
        if database["ENGINE"].endswith("sqlite3"):
            database_url = f"sqlite:///{connection.settings_dict['NAME']}"
        else:
            server = f"{database['USER']}@{database['HOST']}:{database['PORT']}"
            database_url = f"postgres://{server}/{connection.settings_dict['NAME']}"
        sock = free_socket()
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable, "-m", "uvicorn", "deepsight.asgi:application",
            "--port", str(self.port), "--log-level", "warning",
        ]  # fmt: skip
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "deepsight.tests.security.server_settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": settings.CHAT_SESSIONS.get("REDIS_URL", ""),
            "DEEPSIGHT_TEST_RUN_ID": settings.RUN_ID,
            "DEEPSIGHT_TEST_OPENAI_URL": openai_url,
        }
        if stale_after is not None:
            self.env["DEEPSIGHT_TEST_STALE_SECONDS"] = str(stale_after)
            self.env["DEEPSIGHT_TEST_HEARTBEAT_SECONDS"] = str(heartbeat or stale_after / 4)
        self.process = None

    def start(self) -> ServerProcess:
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env)

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz/", timeout=1) as response:
                    return response.status == 200
            except OSError:
                return False

        if not wait_for(up, timeout=30):
            self.stop()
            raise RuntimeError("the deepsight process did not start")
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no `finally`, exactly like the OOM killer or a pulled plug."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a stream held open past uvicorn's graceful shutdown
                self.kill()
