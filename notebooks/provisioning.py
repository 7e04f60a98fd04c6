"""Mirroring notebooks into RAGFlow: their dataset, their sources' documents, their agent, and clean-up.

The local rows are the truth the user sees; RAGFlow is brought in line by workers
(`notebooks.tasks`), which call the functions here. The `*_schedule` and `*_record` functions
run inside the caller's transaction and enqueue work on commit, and only when RAGFlow is
configured (`RAGFLOW_BASE_URL`). The others talk to RAGFlow, never while holding a lock or a
transaction open, and record what happened on the row: `status` and `last_error`.

How each step stays single and safe to repeat:

- dataset: looked up by its name (`deepsight-<notebook uuid>`) before it is created, so a repeated
  task adopts the first one instead of making `name(1)`;
- document: a source is claimed (`pending` -> `parsing`) by one conditional UPDATE, and its
  RAGFlow id is saved the moment the upload returns, before parsing starts;
- agent: its row is created once, under a lock on the notebook row, and only its creator enqueues
  the remote creation; RAGFlow's per-tenant unique titles make a repeat adopt the same agent;
- agent update (a raised template version, another `RAGFLOW_LLM_ID`): the whole DSL is sent
  again, so a repeat changes nothing, and what it was built from is recorded only on the agent
  that was sent it;
- anything created in RAGFlow for a row deleted meanwhile is handed to clean-up at once;
- a dataset RAGFlow lost (deleted in its UI, say): a source call that RAGFlow answers "you don't
  own the dataset" asks RAGFlow whether it still has it, and only if it says no is the dataset
  made again, every source sent to it again, and the agent pointed at it (`dataset_lost`).

Failures: transient ones (RAGFlow down, slow, 5xx, or the dataset not ready yet) are raised for the
task to retry with backoff, with `last_error` already saying why; on the last attempt, and for
refusals that will not change by retrying (bad key, bad request), the row becomes `error`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from chat_sessions.models import CleanupStatus
from chat_sessions.services import remote_cleanups_claim_stuck
from notebooks.models import (
    CleanupKind,
    Notebook,
    ParseStatus,
    RagFlowAgent,
    RagFlowDataset,
    RemoteCleanup,
    RemoteStatus,
    Source,
    SourceKind,
)
from notebooks.ragflow.client import RagFlowClient, ragflow_call
from notebooks.ragflow.dsl import DEFAULT_TEMPLATE, AgentTemplate, dsl_build, template_load
from notebooks.ragflow.errors import RagFlowError, RagFlowNotFound, RagFlowNotReady, RagFlowRefused
from notebooks.uploads import display_name

logger = logging.getLogger(__name__)

#: A source claimed for upload longer ago than this belongs to a worker that died.
UPLOAD_CLAIM_STALE_AFTER = timedelta(minutes=15)
MAX_ERROR_CHARS = 2000


def ragflow_enabled() -> bool:
    return bool(settings.RAGFLOW_BASE_URL)


def dataset_name(*, notebook_id: Any) -> str:
    return f"deepsight-{notebook_id}"


def agent_title(*, notebook_id: Any) -> str:
    return f"deepsight-nb-{notebook_id}"


# Datasets
# ------------------------------------------------------------------------------


def notebook_provision_start(*, notebook: Notebook) -> RagFlowDataset | None:
    """Inside notebook creation: the dataset row (pending), created in RAGFlow after commit."""
    if not ragflow_enabled():
        return None
    dataset = RagFlowDataset.objects.create(notebook=notebook, name=dataset_name(notebook_id=notebook.pk))
    _on_commit_enqueue("dataset_provision", notebook_id=str(notebook.pk))
    return dataset


def dataset_provision(*, notebook_id: str, final_attempt: bool = True) -> None:
    """Create (or find again) the notebook's RAGFlow dataset, then send it the waiting sources."""
    dataset = RagFlowDataset.objects.filter(notebook_id=notebook_id).first()
    if dataset is None:
        return
    if not dataset.remote_id:
        try:
            remote = ragflow_call(lambda client: _dataset_find_or_create(client, name=dataset.name))
        except RagFlowError as exc:
            _failure_record(RagFlowDataset, pk=dataset.pk, exc=exc, final_attempt=final_attempt)
            return
        claimed = RagFlowDataset.objects.filter(pk=dataset.pk, remote_id="").update(
            remote_id=str(remote["id"]),
            name=str(remote.get("name") or dataset.name)[:128],
            status=RemoteStatus.READY,
            last_error="",
            metadata=_dataset_metadata(remote),
            updated_at=timezone.now(),
        )
        if not claimed:
            _orphan_record(notebook_id=notebook_id, remote_ids={"dataset_id": str(remote["id"])}, what="dataset")
            return
        logger.info("RAGFlow dataset %s ready for notebook %s", remote["id"], notebook_id)
        # An agent made for a dataset RAGFlow lost (`dataset_lost`) is pointed at this one.
        if RagFlowAgent.objects.filter(notebook_id=notebook_id, template_version=DATASET_LOST).exists():
            _on_commit_enqueue("agent_template_update", notebook_id=str(notebook_id))
    elif dataset.status != RemoteStatus.READY:
        RagFlowDataset.objects.filter(pk=dataset.pk).update(status=RemoteStatus.READY, last_error="")
    sources_upload_schedule(notebook_id=notebook_id)


