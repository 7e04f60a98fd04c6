"""Real Celery: a worker and beat started as processes, on the filesystem broker and on Redis.

They run `celery -A deepsight worker|beat` with `deepsight.testing.worker_settings` (tasks not eager,
this test's database, a broker of the test's own: a temporary folder, or Redis under a key prefix
no other run uses). The test process publishes to the same broker, so a message sent over the API
is titled by the worker, not in the test. Every process is killed when its test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import kombu.pools
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from chat_sessions.models import ChatSession, MessageStatus, Sender, SessionStatus, TitleSource
from chat_sessions.tasks import session_title_generate
from chat_sessions.tests.factories import ChatSessionFactory, MessageFactory, NotebookFactory
from deepsight.celery import app as celery_app
from deepsight.testing.sse import sse_request

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BASE_DIR = Path(settings.BASE_DIR)
START_TIMEOUT = 40.0
RESULT_TIMEOUT = 30.0
#: Every task of a test is done when it stops its processes: no need to wait out a slow shutdown.
STOP_GRACE = 2.0


@dataclass(frozen=True)
class Broker:
    url: str
    options: dict[str, Any]


@pytest.fixture(params=["filesystem", pytest.param("redis", marks=pytest.mark.redis)])
def broker(request, tmp_path) -> Broker:
    if request.param == "redis":
        if not settings.REDIS_URL:
            pytest.skip("needs the Redis at REDIS_URL")
        return Broker(settings.REDIS_URL, {"global_keyprefix": f"deepsight-test-{uuid.uuid4().hex}:"})
    folder = tmp_path / "broker"
    folder.mkdir()
    (tmp_path / "control").mkdir()
    return Broker(
        "filesystem://",
        {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(tmp_path / "control"),
            "store_processed": False,
        },
    )


def _celery_pools_reset() -> None:
    """Forget every connection and producer pool, the app's and kombu's process-wide ones.

    kombu keeps producer pools per connection in a global registry; left holding a closed pool,
    every later `.delay()` from another thread fails with "Acquire on closed pool".
    """
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    kombu.pools.reset()


@contextmanager
def publishing_to(broker: Broker) -> Iterator[None]:
    """Make this process send tasks to `broker` instead of running them eagerly."""
    keys = ("task_always_eager", "broker_url", "broker_transport_options")
    saved = {key: celery_app.conf[key] for key in keys}
    celery_app.conf.update(task_always_eager=False, broker_url=broker.url, broker_transport_options=broker.options)
    _celery_pools_reset()
    try:
        yield
    finally:
        _celery_pools_reset()
        celery_app.conf.update(saved)


@dataclass
class CeleryProcesses:
    """Worker and beat processes of one test, with their logs; `stop()` kills every one of them."""

    tmp_path: Path
    broker: Broker
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def log(self, name: str) -> str:
        path = self.tmp_path / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _start(self, name: str, args: list[str], env: dict[str, str], ready: str) -> subprocess.Popen:
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "deepsight.testing.worker_settings",
            "DEEPSIGHT_WORKER_DB_NAME": str(connection.settings_dict["NAME"]),
            "DEEPSIGHT_WORKER_BROKER_URL": self.broker.url,
            "DEEPSIGHT_WORKER_BROKER_OPTIONS": json.dumps(self.broker.options),
            "CELERY_BEAT_SCHEDULE_FILENAME": str(self.tmp_path / "beat-schedule"),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        log = (self.tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "deepsight", *args],
            cwd=BASE_DIR,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches the pool children too
        )
        self.processes[name] = process
        deadline = time.monotonic() + START_TIMEOUT
        while ready not in self.log(name):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"celery {name} did not start:\n{self.log(name)[-3000:]}")
            time.sleep(0.1)
        return process

    def start_worker(self, *, openai_base_url: str = "") -> subprocess.Popen:
        return self._start(
            "worker",
            [
                "worker",
                "--pool=prefork",
                "--concurrency=1",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                f"--hostname=test-{uuid.uuid4().hex[:8]}@%h",
            ],
            {"OPENAI_BASE_URL": openai_base_url},
            ready=" ready.",
        )

    def start_beat(self, *, every_seconds: float) -> subprocess.Popen:
        return self._start(
            "beat",
            ["beat", "--loglevel=INFO"],
            {"DEEPSIGHT_WORKER_HOUSEKEEPING_SECONDS": str(every_seconds)},
            ready="beat: Starting",
        )

    def pool_children(self) -> list[int]:
        """The prefork pool's processes under the worker's main process."""
        pid = self.processes["worker"].pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(child) for child in children]

    def stop(self) -> None:
        """Shut each process down, then kill whatever of its group is left."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGQUIT)  # cold shutdown: every test is done with its tasks
        deadline = time.monotonic() + STOP_GRACE
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@pytest.fixture
def celery_processes(broker, tmp_path) -> Iterator[CeleryProcesses]:
    processes = CeleryProcesses(tmp_path=tmp_path, broker=broker)
    try:
        with publishing_to(broker):
            yield processes
    finally:
        processes.stop()


