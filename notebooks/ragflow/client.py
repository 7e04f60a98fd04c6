"""An async client for the RAGFlow HTTP API (v0.20.5 to v0.27), on aiohttp.

Only the portable calls deepsight needs (see shared/reference/ragflow-http-api.md, section 8),
each read tolerantly because response shapes changed between releases. The rules it keeps:

- Every JSON answer is checked for a non-zero `code`: RAGFlow reports business errors with
  HTTP 200. Failures become the typed errors of `notebooks.ragflow.errors`.
- Reads and deletes are retried with backoff when RAGFlow is unreachable or failing; creates,
  uploads and completions never are, because a second try could make a second object.
- A delete always names what it deletes: an empty or missing `ids` list raises `ValueError`
  before any request, since RAGFlow up to v0.24 reads it as "delete everything".
- The API key goes in the `Authorization` header and nowhere else: messages of the errors
  raised here are redacted, and aiohttp's own exceptions (whose repr shows request headers)
  never leave this module.

Streams use the event loop's shared connection pool (`chat_sessions.agents.http.http_session`);
workers, which run one short loop per task, pass a session of their own (`ragflow_call`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from asgiref.sync import async_to_sync
from django.conf import settings

from chat_sessions.agents.http import ReadWatch, http_session, json_value, stream_open, stream_timeout
from notebooks.ragflow.errors import (
    RagFlowAuthError,
    RagFlowError,
    RagFlowNotFound,
    RagFlowProtocolError,
    RagFlowRefused,
    RagFlowStreamError,
    RagFlowTimeout,
    RagFlowUnavailable,
    error_for_body,
)
from notebooks.ragflow.stream import CompletionFrame, CompletionParser

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: RAGFlow's parse states (`run`), also sent as the digits "0".."4" by some versions.
RUN_STATES = {"0": "UNSTART", "1": "RUNNING", "2": "CANCEL", "3": "DONE", "4": "FAIL"}
LIST_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class DocumentStatus:
    """How far RAGFlow got parsing one document."""

    run: str  # UNSTART | RUNNING | CANCEL | DONE | FAIL
    progress: float  # 0.0 to 1.0
    chunk_count: int
    message: str  # RAGFlow's progress_msg (the reason, when it failed)

    @property
    def finished(self) -> bool:
        return self.run in ("DONE", "FAIL", "CANCEL")


class RagFlowClient:
    """Calls to one RAGFlow server with one API key. Cheap to build; holds no connections itself."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        stream_read_timeout: float = 120.0,
        retries: int = 3,
        retry_backoff: float = 0.5,
    ) -> None:
        base = base_url.rstrip("/")
        self.api_url = base if base.endswith("/api/v1") else f"{base}/api/v1"
        self._api_key = api_key
        self._session = session
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.stream_read_timeout = stream_read_timeout
        self.retries = retries
        self.retry_backoff = retry_backoff

    @classmethod
    def from_settings(cls, *, session: aiohttp.ClientSession | None = None) -> RagFlowClient:
        """The client `RAGFLOW_BASE_URL` and `RAGFLOW_API_KEY` describe (optional tuning: `RAGFLOW_*`)."""
        return cls(
            base_url=settings.RAGFLOW_BASE_URL,
            api_key=settings.RAGFLOW_API_KEY,
            session=session,
            timeout=getattr(settings, "RAGFLOW_TIMEOUT", 30.0),
            stream_read_timeout=getattr(settings, "RAGFLOW_STREAM_READ_TIMEOUT", 120.0),
            retries=getattr(settings, "RAGFLOW_RETRIES", 3),
            retry_backoff=getattr(settings, "RAGFLOW_RETRY_BACKOFF", 0.5),
        )

    def __repr__(self) -> str:
        return f"<RagFlowClient {self.api_url}>"  # never the key

    # Datasets and documents
    # --------------------------------------------------------------------------

    async def dataset_create(self, *, name: str, description: str = "", embedding_model: str = "") -> dict[str, Any]:
        """Create a dataset; RAGFlow v0.22+ may rename it (`name(1)`), so read `id` and `name` back."""
        body: dict[str, Any] = {"name": name, "description": description, "chunk_method": "naive"}
        if embedding_model:
            body["embedding_model"] = embedding_model
        data = await self._call("POST", "/datasets", json_body=body)
        if not isinstance(data, dict) or not data.get("id"):
            raise RagFlowProtocolError("RAGFlow created a dataset but sent no id back.")
        return data

    async def dataset_find(self, *, name: str) -> dict[str, Any] | None:
        """The dataset with exactly this name, or None."""
        rows = await self._datasets_where(name=name)
        return next((row for row in rows if row.get("name") == name and row.get("id")), None)

    async def dataset_exists(self, *, dataset_id: str) -> bool:
        """Whether RAGFlow still has this dataset for our key (`GET /datasets?id=`)."""
        _id_required(dataset_id, what="dataset_exists")
        return any(row.get("id") == dataset_id for row in await self._datasets_where(id=dataset_id))

    async def _datasets_where(self, **params: str) -> list[dict[str, Any]]:
        """`GET /datasets` filtered by `params`; none when RAGFlow says it has none for our key."""
        try:
            data = await self._call("GET", "/datasets", params=params, idempotent=True)
        except (RagFlowNotFound, RagFlowRefused) as exc:
            if exc.code in (102, 108):  # "You don't own the dataset <name or id>" / "lacks permission"
                return []
            raise
        return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []

    async def dataset_delete(self, *, dataset_ids: Sequence[str]) -> None:
        """Delete datasets (and their documents). Already gone counts as deleted."""
        ids = _ids_required(dataset_ids, what="dataset_delete")
        await self._delete("/datasets", json_body={"ids": ids})

    async def document_upload(
        self, *, dataset_id: str, filename: str, content: bytes, content_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        """Upload one file into a dataset; returns RAGFlow's document (with `id`)."""
        _id_required(dataset_id, what="document_upload")
        # Unquoted, like RAGFlow's own SDK (requests) sends it: aiohttp would otherwise
        # percent-encode the name, and RAGFlow would store "my%20notes.txt".
        form = aiohttp.FormData(quote_fields=False)
        safe_name = re.sub(r'["\\\r\n]', "_", filename)
        form.add_field("file", content, filename=safe_name, content_type=content_type)
        data = await self._call("POST", f"/datasets/{dataset_id}/documents", data=form)
        document = data[0] if isinstance(data, list) and data else None
        if not isinstance(document, dict) or not document.get("id"):
            raise RagFlowProtocolError("RAGFlow accepted an upload but sent no document id back.")
        return document

    async def documents_parse(self, *, dataset_id: str, document_ids: Sequence[str]) -> None:
        """Start chunking documents. One already being parsed is left to finish."""
        _id_required(dataset_id, what="documents_parse")
        ids = _ids_required(document_ids, what="documents_parse")
        try:
            await self._call("POST", f"/datasets/{dataset_id}/chunks", json_body={"document_ids": ids})
        except RagFlowNotFound as exc:
            if "currently being processed" not in exc.message:
                raise

    async def document_status(self, *, dataset_id: str, document_id: str) -> DocumentStatus:
        """The parse state of one document; `RagFlowNotFound` when it is not there."""
        _id_required(dataset_id, what="document_status")
        _id_required(document_id, what="document_status")
        data = await self._call("GET", f"/datasets/{dataset_id}/documents", params={"id": document_id}, idempotent=True)
        docs = data.get("docs") if isinstance(data, dict) else data
        document = next(
            (doc for doc in docs or () if isinstance(doc, dict) and doc.get("id") == document_id),
            None,
        )
        if document is None:
            raise RagFlowNotFound(f"RAGFlow has no document {document_id} in dataset {dataset_id}.", code=102)
        run = str(document.get("run") or "UNSTART").upper()
        try:
            progress = float(document.get("progress") or 0.0)
        except (TypeError, ValueError):
            progress = 0.0
        return DocumentStatus(
            run=RUN_STATES.get(run, run),
            progress=min(max(progress, 0.0), 1.0),
            chunk_count=int(document.get("chunk_count") or document.get("chunk_num") or 0),
            message=str(document.get("progress_msg") or "")[:2000],
        )

    async def documents_delete(self, *, dataset_id: str, document_ids: Sequence[str]) -> None:
        """Delete documents of a dataset. Already gone counts as deleted."""
        _id_required(dataset_id, what="documents_delete")
        ids = _ids_required(document_ids, what="documents_delete")
        await self._delete(f"/datasets/{dataset_id}/documents", json_body={"ids": ids})

    # Agents and their sessions
    # --------------------------------------------------------------------------

    async def agent_create(self, *, title: str, dsl: Mapping[str, Any], description: str = "") -> str:
        """Create an agent (canvas) and return its id.

        Up to v0.25 RAGFlow answers `data: true` with no id, so the agent is found again by its
        title (titles are unique per tenant); v0.26+ returns the agent itself. A title that
        already exists is the same agent created by an earlier try, and is adopted.
        """
        body = {"title": title, "description": description, "dsl": dict(dsl)}
        try:
            data = await self._call("POST", "/agents", json_body=body)
        except RagFlowNotFound as exc:
            if "already exists" not in exc.message:
                raise
            data = None
        if isinstance(data, dict) and data.get("id"):
            return str(data["id"])
        agent_id = await self.agent_find(title=title)
        if not agent_id:
            raise RagFlowProtocolError(f"RAGFlow created the agent {title!r} but it cannot be found by its title.")
        return agent_id

    async def agent_update(self, *, agent_id: str, dsl: Mapping[str, Any]) -> None:
        """Replace an agent's DSL.

        RAGFlow keeps the DSL a session was opened with: conversations already open go on with the
        old one, sessions opened afterwards get this one. An agent that is gone (or not ours) is
        `RagFlowRefused` (103); v0.26+ checks the DSL here and refuses a bad one (101).
        """
        _id_required(agent_id, what="agent_update")
        await self._call("PUT", f"/agents/{agent_id}", json_body={"dsl": dict(dsl)})

    async def agent_find(self, *, title: str) -> str | None:
        """The id of the agent with this title, or None.

        `?title=` filters up to v0.25 (102 when nothing matches); v0.26 ignores it and lists
        `{canvas, total}`, so the fallback searches `keywords` within agent canvases.
        """
        attempts = (
            {"title": title},
            {"keywords": title, "canvas_category": "agent_canvas", "page_size": LIST_PAGE_SIZE},
        )
        for params in attempts:
            try:
                data = await self._call("GET", "/agents", params=params, idempotent=True)
            except RagFlowNotFound:
                continue
            agent_id = _agent_titled(data, title)
            if agent_id:
                return agent_id
        return None

    async def agent_delete(self, *, agent_id: str) -> None:
        """Delete an agent. RAGFlow does not delete its sessions: do that first. Already gone is deleted."""
        _id_required(agent_id, what="agent_delete")
        try:
            await self._delete(f"/agents/{agent_id}", json_body={})
        except RagFlowRefused as exc:
            # 103 "Only owner of canvas authorized" is also what a deleted agent gets.
            if exc.code != 103 or await self.agent_exists(agent_id=agent_id):
                raise

    async def agent_exists(self, *, agent_id: str) -> bool:
        """Whether RAGFlow still has this agent (v0.26+: `GET /agents/{id}`; older: `?id=`)."""
        _id_required(agent_id, what="agent_exists")
        try:
            data = await self._call("GET", f"/agents/{agent_id}", idempotent=True)
            return isinstance(data, dict) and bool(data.get("id"))
        except RagFlowNotFound:
            return False
        except RagFlowRefused as exc:
            if exc.status != 404 and exc.code != 404:
                raise
        try:
            data = await self._call("GET", "/agents", params={"id": agent_id}, idempotent=True)
        except RagFlowNotFound:
            return False
        return any(isinstance(row, dict) and row.get("id") == agent_id for row in data or ())

    async def agent_session_create(self, *, agent_id: str) -> str:
        """Open a conversation with an agent; returns the session id."""
        _id_required(agent_id, what="agent_session_create")
        data = await self._call("POST", f"/agents/{agent_id}/sessions", json_body={})
        if not isinstance(data, dict) or not data.get("id"):
            raise RagFlowProtocolError("RAGFlow opened an agent session but sent no id back.")
        return str(data["id"])

    async def agent_session_ids(self, *, agent_id: str) -> list[str]:
        """The ids of every session of an agent (to delete them with it)."""
        _id_required(agent_id, what="agent_session_ids")
        ids: list[str] = []
        for page in range(1, 1000):
            params = {"page": page, "page_size": LIST_PAGE_SIZE, "dsl": "false"}
            try:
                data = await self._call("GET", f"/agents/{agent_id}/sessions", params=params, idempotent=True)
            except RagFlowNotFound:
                break  # the agent is gone, or (v0.24) "has no sessions"
            rows = data if isinstance(data, list) else []
            ids += [str(row["id"]) for row in rows if isinstance(row, dict) and row.get("id")]
            if len(rows) < LIST_PAGE_SIZE:
                break
        return list(dict.fromkeys(ids))

    async def agent_sessions_delete(self, *, agent_id: str, session_ids: Sequence[str]) -> None:
        """Delete sessions of an agent. Already gone counts as deleted."""
        _id_required(agent_id, what="agent_sessions_delete")
        ids = _ids_required(session_ids, what="agent_sessions_delete")
        await self._delete(f"/agents/{agent_id}/sessions", json_body={"ids": ids})

    async def agent_completion_stream(
        self, *, agent_id: str, session_id: str, question: str
    ) -> AsyncIterator[CompletionFrame]:
        """Ask an agent, in a session, and yield the answer's frames as they arrive.

        Ends normally only at RAGFlow's terminator; a body that stops before it raises
        `RagFlowStreamError`, so a cut-off answer is never taken for a whole one.
        """
        _id_required(agent_id, what="agent_completion_stream")
        # v0.20+ reads `query` or `question`, older ones `question`; `stream` defaults to false
        # on some v0.26 paths, so it is always sent.
        body: dict[str, Any] = {"question": question, "query": question, "stream": True}
        if session_id:
            body["session_id"] = session_id
        what = "POST /agents/…/completions"
        parser = CompletionParser()
        try:
            response = await stream_open(
                self._http().post(
                    f"{self.api_url}/agents/{agent_id}/completions",
                    json=body,
                    headers=self._headers(),
                    timeout=stream_timeout(connect=self.connect_timeout),
                ),
                idle_timeout=self.stream_read_timeout,
            )
            async with response:
                if "text/event-stream" not in response.headers.get("Content-Type", ""):
                    # An error envelope (or a non-stream answer) instead of a stream.
                    async with asyncio.timeout(self.stream_read_timeout):
                        envelope = await response.read()
                    self._envelope_data(response.status, envelope, what=what)
                    raise RagFlowProtocolError("RAGFlow answered a streaming request without a stream.")
                with ReadWatch(response, idle_timeout=self.stream_read_timeout) as watch:
                    async for data in response.content.iter_any():
                        watch.read()
                        for frame in parser.feed(data):
                            yield frame
                        parser.raise_pending()
                        if parser.finished:
                            return
                for frame in parser.close():
                    yield frame
                if not parser.finished:
                    raise RagFlowStreamError("RAGFlow closed the answer stream before it was finished.")
        except RagFlowError as exc:
            raise self._redacted(exc) from None
        except TimeoutError:
            raise RagFlowTimeout(f"RAGFlow sent nothing for {self.stream_read_timeout:g} s while answering.") from None
        except aiohttp.ClientPayloadError:
            raise RagFlowStreamError("The connection to RAGFlow broke while it was answering.") from None
        except aiohttp.ClientError as exc:
            raise RagFlowUnavailable(f"RAGFlow could not be reached ({type(exc).__name__}).") from None

    # Plumbing
    # --------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        return self._session if self._session is not None else http_session()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _redacted(self, exc: RagFlowError) -> RagFlowError:
        if self._api_key and self._api_key in exc.message:
            exc.message = exc.message.replace(self._api_key, "***")
            exc.args = (exc.message,)
        return exc

    async def _delete(self, path: str, *, json_body: dict[str, Any]) -> None:
        try:
            await self._call("DELETE", path, json_body=json_body, idempotent=True)
        except RagFlowNotFound as exc:
            # 102 on a delete: "You don't own ...", "has no sessions", "not found": nothing to delete.
            logger.info("RAGFlow had nothing to delete at %s: %s", path, exc.message)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: aiohttp.FormData | None = None,
        idempotent: bool = False,
    ) -> Any:
        """One API call, its envelope checked; `data` of the envelope on success."""
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(attempts):
            try:
                return await self._call_once(method, path, params=params, json_body=json_body, data=data)
            except RagFlowError as exc:
                self._redacted(exc)
                if not isinstance(exc, RagFlowUnavailable) or attempt + 1 >= attempts:
                    raise exc from None
                delay = self.retry_backoff * 2**attempt
                logger.warning("%s %s failed (%s); retrying in %.1f s", method, path, exc.message, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call_once(
        self, method: str, path: str, *, params: Mapping[str, Any] | None, json_body: Any, data: Any
    ) -> Any:
        what = f"{method} {path}"
        try:
            async with self._http().request(
                method,
                f"{self.api_url}{path}",
                params=params,
                json=json_body if data is None else None,
                data=data,
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=self.timeout, connect=self.connect_timeout),
            ) as response:
                body = await response.read()
                status = response.status
        except TimeoutError:
            raise RagFlowTimeout(f"RAGFlow did not answer {what} within {self.timeout:g} s.") from None
        except aiohttp.ClientError as exc:
            raise RagFlowUnavailable(f"RAGFlow could not be reached for {what} ({type(exc).__name__}).") from None
        return self._envelope_data(status, body, what=what)

    def _envelope_data(self, status: int, body: bytes, *, what: str) -> Any:
        try:
            envelope = json_value(body) if body else None
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            if status >= 500 or status == 429:
                raise RagFlowUnavailable(f"RAGFlow answered {what} with HTTP {status}.", status=status)
            if status == 401:
                raise RagFlowAuthError(f"RAGFlow refused the API key on {what} (HTTP 401).", status=status)
            if status == 404:
                raise RagFlowRefused(
                    f"RAGFlow has no {what} (HTTP 404): check RAGFLOW_BASE_URL and the RAGFlow version.", status=status
                )
            raise RagFlowProtocolError(f"RAGFlow answered {what} with HTTP {status} and no JSON envelope.")
        if status == 404:
            raise RagFlowRefused(
                f"RAGFlow has no {what} (HTTP 404): check RAGFLOW_BASE_URL and the RAGFlow version.",
                code=envelope.get("code"),
                status=status,
            )
        error = error_for_body(envelope, status=status, what=what)
        if error is not None:
            raise error
        return envelope.get("data")