async def _dataset_find_or_create(client: RagFlowClient, *, name: str) -> dict[str, Any]:
    found = await client.dataset_find(name=name)
    if found is not None:
        return found
    embedding_model = getattr(settings, "RAGFLOW_EMBEDDING_MODEL", "")
    return await client.dataset_create(name=name, description="deepsight notebook", embedding_model=embedding_model)


#: The template version recorded on an agent whose DSL names a dataset RAGFlow lost: no template
#: has it, so the agent counts as outdated (and the beat's update retries it) until it is updated.
DATASET_LOST = "dataset-lost"
SENT_AGAIN = "Being sent again: RAGFlow lost the notebook's knowledge base."


def _says_dataset_gone(exc: RagFlowError) -> bool:
    """RAGFlow's answer to a call on a dataset it does not have for us: 102 or 108."""
    return isinstance(exc, RagFlowNotFound) or (isinstance(exc, RagFlowRefused) and exc.code == 108)


def dataset_lost(*, notebook_id: Any, remote_id: str) -> bool:
    """RAGFlow said it does not have the notebook's dataset: if it confirms, make the dataset again.

    Confirmed by asking for the dataset itself, as a document's "not found" or a refusal for another
    reason must not cost a notebook its knowledge base. Then, in one transaction: the dataset is
    forgotten (pending, to be made again), every source is to be sent again (their documents went
    with the dataset), and the agent, whose DSL names the lost dataset, is marked for an update
    once the new one exists. True when the dataset was (or had just been) forgotten.
    """
    try:
        if ragflow_call(lambda client: client.dataset_exists(dataset_id=remote_id)):
            return False
    except RagFlowError:
        return False  # cannot tell now: the source's own failure handling stands
    now = timezone.now()
    with transaction.atomic():
        forgotten = RagFlowDataset.objects.filter(notebook_id=notebook_id, remote_id=remote_id).update(
            remote_id="",
            status=RemoteStatus.PENDING,
            last_error="RAGFlow no longer had this knowledge base (deleted there?); it is being made again.",
            updated_at=now,
        )
        if not forgotten:
            return True  # another worker found it first
        logger.warning("RAGFlow dataset %s of notebook %s is gone; it is made again", remote_id, notebook_id)
        _sources_send_again(Source.objects.filter(notebook_id=notebook_id))
        RagFlowAgent.objects.filter(notebook_id=notebook_id).exclude(remote_id="").update(
            template_version=DATASET_LOST, updated_at=now
        )
        _on_commit_enqueue("dataset_provision", notebook_id=str(notebook_id))
    return True


def _sources_send_again(sources: QuerySet[Source]) -> int:
    """Back to `pending` with no RAGFlow document, to be sent to the notebook's new dataset."""
    return sources.exclude(parse_status=ParseStatus.DELETING).update(
        remote_document_id="",
        parse_status=ParseStatus.PENDING,
        parse_progress=0.0,
        chunk_count=0,
        last_error=SENT_AGAIN,
        updated_at=timezone.now(),
    )


def _source_met_lost_dataset(*, source: Source, dataset: RagFlowDataset, exc: RagFlowError) -> bool:
    """A source's call failed because RAGFlow lost the dataset (`dataset_lost` confirms it): True,
    and the source is sent to the new dataset, unless it was reset (or sent) meanwhile."""
    if not (_says_dataset_gone(exc) and dataset_lost(notebook_id=source.notebook_id, remote_id=dataset.remote_id)):
        return False
    if _sources_send_again(Source.objects.filter(pk=source.pk, remote_document_id=source.remote_document_id)):
        _on_commit_enqueue("source_upload", source_id=str(source.pk))
    return True