def wait_for(predicate: Callable[[], bool], *, timeout: float = RESULT_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def titled(session: ChatSession) -> bool:
    return ChatSession.objects.filter(pk=session.pk, title_source=TitleSource.AUTO).exists()


def test_the_worker_titles_a_session_after_its_first_answer(
    celery_processes, live_server_asgi, openai_agent, user, user_token
):
    session = ChatSessionFactory(container=NotebookFactory(owner=user), created_by=user)
    openai_agent.script(tokens=["Chloroplasts", " turn", " light", " into", " sugar."])
    openai_agent.script(completion='"Light Into Sugar."')
    celery_processes.start_worker(openai_base_url=openai_agent.base_url)

    events = list(
        sse_request(
            "POST",
            f"{live_server_asgi.url}/api/v1/notebooks/{session.container_id}/chat/sessions/{session.id}/messages/",
            json_body={"message": "How do plants make sugar?"},
            headers={"Authorization": f"Token {user_token}"},
        )
    )
    answered_at = time.monotonic()

    assert events[-1].type == "done"
    assert wait_for(lambda: titled(session)), celery_processes.log("worker")[-3000:]
    assert time.monotonic() - answered_at < 10
    session.refresh_from_db()
    assert session.title == "Light Into Sugar"
    title_request = openai_agent.requests[-1]
    assert title_request["stream"] is False
    assert title_request["max_tokens"] == 24
    assert "How do plants make sugar?" in title_request["messages"][0]["content"]
    assert wait_for(lambda: "session_title_generate" in (log := celery_processes.log("worker")) and "succeeded" in log)


def test_without_an_llm_the_worker_titles_from_the_first_question(celery_processes):
    notebook = NotebookFactory()
    session = ChatSessionFactory(container=notebook, created_by=notebook.owner)
    MessageFactory(session=session, sender=Sender.USER, message="What does RuBisCO do?", message_order=1)
    MessageFactory(session=session, sender=Sender.ASSISTANT, message="It fixes carbon.", message_order=2)
    celery_processes.start_worker()

    session_title_generate.delay(session_id=str(session.pk))

    assert wait_for(lambda: titled(session)), celery_processes.log("worker")[-3000:]
    session.refresh_from_db()
    assert session.title == "What does RuBisCO do"


def test_beat_closes_an_idle_session_through_the_worker(celery_processes):
    notebook = NotebookFactory()
    idle = ChatSessionFactory(container=notebook, created_by=notebook.owner)
    recent = ChatSessionFactory(container=notebook, created_by=notebook.owner)
    MessageFactory(session=idle, sender=Sender.USER, message="Where is chlorophyll?", message_order=1)
    MessageFactory(session=idle, sender=Sender.ASSISTANT, message="In the thylakoids.", message_order=2)
    ChatSession.objects.filter(pk=idle.pk).update(
        last_activity=timezone.now() - timedelta(hours=25), message_count=2, title_source=TitleSource.USER
    )
    celery_processes.start_worker()
    celery_processes.start_beat(every_seconds=1)

    assert wait_for(lambda: ChatSession.objects.filter(pk=idle.pk, status=SessionStatus.CLOSED).exists()), (
        celery_processes.log("beat")[-2000:] + celery_processes.log("worker")[-3000:]
    )
    idle.refresh_from_db()
    recent.refresh_from_db()
    assert idle.ended_at is not None
    assert list(idle.messages.order_by("message_order").values_list("message", flat=True)) == [
        "Where is chlorophyll?",
        "In the thylakoids.",
    ]
    assert recent.status == SessionStatus.ACTIVE
    assert "Sending due task chat-sessions-housekeeping" in celery_processes.log("beat")
    assert wait_for(lambda: "sessions_housekeeping" in (log := celery_processes.log("worker")) and "succeeded" in log)


def test_a_title_task_whose_worker_process_is_killed_is_run_again_and_written_once(celery_processes, fake_openai):
    notebook = NotebookFactory()
    session = ChatSessionFactory(container=notebook, created_by=notebook.owner)
    MessageFactory(session=session, sender=Sender.USER, message="Why are leaves green?", message_order=1)
    MessageFactory(session=session, sender=Sender.ASSISTANT, message="Chlorophyll reflects green.", message_order=2)
    fake_openai.script(completion="Lost With Its Process", completion_delay=8)
    fake_openai.script(completion="Written Once")
    celery_processes.start_worker(openai_base_url=fake_openai.base_url)
    [first_child] = celery_processes.pool_children()

    session_title_generate.delay(session_id=str(session.pk))
    assert wait_for(lambda: len(fake_openai.requests) == 1), celery_processes.log("worker")[-3000:]
    os.kill(first_child, signal.SIGKILL)

    assert wait_for(lambda: titled(session)), celery_processes.log("worker")[-3000:]
    session.refresh_from_db()
    assert session.title == "Written Once"
    assert len(fake_openai.requests) == 2
    assert first_child not in celery_processes.pool_children()
    assert "WorkerLostError" in celery_processes.log("worker")
    # Delivered again to a worker that finds the title written: nothing more is asked or written.
    session_title_generate.delay(session_id=str(session.pk))
    assert wait_for(lambda: celery_processes.log("worker").count("succeeded") >= 2)
    session.refresh_from_db()
    assert session.title == "Written Once"
    assert len(fake_openai.requests) == 2
    assert session.messages.filter(status=MessageStatus.COMPLETE).count() == 2


def test_the_run_command_starts_web_worker_and_beat_and_ctrl_c_stops_all_three(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "deepsight.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "",
        "CELERY_FILESYSTEM_DIR": str(tmp_path / "celery"),
        "CELERY_BEAT_SCHEDULE_FILENAME": str(tmp_path / "beat-schedule"),
        "CHAT_HOUSEKEEPING_EVERY_MINUTES": "0.02",
        "PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True, timeout=120)
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        run = subprocess.Popen(
            ["bin/run-embedded"], cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output() -> str:
        return log_path.read_text(errors="replace")

    try:
        # Beat's first housekeeping, run by the worker, over the filesystem broker.
        assert wait_for(
            lambda: "Uvicorn running" in output() and "sessions_housekeeping" in output() and "succeeded" in output(),
            timeout=START_TIMEOUT,
        ), output()[-3000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz/", timeout=5) as response:
            assert response.status == 200
        assert (tmp_path / "celery" / "broker").is_dir()

        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
        run.wait(timeout=30)

        with pytest.raises(ProcessLookupError):
            os.killpg(run.pid, 0)  # web, worker (and its pool) and beat are all gone
        assert "Stopping web, worker and beat" in output()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=5)
