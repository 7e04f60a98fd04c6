"""Celery tasks of the chat app. Each is idempotent and calls services; none holds logic of its own.

- `sessions_housekeeping` (beat, every few minutes): interrupts answers left `streaming` by dead
  processes, closes idle sessions, and asks again for titles and clean-ups whose task was lost.
- `session_title_generate`: names a session from its first complete exchange.
- `remote_session_delete`: removes the upstream conversation of a permanently deleted session.

Every task acknowledges its message only after it ran (`acks_late`), so a worker killed mid-task
has the message delivered again (`task_reject_on_worker_lost` in settings); running twice is
harmless because each write is conditional.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval
from django.utils import timezone

from chat_sessions import services, titles
from chat_sessions.agents.base import AgentError

logger = logging.getLogger(__name__)

#: Retries of a remote clean-up after the first attempt: about 20 minutes of backoff in all.
REMOTE_CLEANUP_RETRIES = 8
REMOTE_CLEANUP_BACKOFF_FACTOR = 5
REMOTE_CLEANUP_BACKOFF_MAX = 600


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def sessions_housekeeping() -> dict[str, int]:
    """Interrupt stale streams, close sessions idle past IDLE_TIMEOUT, re-ask lost titles."""
    now = timezone.now()
    # Stale streams first: a session whose only "running" answer belonged to a dead process can
    # then be closed in this same run.
    interrupted = services.messages_interrupt_stale(now=now)
    closed = services.sessions_close_idle(now=now)
    untitled = [
        str(pk)
        for pk in titles.sessions_awaiting_title(now=now).values_list("pk", flat=True)[: titles.TITLE_SWEEP_BATCH]
    ]
    for session_id in untitled:
        session_title_generate.delay(session_id=session_id)
    cleanups = services.remote_session_cleanups_resume(now=now)
    return {
        "interrupted": interrupted,
        "closed": closed,
        "titles_requested": len(untitled),
        "cleanups_resumed": cleanups,
    }


@shared_task(acks_late=True, time_limit=90, soft_time_limit=75)
def session_title_generate(*, session_id: str) -> str | None:
    """Title a session from its first complete exchange, unless its title is no longer the default.

    The LLM's tries are bounded (`titles.TITLE_ATTEMPTS` x `TITLE_ATTEMPT_SECONDS` plus backoff),
    well inside the soft time limit, so the heuristic fallback always gets its turn.
    """
    return titles.session_title_generate(session_id=session_id)


@shared_task(bind=True, acks_late=True, max_retries=REMOTE_CLEANUP_RETRIES, time_limit=60, soft_time_limit=50)
def remote_session_delete(self, *, cleanup_id: int) -> bool:
    """Delete the upstream conversation of a deleted session; retried with backoff while it fails.

    After the last retry the clean-up row is left `failed` with the error, for the admin to see.
    """
    last_attempt = self.request.retries >= self.max_retries
    try:
        return services.remote_session_cleanup_run(cleanup_id=cleanup_id, last_attempt=last_attempt)
    except AgentError as exc:
        countdown = get_exponential_backoff_interval(
            factor=REMOTE_CLEANUP_BACKOFF_FACTOR,
            retries=self.request.retries,
            maximum=REMOTE_CLEANUP_BACKOFF_MAX,
            full_jitter=True,
        )
        raise self.retry(exc=exc, countdown=countdown) from exc