def _dataset_metadata(remote: dict[str, Any]) -> dict[str, Any]:
    keys = ("embedding_model", "chunk_method", "language", "permission", "tenant_id", "create_time")
    return {key: remote[key] for key in keys if key in remote}


# Sources
# ------------------------------------------------------------------------------


def source_initial_state() -> dict[str, Any]:
    """How a new source starts: waiting for RAGFlow when it is configured, else ready at once."""
    if ragflow_enabled():
        return {"parse_status": ParseStatus.PENDING, "parse_progress": 0.0}
    return {"parse_status": ParseStatus.READY, "parse_progress": 1.0}


def source_upload_schedule(*, source: Source) -> None:
    """Inside source creation: upload it to the notebook's dataset after commit."""
    if ragflow_enabled():
        _on_commit_enqueue("source_upload", source_id=str(source.pk))


def sources_upload_schedule(*, notebook_id: str) -> int:
    """Enqueue the upload of every source of a notebook not yet in RAGFlow (the dataset just got ready)."""
    waiting = list(
        Source.objects.filter(notebook_id=notebook_id, remote_document_id="")
        .exclude(parse_status__in=(ParseStatus.DELETING, ParseStatus.ERROR))
        .values_list("pk", flat=True)
    )
    for source_id in waiting:
        _on_commit_enqueue("source_upload", source_id=str(source_id))
    return len(waiting)


def source_upload(*, source_id: str, final_attempt: bool = True) -> bool:
    """Upload a source to its notebook's dataset and start parsing; True when parsing started.

    A source whose dataset is not ready stays `pending`: the dataset, once ready, sends it.
    """
    source = Source.objects.filter(pk=source_id).select_related("notebook__ragflow_dataset").first()
    if source is None:
        return False
    dataset = getattr(source.notebook, "ragflow_dataset", None)
    if dataset is None or not dataset.remote_id:
        why = dataset.last_error if dataset is not None and dataset.last_error else "it is being created"
        Source.objects.filter(pk=source.pk, remote_document_id="").update(
            last_error=f"Waiting for the notebook's knowledge base: {why}"[:MAX_ERROR_CHARS]
        )
        return False
    if not source.remote_document_id:
        stale = timezone.now() - UPLOAD_CLAIM_STALE_AFTER
        claimed = (
            Source.objects.filter(pk=source.pk, remote_document_id="")
            .filter(
                Q(parse_status__in=(ParseStatus.PENDING, ParseStatus.READY))
                | Q(parse_status=ParseStatus.PARSING, updated_at__lt=stale)
            )
            .update(parse_status=ParseStatus.PARSING, parse_progress=0.0, last_error="", updated_at=timezone.now())
        )
        if not claimed:
            return False  # another worker has it, or it failed for good
        try:
            content, filename, content_type = _source_payload(source)
        except OSError as exc:  # the stored file is gone or unreadable: retrying will not help
            logger.error("Source %s could not be read for RAGFlow: %s", source.pk, exc)
            Source.objects.filter(pk=source.pk).update(
                parse_status=ParseStatus.ERROR, last_error="The stored file could not be read."
            )
            return False
        try:
            document = ragflow_call(
                lambda client: client.document_upload(
                    dataset_id=dataset.remote_id, filename=filename, content=content, content_type=content_type
                )
            )
        except RagFlowError as exc:
            if _source_met_lost_dataset(source=source, dataset=dataset, exc=exc):
                return False
            _source_failure(source_id=source.pk, exc=exc, final_attempt=final_attempt, status=ParseStatus.PENDING)
            return False
        saved = Source.objects.filter(pk=source.pk, remote_document_id="").update(
            remote_document_id=str(document["id"]), updated_at=timezone.now()
        )
        if not saved:  # deleted while it uploaded
            _orphan_record(
                notebook_id=source.notebook_id,
                remote_ids={"dataset_id": dataset.remote_id, "document_ids": [str(document["id"])]},
                what=f"source {source.title!r}",
                kind=CleanupKind.DOCUMENT,
            )
            return False
        source.remote_document_id = str(document["id"])
    elif source.parse_status != ParseStatus.PARSING or source.parse_progress > 0:
        return False  # uploaded and parsing (or parsed) already: a repeated task must not re-parse it
    try:
        ragflow_call(
            lambda client: client.documents_parse(
                dataset_id=dataset.remote_id, document_ids=[source.remote_document_id]
            )
        )
    except RagFlowError as exc:
        if _source_met_lost_dataset(source=source, dataset=dataset, exc=exc):
            return False
        _source_failure(source_id=source.pk, exc=exc, final_attempt=final_attempt, status=ParseStatus.PARSING)
        return False
    Source.objects.filter(pk=source.pk).update(parse_status=ParseStatus.PARSING, last_error="")
    return True