def _ids_required(ids: Sequence[str], *, what: str) -> list[str]:
    """The ids to send, refusing an empty list: up to v0.24 RAGFlow reads it as "all of them"."""
    if isinstance(ids, str):
        raise TypeError(f"{what} takes a list of ids, not a string")
    cleaned = [str(value) for value in ids or () if value and str(value).strip()]
    if not cleaned or len(cleaned) != len(ids):
        raise ValueError(f"{what} refuses an empty id list or empty ids: RAGFlow may read it as 'delete everything'")
    return cleaned


def _id_required(value: str, *, what: str) -> None:
    if not value or not str(value).strip():
        raise ValueError(f"{what} needs a RAGFlow id")


def _agent_titled(data: Any, title: str) -> str | None:
    """Find the agent titled `title` in a list answer (<= v0.25) or a `{canvas, total}` one (v0.26+)."""
    rows = data.get("canvas") if isinstance(data, dict) else data
    candidates = [row for row in rows or () if isinstance(row, dict) and row.get("id")]
    for row in candidates:
        if row.get("title") == title:
            return str(row["id"])
    for row in candidates:  # v0.26 matches titles case-insensitively
        if str(row.get("title") or "").casefold() == title.casefold():
            return str(row["id"])
    return None


@contextlib.asynccontextmanager
async def ragflow_client_private() -> AsyncIterator[RagFlowClient]:
    """A client on a connection pool of its own, closed on exit (for one-off calls off the hot path)."""
    async with aiohttp.ClientSession(raise_for_status=False) as session:
        yield RagFlowClient.from_settings(session=session)


def ragflow_call(fn: Callable[[RagFlowClient], Awaitable[T]]) -> T:
    """Run client calls from sync code (workers, services) on a private client.

    A worker runs each task on a new event loop, so the loop-wide shared pool would be left
    open behind it; this one is closed when the call returns.
    """

    async def run() -> T:
        async with ragflow_client_private() as client:
            return await fn(client)

    return async_to_sync(run)()
