"""Celery tasks that keep RAGFlow in line with the notebooks. Each calls `notebooks.provisioning`.

- `dataset_provision`: a new notebook's dataset.
- `source_upload` then `source_parse_poll`: a new source's document, and its parse progress
  (the poll re-schedules itself with a growing countdown until RAGFlow is done, within a budget).
- `agent_provision`: a notebook's agent, when its first chat session opens.
- `agents_outdated_update` (beat) then `agent_template_update`: agents made from another version
  of their template, or for another `RAGFLOW_LLM_ID`, get the current DSL.
- `remote_cleanup_run`: deletions RAGFlow still owes for things deleted here.

All are safe to run twice and acknowledged late (a worker that dies mid-task leaves it to the
next). Transient RAGFlow failures are retried with exponential backoff; the last attempt records
the error on the row instead of raising, so it shows where users and administrators look.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Task, shared_task

from notebooks import provisioning
from notebooks.ragflow.errors import TRANSIENT_ERRORS

RETRYING = {
    "acks_late": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
}
#: Polls of one document's parse progress, and the pause before each (growing to the cap).
PARSE_POLLS = 120
PARSE_POLL_FIRST_DELAY = 2.0
PARSE_POLL_MAX_DELAY = 30.0


def _final_attempt(task: Task) -> bool:
    return task.request.retries >= (task.max_retries or 0)


@shared_task(bind=True, time_limit=90, soft_time_limit=75, **RETRYING)
def dataset_provision(self: Task, *, notebook_id: str) -> None:
    """Create the notebook's dataset in RAGFlow, then upload the sources waiting for it."""
    provisioning.dataset_provision(notebook_id=notebook_id, final_attempt=_final_attempt(self))


@shared_task(bind=True, time_limit=300, soft_time_limit=270, **RETRYING)
def source_upload(self: Task, *, source_id: str) -> None:
    """Upload a source to its notebook's dataset, start parsing it, and follow its progress."""
    if provisioning.source_upload(source_id=source_id, final_attempt=_final_attempt(self)):
        source_parse_poll.apply_async(kwargs={"source_id": source_id, "poll": 0}, countdown=PARSE_POLL_FIRST_DELAY)


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def source_parse_poll(*, source_id: str, poll: int = 0) -> None:
    """Store a document's parse progress; ask again later until RAGFlow has finished, within a budget."""
    if provisioning.source_parse_refresh(source_id=source_id):
        return
    if poll + 1 >= PARSE_POLLS:
        waited = sum(parse_poll_delay(n) for n in range(PARSE_POLLS))
        provisioning.source_parse_give_up(source_id=source_id, waited=timedelta(seconds=waited))
        return
    source_parse_poll.apply_async(
        kwargs={"source_id": source_id, "poll": poll + 1}, countdown=parse_poll_delay(poll + 1)
    )


def parse_poll_delay(poll: int) -> float:
    return min(PARSE_POLL_FIRST_DELAY * 1.5**poll, PARSE_POLL_MAX_DELAY)


@shared_task(bind=True, time_limit=90, soft_time_limit=75, **RETRYING)
def agent_provision(self: Task, *, notebook_id: str) -> None:
    """Create the notebook's agent in RAGFlow from the template, once its dataset is ready."""
    provisioning.agent_provision(notebook_id=notebook_id, final_attempt=_final_attempt(self))


@shared_task(bind=True, time_limit=90, soft_time_limit=75, **RETRYING)
def agent_template_update(self: Task, *, notebook_id: str) -> None:
    """Give the notebook's agent the current template's DSL and LLM (sessions opened after it get it)."""
    provisioning.agent_template_update(notebook_id=notebook_id, final_attempt=_final_attempt(self))


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def agents_outdated_update() -> int:
    """Beat: ask for the update of agents made from another template version or LLM."""
    return provisioning.agents_outdated_update()


@shared_task(bind=True, time_limit=120, soft_time_limit=100, **{**RETRYING, "max_retries": 10})
def remote_cleanup_run(self: Task, *, cleanup_id: int) -> None:
    """Delete in RAGFlow what a `RemoteCleanup` owes; `failed` and visible when RAGFlow keeps refusing."""
    provisioning.remote_cleanup_run(cleanup_id=cleanup_id, final_attempt=_final_attempt(self))


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def remote_cleanups_resume() -> int:
    """Beat: ask again for RAGFlow clean-ups whose task was lost, so no deletion is forgotten."""
    return provisioning.remote_cleanups_resume()