def source_sync_retry(*, source: Source) -> bool:
    """Try a source that failed in RAGFlow again: parse it again if uploaded, else upload it."""
    if not ragflow_enabled() or source.parse_status != ParseStatus.ERROR:
        return False
    with transaction.atomic():
        status = ParseStatus.PARSING if source.remote_document_id else ParseStatus.PENDING
        Source.objects.filter(pk=source.pk, parse_status=ParseStatus.ERROR).update(
            parse_status=status, parse_progress=0.0, last_error="", updated_at=timezone.now()
        )
        _on_commit_enqueue("source_upload", source_id=str(source.pk))
    return True


def source_parse_refresh(*, source_id: str) -> bool:
    """Read a source's parse progress from RAGFlow and store it; True once parsing has finished."""
    source = Source.objects.filter(pk=source_id).select_related("notebook__ragflow_dataset").first()
    dataset = getattr(source.notebook, "ragflow_dataset", None) if source is not None else None
    if source is None or dataset is None or not source.remote_document_id or not dataset.remote_id:
        return True  # nothing left to follow
    try:
        state = ragflow_call(
            lambda client: client.document_status(dataset_id=dataset.remote_id, document_id=source.remote_document_id)
        )
    except RagFlowError as exc:
        if exc.transient:
            Source.objects.filter(pk=source.pk).update(last_error=_error_text(exc))
            return False  # ask again at the next poll
        if _source_met_lost_dataset(source=source, dataset=dataset, exc=exc):
            return True  # nothing left to follow: the document went with the dataset
        Source.objects.filter(pk=source.pk).update(parse_status=ParseStatus.ERROR, last_error=_error_text(exc))
        return True
    fields: dict[str, Any] = {"parse_progress": state.progress, "chunk_count": state.chunk_count, "last_error": ""}
    if state.run == "DONE":
        fields.update(parse_status=ParseStatus.READY, parse_progress=1.0)
    elif state.finished:
        reason = state.message.strip().splitlines()[-1] if state.message.strip() else ""
        fields.update(
            parse_status=ParseStatus.ERROR,
            last_error=f"RAGFlow could not parse this document ({state.run}). {reason}".strip()[:MAX_ERROR_CHARS],
        )
    Source.objects.filter(pk=source.pk).exclude(parse_status=ParseStatus.DELETING).update(
        updated_at=timezone.now(), **fields
    )
    return state.finished


def source_parse_give_up(*, source_id: str, waited: timedelta) -> None:
    """Parsing never finished within the polling budget: say so instead of showing `parsing` forever."""
    minutes = round(waited.total_seconds() / 60)
    Source.objects.filter(pk=source_id, parse_status=ParseStatus.PARSING).update(
        parse_status=ParseStatus.ERROR,
        last_error=f"RAGFlow did not finish parsing this document within {minutes} minutes.",
        updated_at=timezone.now(),
    )


def _source_payload(source: Source) -> tuple[bytes, str, str]:
    """The bytes RAGFlow gets for a source, and a file name it can tell the type from."""
    if source.kind == SourceKind.FILE and source.file:
        with source.file.open("rb") as stored:
            content = stored.read()
        extension = PurePath(source.file.name).suffix.lower()
        content_type = source.mime_type or "application/octet-stream"
    else:
        content, extension, content_type = source.content.encode("utf-8"), ".txt", "text/plain"
    stem = display_name(source.title)
    if PurePath(stem).suffix.lower() == extension:
        stem = stem[: -len(extension)]
    while len(f"{stem}{extension}".encode()) > 200:  # RAGFlow refuses names over 255 bytes
        stem = stem[:-8]
    return content, f"{stem or 'source'}{extension}", content_type


def _source_failure(*, source_id: Any, exc: RagFlowError, final_attempt: bool, status: str) -> None:
    """Record a failed upload or parse request; re-raise a transient one for the task to retry."""
    if exc.transient and not final_attempt:
        Source.objects.filter(pk=source_id).update(parse_status=status, last_error=_error_text(exc, retrying=True))
        raise exc
    Source.objects.filter(pk=source_id).update(parse_status=ParseStatus.ERROR, last_error=_error_text(exc))


# Agents
# ------------------------------------------------------------------------------


@transaction.atomic
def agent_ensure(*, notebook_id: Any) -> RagFlowAgent | None:
    """The notebook's agent row, created (and its remote creation enqueued) exactly once.

    Two sessions opened at the same moment both land here: the lock on the notebook row makes
    the second wait until the first has created the row, so only one enqueues the creation. An
    agent (or dataset) left in `error` is put back to `pending` and tried again.
    """
    if not ragflow_enabled():
        return None
    notebook = Notebook.objects.select_for_update().filter(pk=notebook_id).first()
    if notebook is None:
        return None
    dataset = RagFlowDataset.objects.filter(notebook=notebook).first()
    if dataset is None:
        dataset = RagFlowDataset.objects.create(notebook=notebook, name=dataset_name(notebook_id=notebook.pk))
        _on_commit_enqueue("dataset_provision", notebook_id=str(notebook.pk))
    elif dataset.status == RemoteStatus.ERROR and not dataset.remote_id:
        RagFlowDataset.objects.filter(pk=dataset.pk).update(status=RemoteStatus.PENDING)
        _on_commit_enqueue("dataset_provision", notebook_id=str(notebook.pk))
    template = template_load(name=DEFAULT_TEMPLATE)
    agent, created = RagFlowAgent.objects.get_or_create(
        notebook=notebook,
        defaults={
            "title": agent_title(notebook_id=notebook.pk),
            "template_name": template.name,
            "template_version": template.version,
        },
    )
    if created or (agent.status == RemoteStatus.ERROR and not agent.remote_id):
        if not created:
            agent.status = RemoteStatus.PENDING
            agent.save(update_fields=["status", "updated_at"])
        _on_commit_enqueue("agent_provision", notebook_id=str(notebook.pk))
    return agent


def agent_provision(*, notebook_id: str, final_attempt: bool = True) -> None:
    """Create the notebook's agent in RAGFlow from its template, once its dataset is ready."""
    agent = RagFlowAgent.objects.filter(notebook_id=notebook_id).first()
    if agent is None or agent.remote_id:
        return
    dataset = RagFlowDataset.objects.filter(notebook_id=notebook_id).first()
    llm_id = settings.RAGFLOW_LLM_ID
    try:
        template = template_load(name=agent.template_name)
        dsl = _agent_dsl(template=template, dataset=dataset, llm_id=llm_id)
        remote_id = ragflow_call(
            lambda client: client.agent_create(
                title=agent.title, dsl=dsl, description=f"deepsight notebook {notebook_id}"
            )
        )
    except RagFlowError as exc:
        _failure_record(RagFlowAgent, pk=agent.pk, exc=exc, final_attempt=final_attempt)
        return
    claimed = RagFlowAgent.objects.filter(pk=agent.pk, remote_id="").update(
        remote_id=remote_id,
        template_version=template.version,
        llm_id=llm_id,
        status=RemoteStatus.READY,
        last_error="",
        updated_at=timezone.now(),
    )
    if not claimed:
        _orphan_record(notebook_id=notebook_id, remote_ids={"agent_id": remote_id, "session_ids": []}, what="agent")
        return
    logger.info("RAGFlow agent %s (template %s v%s) ready", remote_id, template.name, template.version)


def _agent_dsl(*, template: AgentTemplate, dataset: RagFlowDataset | None, llm_id: str) -> dict[str, Any]:
    """The notebook's agent DSL from `template`; `RagFlowError` (`RagFlowNotReady`) when it cannot be made."""
    if dataset is None or not dataset.remote_id:
        detail = f": {dataset.last_error}" if dataset is not None and dataset.last_error else ""
        raise RagFlowNotReady(f"The notebook's knowledge base is not ready yet{detail}")
    if not llm_id:
        raise RagFlowError("RAGFLOW_LLM_ID is not set: the agent needs a chat model RAGFlow knows.")
    try:
        return dsl_build(template=template, dataset_id=dataset.remote_id, llm_id=llm_id)
    except ValueError as exc:  # a template whose placeholders are not where they are filled in
        raise RagFlowError(str(exc)) from None


#: Agents asked to move to their template's current version per beat run, least recently touched
#: first: a new template version reaches thousands of notebooks over a few runs, not in one burst.
AGENT_UPDATES_PER_RUN = 1000


def agents_outdated_update(*, limit: int = AGENT_UPDATES_PER_RUN) -> int:
    """Beat: ask for the update of agents made from another template version or LLM; how many."""
    if not ragflow_enabled():
        return 0
    made = RagFlowAgent.objects.exclude(remote_id="")
    # Without an LLM id there is none to compare with (and no DSL to build: an update says so).
    outdated = ~Q(llm_id=settings.RAGFLOW_LLM_ID) if settings.RAGFLOW_LLM_ID else Q()
    for name in made.values_list("template_name", flat=True).distinct():
        try:
            version = template_load(name=name).version
        except (OSError, ValueError):
            logger.error("RAGFlow agents made from the template %r cannot be updated: it cannot be read", name)
            continue
        outdated |= Q(template_name=name) & ~Q(template_version=version)
    if not outdated:
        return 0
    notebook_ids = list(made.filter(outdated).order_by("updated_at").values_list("notebook_id", flat=True)[:limit])
    for notebook_id in notebook_ids:
        _on_commit_enqueue("agent_template_update", notebook_id=str(notebook_id))
    return len(notebook_ids)


def agent_template_update_schedule(*, agent: RagFlowAgent) -> bool:
    """Ask a worker to bring this agent to its template's current version; False if it is not in RAGFlow."""
    if not agent.remote_id:
        return False
    _on_commit_enqueue("agent_template_update", notebook_id=str(agent.notebook_id))
    return True


def agent_template_update(*, notebook_id: str, final_attempt: bool = True) -> bool:
    """Give the notebook's agent its template's current DSL and `RAGFLOW_LLM_ID`; True when it was updated.

    RAGFlow keeps the DSL each of its sessions was opened with, so conversations already open go
    on as they were and chat sessions opened afterwards get the new one. The agent keeps working
    with its old DSL while an update fails: a failure is recorded in `last_error`, never as `error`.
    """
    agent = RagFlowAgent.objects.filter(notebook_id=notebook_id).exclude(remote_id="").first()
    if agent is None:
        return False
    try:
        template = template_load(name=agent.template_name)
    except (OSError, ValueError) as exc:
        failure = RagFlowError(f"The template cannot be read: {exc}")
        _agent_update_failure(agent=agent, version="?", llm_id=settings.RAGFLOW_LLM_ID, exc=failure)
        return False
    llm_id = settings.RAGFLOW_LLM_ID
    if agent.template_version == template.version and (agent.llm_id == llm_id or not llm_id):
        return False
    dataset = RagFlowDataset.objects.filter(notebook_id=notebook_id).first()
    try:
        dsl = _agent_dsl(template=template, dataset=dataset, llm_id=llm_id)
        ragflow_call(lambda client: client.agent_update(agent_id=agent.remote_id, dsl=dsl))
    except RagFlowError as exc:
        retrying = exc.transient and not final_attempt
        _agent_update_failure(agent=agent, version=template.version, llm_id=llm_id, exc=exc, retrying=retrying)
        return False
    # Only the agent that was updated: one re-created meanwhile was made from the current template.
    RagFlowAgent.objects.filter(pk=agent.pk, remote_id=agent.remote_id).update(
        template_version=template.version, llm_id=llm_id, last_error="", updated_at=timezone.now()
    )
    logger.info(
        "RAGFlow agent %s updated from template %s v%s (LLM %r) to v%s (LLM %r)",
        agent.remote_id,
        template.name,
        agent.template_version,
        agent.llm_id,
        template.version,
        llm_id,
    )
    return True


def _agent_update_failure(
    *, agent: RagFlowAgent, version: str, llm_id: str, exc: RagFlowError, retrying: bool = False
) -> None:
    """Record why an agent keeps its older DSL for now; re-raise when the task will try again."""
    target = f"template version {version} and LLM {llm_id or '(not set)'}"
    text = f"Could not bring the agent to {target}: {_error_text(exc, retrying=retrying)}"
    RagFlowAgent.objects.filter(pk=agent.pk).update(last_error=text[:MAX_ERROR_CHARS], updated_at=timezone.now())
    if retrying:
        raise exc
    logger.error("Bringing RAGFlow agent %s to %s failed: %s", agent.remote_id, target, exc.message)


# Clean-up
# ------------------------------------------------------------------------------


def source_remote_cleanup_record(*, source: Source) -> RemoteCleanup | None:
    """Inside source deletion: owe RAGFlow the deletion of its document."""
    dataset = RagFlowDataset.objects.filter(notebook_id=source.notebook_id).first()
    if not source.remote_document_id or dataset is None or not dataset.remote_id:
        return None
    return _cleanup_create(
        kind=CleanupKind.DOCUMENT,
        label=f"Source {source.title!r} of notebook {source.notebook_id}",
        notebook_id=source.notebook_id,
        remote_ids={"dataset_id": dataset.remote_id, "document_ids": [source.remote_document_id]},
    )


def notebook_remote_cleanup_record(*, notebook: Notebook) -> RemoteCleanup | None:
    """Inside notebook deletion: owe RAGFlow the deletion of its agent's sessions, agent and dataset."""
    from chat_sessions.models import ChatSession

    remote_ids: dict[str, Any] = {}
    agent = RagFlowAgent.objects.filter(notebook=notebook).first()
    if agent is not None and agent.remote_id:
        session_ids = ChatSession.objects.filter(container_id=notebook.pk, remote_agent_id__in=("", agent.remote_id))
        remote_ids["agent_id"] = agent.remote_id
        remote_ids["session_ids"] = sorted(
            set(session_ids.exclude(remote_session_id="").values_list("remote_session_id", flat=True))
        )
    dataset = RagFlowDataset.objects.filter(notebook=notebook).first()
    if dataset is not None and dataset.remote_id:
        remote_ids["dataset_id"] = dataset.remote_id
    if not remote_ids:
        return None
    return _cleanup_create(
        kind=CleanupKind.NOTEBOOK,
        label=f"Notebook {notebook.name!r} ({notebook.pk})",
        notebook_id=notebook.pk,
        remote_ids=remote_ids,
    )


def remote_cleanup_retry(*, cleanup: RemoteCleanup) -> None:
    """Try a failed clean-up again (the admin action), with a fresh set of retries."""
    with transaction.atomic():
        RemoteCleanup.objects.filter(pk=cleanup.pk).exclude(status=CleanupStatus.DONE).update(
            status=CleanupStatus.PENDING, updated_at=timezone.now()
        )
        _on_commit_enqueue("remote_cleanup_run", cleanup_id=cleanup.pk)


def remote_cleanups_resume(*, now: datetime | None = None) -> int:
    """Ask again for pending RAGFlow clean-ups whose task was lost; the number asked for."""
    stuck = remote_cleanups_claim_stuck(model=RemoteCleanup, now=now or timezone.now())
    for cleanup_id in stuck:
        _on_commit_enqueue("remote_cleanup_run", cleanup_id=cleanup_id)
    return len(stuck)


def remote_cleanup_run(*, cleanup_id: int, final_attempt: bool = True) -> str | None:
    """Do what a clean-up owes, step by step, saving each step done; its status afterwards."""
    cleanup = RemoteCleanup.objects.filter(pk=cleanup_id, status=CleanupStatus.PENDING).first()
    if cleanup is None:
        return None
    RemoteCleanup.objects.filter(pk=cleanup.pk).update(attempts=F("attempts") + 1, updated_at=timezone.now())
    remaining = dict(cleanup.remote_ids)

    def step_done(*keys: str) -> None:
        for key in keys:
            remaining.pop(key, None)
        RemoteCleanup.objects.filter(pk=cleanup.pk).update(remote_ids=remaining, updated_at=timezone.now())

    try:
        if cleanup.kind == CleanupKind.DOCUMENT:
            if remaining.get("document_ids"):
                ragflow_call(
                    lambda client: client.documents_delete(
                        dataset_id=remaining["dataset_id"], document_ids=remaining["document_ids"]
                    )
                )
            step_done("document_ids", "dataset_id")
        else:
            if remaining.get("agent_id"):
                ragflow_call(lambda client: _agent_delete_with_sessions(client, remaining))
                step_done("session_ids", "agent_id")
            if remaining.get("dataset_id"):
                ragflow_call(lambda client: client.dataset_delete(dataset_ids=[remaining["dataset_id"]]))
                step_done("dataset_id")
    except RagFlowError as exc:
        failed = final_attempt or not exc.transient
        RemoteCleanup.objects.filter(pk=cleanup.pk).update(
            status=CleanupStatus.FAILED if failed else CleanupStatus.PENDING,
            last_error=_error_text(exc, retrying=not failed),
            updated_at=timezone.now(),
        )
        if failed:
            logger.error("RAGFlow clean-up %s (%s) failed: %s", cleanup.pk, cleanup.label, exc.message)
            return CleanupStatus.FAILED
        raise
    RemoteCleanup.objects.filter(pk=cleanup.pk).update(
        status=CleanupStatus.DONE, last_error="", finished_at=timezone.now(), updated_at=timezone.now()
    )
    return CleanupStatus.DONE


async def _agent_delete_with_sessions(client: RagFlowClient, remaining: dict[str, Any]) -> None:
    # RAGFlow keeps an agent's sessions when the agent is deleted, so they go first: the ones we
    # know, and any the agent has that we never heard of (a turn that died before saving its id).
    agent_id = remaining["agent_id"]
    session_ids = list(
        dict.fromkeys([*remaining.get("session_ids", ()), *await client.agent_session_ids(agent_id=agent_id)])
    )
    if session_ids:
        await client.agent_sessions_delete(agent_id=agent_id, session_ids=session_ids)
    await client.agent_delete(agent_id=agent_id)


def _cleanup_create(
    *, kind: str, label: str, notebook_id: Any, remote_ids: dict[str, Any], last_error: str = ""
) -> RemoteCleanup:
    cleanup = RemoteCleanup.objects.create(
        kind=kind, label=label[:300], notebook_id=notebook_id, remote_ids=remote_ids, last_error=last_error
    )
    _on_commit_enqueue("remote_cleanup_run", cleanup_id=cleanup.pk)
    return cleanup


def agent_replaced_record(*, notebook_id: Any, remote_id: str) -> None:
    """An agent about to be made again: if RAGFlow still has the old one after all (a "not found"
    that was not), it is deleted rather than left behind; already gone counts as deleted."""
    logger.warning("RAGFlow agent %s of notebook %s is gone; it is made again", remote_id, notebook_id)
    _cleanup_create(
        kind=CleanupKind.NOTEBOOK,
        label=f"Replaced agent of notebook {notebook_id}",
        notebook_id=notebook_id,
        remote_ids={"agent_id": remote_id, "session_ids": []},
    )


def _orphan_record(
    *, notebook_id: Any, remote_ids: dict[str, Any], what: str, kind: str = CleanupKind.NOTEBOOK
) -> None:
    """Something was created in RAGFlow for a row deleted meanwhile: delete it rather than leak it."""
    logger.warning("RAGFlow %s created for a deleted row of notebook %s; cleaning it up", what, notebook_id)
    with transaction.atomic():
        _cleanup_create(
            kind=kind,
            label=f"Orphan {what} of notebook {notebook_id}",
            notebook_id=notebook_id,
            remote_ids=remote_ids,
        )


# Shared
# ------------------------------------------------------------------------------


def _failure_record(
    model: type[RagFlowDataset | RagFlowAgent], *, pk: Any, exc: RagFlowError, final_attempt: bool
) -> None:
    """Record a failed provisioning call; re-raise a transient one for the task to retry."""
    if exc.transient and not final_attempt:
        model.objects.filter(pk=pk).update(last_error=_error_text(exc, retrying=True), updated_at=timezone.now())
        raise exc
    model.objects.filter(pk=pk).update(
        status=RemoteStatus.ERROR, last_error=_error_text(exc), updated_at=timezone.now()
    )
    logger.error("RAGFlow provisioning of %s %s failed: %s", model.__name__, pk, exc.message)


def _error_text(exc: RagFlowError, *, retrying: bool = False) -> str:
    text = exc.message.strip() or type(exc).__name__
    return (f"{text} (retrying)" if retrying else text)[:MAX_ERROR_CHARS]


def _on_commit_enqueue(task_name: str, **kwargs: Any) -> None:
    """Enqueue a `notebooks.tasks` task once the current transaction commits, if RAGFlow is on."""
    if not ragflow_enabled():
        return

    def enqueue() -> None:
        from notebooks import tasks

        task: Callable[..., Any] = getattr(tasks, task_name)
        task.delay(**kwargs)

    transaction.on_commit(enqueue)
