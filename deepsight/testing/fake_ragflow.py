"""A fake RAGFlow server speaking the real HTTP API over loopback, for tests.

It copies RAGFlow's `api/apps/sdk` handlers for the calls deepsight makes (see
shared/reference/ragflow-http-api.md): JSON envelopes as Flask's `jsonify` writes them (sorted
keys, compact, HTTP 200 with a non-zero `code` for business errors), and agent completion
streams as the canvas writes them (`data:` + `json.dumps(event, ensure_ascii=False)` + `\\n\\n`,
no space, `message` deltas, one `message_end` whose `reference.chunks` are keyed by
`str(hash_str2int(chunk_id, 500))`, then `data:[DONE]`). Datasets, documents, agents and sessions
live in memory; a completion retrieves chunks of the agent's datasets (the `kb_ids` in its DSL)
that share words with the question, so answers cite what was really uploaded.

Version switches (`FakeRagFlow(version=(0, 26))`), per the reference:

- `< (0, 25)`: a bad key is HTTP 200 `{"code":109,...}`; a delete with no ids deletes everything.
- `(0, 25)`: a bad key is HTTP 401 with code 109.
- `>= (0, 26)`: a bad key is HTTP 401 code 401; `POST /agents` returns the agent, not `true`;
  `GET /agents` ignores `title`, returns `{canvas, total}`; session lists say `message`.
- `>= (0, 23)`: `node_finished` events are forwarded in completion streams.

Scripted behaviour of the next completions (`fake.script(...)`, one per request, then `default`):
tokens (with `{ID}` standing for the first cited chunk's number), thinking, a code-500 frame after N
tokens, a dropped connection after N tokens, headers that are slow to come, a slow first token,
extra workflow/node events, the legacy `{"code":0,"data":true}` terminator. Other calls can be made
to fail (`fake.fail(...)`). Every request is kept in `fake.requests`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from deepsight.testing.servers import AiohttpThread

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}
JSON_BODY = web.RequestKey("json_body", object)
FORM = web.RequestKey("form", object)
WORD = re.compile(r"[a-z0-9]{3,}")


def hash_str2int(line: str, mod: int = 10**8) -> int:
    """RAGFlow's `common.misc_utils.hash_str2int`: how a chunk id becomes its citation number."""
    return int(hashlib.sha1(line.encode("utf-8"), usedforsecurity=False).hexdigest(), 16) % mod


def _uuid() -> str:
    return uuid.uuid4().hex


@dataclass
class Script:
    """How the fake answers one completion request."""

    #: The answer's deltas; None: a sentence quoted from the best chunk, then its `[ID:n]`.
    tokens: list[str] | None = None
    delay: float = 0.0
    #: Seconds before the response's headers: a server that took the request and is stuck.
    headers_delay: float = 0.0
    first_token_delay: float = 0.0
    #: Reasoning deltas, sent between `start_to_think` and `end_to_think` frames.
    thinking: list[str] = field(default_factory=list)
    #: After this many answer deltas, a `{"code":500,...}` frame then `[DONE]`.
    error_after: int | None = None
    #: After this many answer deltas, the connection is closed mid-stream.
    drop_after: int | None = None
    #: workflow_started, node_started, user_inputs and workflow_finished (with usage) too.
    extra_events: bool = False
    reference: bool = True
    #: "done" (`data:[DONE]`) or "legacy" (`data:{"code": 0, "data": true}`).
    terminator: str = "done"
    #: Write `data: {...}` (with a space), as RAGFlow's OpenAI-compatible paths do.
    space_after_data: bool = False


@dataclass
class Failure:
    method: str
    path: re.Pattern[str]
    times: int
    status: int = 200
    code: int | None = 100
    message: str = "Internal server error"
    drop: bool = False


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    filenames: list[str] = field(default_factory=list)


class FakeRagFlow:
    def __init__(self, *, api_key: str = "ragflow-fakeKEY0123456789", version: tuple[int, int] = (0, 24)) -> None:
        self.api_key = api_key
        self.version = version
        self.tenant_id = "7c1a0e54f1a811efa3b30242ac120006"
        self.requests: list[RecordedRequest] = []
        self.datasets: dict[str, dict[str, Any]] = {}
        self.documents: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        #: Status reads of a parsing document before it is DONE (or `parse_outcome`).
        self.parse_polls = 2
        self.parse_outcome = "DONE"
        self.default = Script()
        self._scripts: list[Script] = []
        self._failures: list[Failure] = []
        self.server = AiohttpThread(self._app)

    # For tests
    # --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """What `RAGFLOW_BASE_URL` is set to (the API lives under `/api/v1`)."""
        return self.server.url

    def start(self) -> FakeRagFlow:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def script(self, **kwargs: Any) -> Script:
        """Queue the behaviour of the next completion request."""
        script = Script(**kwargs)
        self._scripts.append(script)
        return script

    def fail(
        self,
        method: str,
        path: str,
        *,
        times: int = 1,
        status: int = 200,
        code: int | None = 100,
        message: str = "Internal server error",
        drop: bool = False,
    ) -> None:
        """Make the next `times` requests matching `method` and the `path` regex fail.

        `status` >= 500 with `code=None` answers an nginx-style HTML error page; `drop` closes the
        connection without an answer; otherwise an HTTP `status` with `{"code", "message"}`.
        """
        self._failures.append(Failure(method, re.compile(path), times, status, code, message, drop))

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path matches the regex `path` entirely."""
        pattern = re.compile(path)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    def chunks_of(self, document_id: str) -> list[dict[str, Any]]:
        return self.documents[document_id]["chunks"]

    # The app
    # --------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        r = app.router
        r.add_post("/api/v1/datasets", self._dataset_create)
        r.add_get("/api/v1/datasets", self._dataset_list)
        r.add_delete("/api/v1/datasets", self._dataset_delete)
        r.add_post("/api/v1/datasets/{dataset_id}/documents", self._document_upload)
        r.add_get("/api/v1/datasets/{dataset_id}/documents", self._document_list)
        r.add_delete("/api/v1/datasets/{dataset_id}/documents", self._document_delete)
        r.add_post("/api/v1/datasets/{dataset_id}/chunks", self._document_parse)
        r.add_post("/api/v1/agents", self._agent_create)
        r.add_get("/api/v1/agents", self._agent_list)
        r.add_get("/api/v1/agents/{agent_id}", self._agent_get)
        r.add_put("/api/v1/agents/{agent_id}", self._agent_update)
        r.add_delete("/api/v1/agents/{agent_id}", self._agent_delete)
        r.add_post("/api/v1/agents/{agent_id}/sessions", self._session_create)
        r.add_get("/api/v1/agents/{agent_id}/sessions", self._session_list)
        r.add_delete("/api/v1/agents/{agent_id}/sessions", self._session_delete)
        r.add_post("/api/v1/agents/{agent_id}/completions", self._completion)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body: Any = None
        filenames: list[str] = []
        if request.content_type == "application/json" and request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
        elif request.content_type.startswith("multipart/"):
            request[FORM] = form = await request.post()
            filenames = [f.filename for f in form.getall("file", []) if isinstance(f, web.FileField)]
        request[JSON_BODY] = body
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), body, dict(request.headers), filenames)
        )
        for failure in self._failures:
            if failure.times > 0 and failure.method == request.method and failure.path.fullmatch(request.path):
                failure.times -= 1
                if failure.drop:  # headers, then the connection closes before any body
                    response = web.StreamResponse(status=200)
                    await response.prepare(request)
                    request.transport.close()
                    return response
                if failure.code is None:
                    html = f"<html><body><h1>{failure.status} Bad Gateway</h1></body></html>"
                    return web.Response(status=failure.status, text=html, content_type="text/html")
                return self._json({"code": failure.code, "message": failure.message}, status=failure.status)
        refusal = self._auth_refusal(request)
        if refusal is not None:
            return refusal
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return self._json(
                {"code": 404, "data": None, "error": "Not Found", "message": f"Not Found: {request.path}"}, status=404
            )

    def _auth_refusal(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        parts = header.split()
        if len(parts) >= 2 and parts[1] == self.api_key:
            return None
        if self.version >= (0, 26):
            return self._json({"code": 401, "data": None, "message": "<Unauthorized '401: Unauthorized'>"}, status=401)
        status = 401 if self.version >= (0, 25) else 200
        if not header:
            return self._json({"code": 0, "data": False, "message": "`Authorization` can't be empty"}, status=status)
        if len(parts) < 2:
            return self._json(
                {"code": 0, "data": False, "message": "Please check your authorization format."}, status=status
            )
        return self._json(
            {"code": 109, "data": False, "message": "Authentication error: API key is invalid!"}, status=status
        )

    @staticmethod
    def _json(body: Any, *, status: int = 200) -> web.Response:
        # Flask's jsonify outside debug: sorted keys, compact separators, ASCII, a final newline.
        text = json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n"
        return web.Response(status=status, text=text, content_type="application/json")

    def _ok(self, data: Any = None, **extra: Any) -> web.Response:
        """`get_result`: `{"code": 0, "data": ...}`, without `data` when there is none."""
        body: dict[str, Any] = {"code": 0}
        if data is not None:
            body["data"] = data
        return self._json({**body, **extra})

    def _ok_success(self, data: Any) -> web.Response:
        """`get_json_result`: `{"code": 0, "message": "success", "data": ...}`."""
        return self._json({"code": 0, "message": "success", "data": data})

    def _error(self, message: str, code: int = 102) -> web.Response:
        """`get_error_data_result`: HTTP 200 with a non-zero code."""
        return self._json({"code": code, "message": message})

    # Datasets and documents
    # --------------------------------------------------------------------------

    async def _dataset_create(self, request: web.Request) -> web.Response:
        body = request[JSON_BODY] or {}
        name = str(body.get("name") or "").strip()
        if not name:
            return self._error("Field: <name> - Message: <String should have at least 1 character> - Value: <>", 101)
        taken = {d["name"].lower() for d in self.datasets.values()}
        unique, n = name, 0
        while unique.lower() in taken:  # v0.22+: deduplicated, not refused
            n += 1
            unique = f"{name}({n})"
        now = int(time.time() * 1000)
        dataset = {
            "avatar": None,
            "chunk_count": 0,
            "chunk_method": body.get("chunk_method") or "naive",
            "create_date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
            "create_time": now,
            "created_by": self.tenant_id,
            "description": body.get("description"),
            "document_count": 0,
            "embedding_model": body.get("embedding_model") or "BAAI/bge-large-zh-v1.5@BAAI",
            "id": _uuid(),
            "language": "English",
            "name": unique,
            "pagerank": 0,
            "parser_config": {"chunk_token_num": 512, "delimiter": "\n", "layout_recognize": "DeepDOC"},
            "permission": "me",
            "similarity_threshold": 0.2,
            "status": "1",
            "tenant_id": self.tenant_id,
            "token_num": 0,
            "update_date": None,
            "update_time": now,
            "vector_similarity_weight": 0.3,
        }
        self.datasets[dataset["id"]] = dataset
        return self._ok(dataset)

    async def _dataset_list(self, request: web.Request) -> web.Response:
        name, dataset_id = request.query.get("name"), request.query.get("id")
        rows = list(self.datasets.values())
        if dataset_id:
            rows = [d for d in rows if d["id"] == dataset_id]
            if not rows:
                return self._error(f"You don't own the dataset {dataset_id}")
        if name:
            rows = [d for d in rows if d["name"].lower() == name.lower()]
            if not rows:
                return self._error(f"You don't own the dataset {name}")
        return self._ok(rows)

    async def _dataset_delete(self, request: web.Request) -> web.Response:
        ids = (request[JSON_BODY] or {}).get("ids")
        if not ids:
            if self.version >= (0, 25):
                return self._ok()  # v0.25+: nothing without `delete_all`
            ids = list(self.datasets)  # up to v0.24: everything
        errors, deleted = [], 0
        for dataset_id in ids:
            if self.datasets.pop(dataset_id, None) is None:
                errors.append(f"You don't own the dataset {dataset_id}")
                continue
            for doc_id in [d for d, doc in self.documents.items() if doc["dataset_id"] == dataset_id]:
                del self.documents[doc_id]
            deleted += 1
        return self._deletion_result(errors, deleted, "datasets")

    def _deletion_result(self, errors: list[str], deleted: int, what: str) -> web.Response:
        if errors and deleted:
            return self._json(
                {
                    "code": 0,
                    "data": {"errors": errors, "success_count": deleted},
                    "message": f"Partially deleted {deleted} {what} with {len(errors)} errors",
                }
            )
        if errors:
            return self._error("; ".join(errors))
        return self._ok()

    async def _document_upload(self, request: web.Request) -> web.Response:
        dataset = self.datasets.get(request.match_info["dataset_id"])
        if dataset is None:
            return self._error(f"Can't find the dataset with ID {request.match_info['dataset_id']}!")
        form = request.get(FORM)
        files = [f for f in form.getall("file", []) if isinstance(f, web.FileField)] if form is not None else []
        if not files:
            return self._error("No file part!", 101)
        created = []
        for upload in files:
            if not upload.filename:
                return self._error("No file selected!", 101)
            content = upload.file.read()
            doc = {
                "chunk_method": "naive",
                "created_by": self.tenant_id,
                "dataset_id": dataset["id"],
                "id": _uuid(),
                "location": upload.filename,
                "name": upload.filename,
                "parser_config": {"chunk_token_num": 512, "delimiter": "\n", "layout_recognize": "DeepDOC"},
                "run": "UNSTART",
                "size": len(content),
                "thumbnail": "",
                "type": "doc",
            }
            self.documents[doc["id"]] = {
                **doc,
                "content": content,
                "progress": 0.0,
                "progress_msg": "",
                "polls": 0,
                "chunks": [],
            }
            dataset["document_count"] += 1
            created.append(doc)
        return self._ok(created)

    async def _document_parse(self, request: web.Request) -> web.Response:
        dataset_id = request.match_info["dataset_id"]
        if dataset_id not in self.datasets:
            return self._error(f"You don't own the dataset {dataset_id}.")
        ids = (request[JSON_BODY] or {}).get("document_ids")
        if not ids:
            return self._error("`document_ids` is required")
        missing = [i for i in ids if self.documents.get(i, {}).get("dataset_id") != dataset_id]
        if missing:
            return self._error(f"Documents not found: {missing}")
        for doc_id in ids:
            doc = self.documents[doc_id]
            if doc["run"] == "RUNNING":
                return self._error("Can't parse document that is currently being processed")
            doc.update(run="RUNNING", progress=0.0, polls=0, progress_msg="Task is queued...", chunks=[])
        return self._ok()

    async def _document_list(self, request: web.Request) -> web.Response:
        dataset_id = request.match_info["dataset_id"]
        if dataset_id not in self.datasets:
            return self._error(f"You don't own the dataset {dataset_id}.")
        doc_id = request.query.get("id")
        docs = [d for d in self.documents.values() if d["dataset_id"] == dataset_id]
        if doc_id:
            docs = [d for d in docs if d["id"] == doc_id]
            if not docs:
                return self._error(f"You don't own the document {doc_id}.")
        for doc in docs:
            self._parse_advance(doc)
        return self._ok({"docs": [self._document_view(d) for d in docs], "total": len(docs)})

    def _parse_advance(self, doc: dict[str, Any]) -> None:
        """Each status read moves a parsing document on, as RAGFlow's task executor would."""
        if doc["run"] != "RUNNING":
            return
        doc["polls"] += 1
        if doc["polls"] < self.parse_polls:
            doc["progress"] = round(doc["polls"] / self.parse_polls, 2)
            doc["progress_msg"] = "Page(1~100000001): Start to parse."
            return
        if self.parse_outcome == "FAIL":
            doc.update(run="FAIL", progress=-1, progress_msg="[ERROR]Internal server error while chunking: bad file")
            return
        doc["chunks"] = _chunks(doc)
        doc.update(run="DONE", progress=1.0, progress_msg="Task done (0.42s)")

    def _document_view(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "chunk_count": len(doc["chunks"]),
            "chunk_method": "naive",
            "create_time": 1_747_000_000_000,
            "dataset_id": doc["dataset_id"],
            "id": doc["id"],
            "location": doc["location"],
            "meta_fields": {},
            "name": doc["name"],
            "parser_config": doc["parser_config"],
            "process_begin_at": None,
            "process_duration": 0.42 if doc["run"] == "DONE" else 0.0,
            "progress": doc["progress"],
            "progress_msg": doc["progress_msg"],
            "run": doc["run"],
            "size": doc["size"],
            "source_type": "local",
            "status": "1",
            "thumbnail": "",
            "token_count": sum(len(c["content"].split()) for c in doc["chunks"]),
            "type": "doc",
            "update_time": 1_747_000_000_000,
        }

    async def _document_delete(self, request: web.Request) -> web.Response:
        dataset_id = request.match_info["dataset_id"]
        if dataset_id not in self.datasets:
            return self._error(f"You don't own the dataset {dataset_id}.")
        ids = (request[JSON_BODY] or {}).get("ids")
        if not ids:
            if self.version >= (0, 25):
                return self._ok()
            ids = [d for d, doc in self.documents.items() if doc["dataset_id"] == dataset_id]
        errors, deleted = [], 0
        for doc_id in ids:
            if self.documents.get(doc_id, {}).get("dataset_id") != dataset_id:
                errors.append(f"Document not found: {doc_id}")
                continue
            del self.documents[doc_id]
            deleted += 1
        return self._deletion_result(errors, deleted, "documents")

    # Agents and sessions
    # --------------------------------------------------------------------------

    async def _agent_create(self, request: web.Request) -> web.Response:
        body = request[JSON_BODY] or {}
        if body.get("dsl") is None:
            return self._json({"code": 101, "data": False, "message": "No DSL data in request."})
        if body.get("title") is None:
            return self._json({"code": 101, "data": False, "message": "No title in request."})
        dsl = json.loads(body["dsl"]) if isinstance(body["dsl"], str) else body["dsl"]
        title = str(body["title"]).strip()
        if self.version >= (0, 26):
            if not isinstance(dsl, dict):
                return self._json({"code": 101, "data": False, "message": "DSL must be a JSON object."})
            if any(a["title"].lower() == title.lower() for a in self.agents.values()):
                return self._error(f"{title} already exists.")
        elif any(a["title"] == title for a in self.agents.values()):
            return self._error(f"Agent with title {title} already exists.")
        now = int(time.time() * 1000)
        agent = {
            "avatar": None,
            "canvas_category": body.get("canvas_category") or "agent_canvas",
            "canvas_type": body.get("canvas_type"),
            "create_date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
            "create_time": now,
            "description": body.get("description"),
            "dsl": dsl,
            "id": _uuid(),
            "permission": "me",
            "title": title,
            "update_date": None,
            "update_time": now,
            "user_id": self.tenant_id,
        }
        self.agents[agent["id"]] = agent
        if self.version >= (0, 26):
            return self._ok_success({**agent, "release": bool(body.get("release")), "tags": ""})
        return self._ok_success(True)

    async def _agent_list(self, request: web.Request) -> web.Response:
        query = request.query
        rows = sorted(self.agents.values(), key=lambda a: a["update_time"], reverse=True)
        page, size = int(query.get("page", 1)), int(query.get("page_size", 30))
        if self.version >= (0, 26):
            keywords = (query.get("keywords") or "").lower()
            if keywords:
                rows = [a for a in rows if keywords in a["title"].lower()]
            canvas = [
                {key: a[key] for key in ("id", "avatar", "title", "description", "permission", "update_time")}
                | {"canvas_category": a["canvas_category"], "tenant_id": a["user_id"], "tags": "", "type": "agent"}
                for a in rows
            ]
            if not query.get("canvas_category"):
                canvas.insert(0, {"id": "grp-templates", "title": "Templates", "type": "compilation_template_group"})
            window = canvas[(page - 1) * size : page * size]
            return self._ok_success({"canvas": window, "total": len(canvas)})
        agent_id, title = query.get("id"), query.get("title")
        if agent_id or title:
            rows = [a for a in rows if (not agent_id or a["id"] == agent_id) and (not title or a["title"] == title)]
            if not rows:
                return self._error("The agent doesn't exist.")
        return self._ok(rows[(page - 1) * size : page * size])

    async def _agent_get(self, request: web.Request) -> web.Response:
        if self.version < (0, 26):
            raise web.HTTPNotFound()
        agent = self.agents.get(request.match_info["agent_id"])
        if agent is None:
            return self._error("canvas not found.")
        return self._ok({**agent, "last_publish_time": None})

    async def _agent_update(self, request: web.Request) -> web.Response:
        agent = self.agents.get(request.match_info["agent_id"])
        if agent is None:
            if self.version >= (0, 26):
                return self._json(
                    {"code": 103, "data": False, "message": "Make sure you have permission to access the agent."}
                )
            return self._json(
                {"code": 103, "data": False, "message": "Only owner of canvas authorized for this operation."}
            )
        body = request[JSON_BODY] or {}
        changes = {key: body[key] for key in ("title", "description", "dsl") if body.get(key) is not None}
        if "dsl" in changes:
            dsl = json.loads(changes["dsl"]) if isinstance(changes["dsl"], str) else changes["dsl"]
            if self.version >= (0, 26) and not isinstance(dsl, dict):
                return self._json({"code": 101, "data": False, "message": "DSL must be a JSON object."})
            changes["dsl"] = dsl
        now = int(time.time() * 1000)
        # A new dict, not an update in place: sessions opened before keep the DSL they snapshotted.
        self.agents[agent["id"]] = {**agent, **changes, "update_time": now}
        if self.version >= (0, 26):
            return self._ok_success({"update_time": now})
        return self._ok_success(True)

    async def _agent_delete(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["agent_id"]
        if agent_id not in self.agents:
            return self._json(
                {"code": 103, "data": False, "message": "Only owner of canvas authorized for this operation."}
            )
        del self.agents[agent_id]  # sessions are not cascaded, as in RAGFlow
        return self._ok_success(True)

    def _session_new(self, agent: dict[str, Any]) -> dict[str, Any]:
        prologue = agent["dsl"].get("components", {}).get("begin", {}).get("obj", {}).get("params", {}).get("prologue")
        session = {
            "agent_id": agent["id"],
            "dsl": agent["dsl"],
            "id": _uuid(),
            "message": [{"content": prologue or "Hi! I'm your assistant.", "role": "assistant"}],
            "reference": [],
            "source": "agent",
            "user_id": "",
        }
        self.sessions[session["id"]] = session
        return session

    async def _session_create(self, request: web.Request) -> web.Response:
        agent = self.agents.get(request.match_info["agent_id"])
        if agent is None:
            return self._error("Agent not found.")
        session = self._session_new(agent)
        return self._ok({key: value for key, value in session.items() if key != "reference"})

    async def _session_list(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["agent_id"]
        if agent_id not in self.agents:
            return self._error(f"You don't own the agent {agent_id}.")
        page, size = int(request.query.get("page", 1)), int(request.query.get("page_size", 30))
        rows = [s for s in self.sessions.values() if s["agent_id"] == agent_id][(page - 1) * size : page * size]
        key = "message" if self.version >= (0, 26) else "messages"
        with_dsl = request.query.get("dsl", "true").lower() != "false"
        listed = [
            {"agent_id": s["agent_id"], "id": s["id"], key: s["message"], "source": "agent", "user_id": s["user_id"]}
            | ({"dsl": s["dsl"]} if with_dsl else {})
            for s in rows
        ]
        if self.version >= (0, 26):
            return self._json({"code": 0, "data": listed, "message": "success", "total": len(listed)})
        return self._ok(listed)

    async def _session_delete(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["agent_id"]
        if agent_id not in self.agents:
            return self._error(f"You don't own the agent {agent_id}")
        mine = [s for s, session in self.sessions.items() if session["agent_id"] == agent_id]
        if not mine and self.version < (0, 25):
            return self._error(f"Agent {agent_id} has no sessions")
        ids = (request[JSON_BODY] or {}).get("ids")
        if not ids:
            if self.version >= (0, 25):
                return self._ok()
            ids = mine  # up to v0.24: every session of the agent
        errors, deleted = [], 0
        for session_id in ids:
            if session_id not in mine:
                errors.append(f"The agent doesn't own the session {session_id}")
                continue
            del self.sessions[session_id]
            deleted += 1
        return self._deletion_result(errors, deleted, "sessions")

    # Completions
    # --------------------------------------------------------------------------

    async def _completion(self, request: web.Request) -> web.StreamResponse:
        agent = self.agents.get(request.match_info["agent_id"])
        body = request[JSON_BODY] or {}
        if agent is None:
            return self._error(f"You don't own the agent {request.match_info['agent_id']}")
        session_id = body.get("session_id")
        if session_id:
            session = self.sessions.get(session_id)
            if session is None or session["agent_id"] != agent["id"]:
                return self._error("Session not found!")
        else:
            session = self._session_new(agent)
        question = body.get("query") or body.get("question") or ""
        script = self._scripts.pop(0) if self._scripts else self.default
        if not body.get("stream", True):
            return self._error("The fake RAGFlow only streams.", 101)
        # The session's own DSL: RAGFlow snapshots it when the session opens (an agent updated since
        # answers its older sessions as they were).
        chunks = self._retrieve(session["dsl"], question) if script.reference else []
        cited = {str(hash_str2int(c["id"], 500)): c for c in chunks}
        tokens = script.tokens if script.tokens is not None else _default_answer(chunks, cited)
        first_key = next(iter(cited), "0")
        tokens = [token.replace("{ID}", first_key) for token in tokens]

        if script.headers_delay:
            await asyncio.sleep(script.headers_delay)
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        # The client may go away mid-answer (its read timeout): then there is nothing left to send.
        with contextlib.suppress(ConnectionResetError):
            await self._answer_stream(request, response, agent, session, script, question, tokens, cited)
        return response

    async def _answer_stream(
        self,
        request: web.Request,
        response: web.StreamResponse,
        agent: dict[str, Any],
        session: dict[str, Any],
        script: Script,
        question: str,
        tokens: list[str],
        cited: dict[str, dict[str, Any]],
    ) -> None:
        message_id, task_id, prefix = _uuid(), agent["id"], b"data: " if script.space_after_data else b"data:"

        async def send(event: str, data: Any) -> None:
            frame = {
                "event": event,
                "message_id": message_id,
                "created_at": int(time.time()),
                "task_id": task_id,
                "data": data,
                "session_id": session["id"],
            }
            await response.write(prefix + json.dumps(frame, ensure_ascii=False).encode() + b"\n\n")

        if script.extra_events:
            await send("workflow_started", {"inputs": {}})
            await send("node_started", _node("begin", "Begin"))
        if self.version >= (0, 23) or script.extra_events:
            await send("node_finished", _node("begin", "Begin", finished=True))
            await send("node_finished", _node("Retrieval:KB", "Retrieval", finished=True))
        if script.first_token_delay:
            await asyncio.sleep(script.first_token_delay)
        if script.thinking:
            await send("message", {"content": "", "start_to_think": True})
            for text in script.thinking:
                await send("message", {"content": text})
            await send("message", {"content": "", "end_to_think": True})
        answer = ""
        for index, token in enumerate(tokens):
            if script.drop_after is not None and index == script.drop_after:
                request.transport.close()  # RAGFlow (or a proxy) dies mid-answer
                return
            if script.error_after is not None and index == script.error_after:
                await response.write(prefix + b'{"code": 500, "message": "boom", "data": false}\n\n')
                await response.write(prefix + b"[DONE]\n\n")
                return
            await send("message", {"content": token})
            answer += token
            if script.delay:
                await asyncio.sleep(script.delay)
        if cited:
            doc_aggs: dict[str, dict[str, Any]] = {}
            for chunk in cited.values():
                agg = doc_aggs.setdefault(
                    chunk["document_name"],
                    {"doc_name": chunk["document_name"], "doc_id": chunk["document_id"], "count": 0},
                )
                agg["count"] += 1
            await send("message_end", {"reference": {"chunks": cited, "doc_aggs": doc_aggs}})
        else:
            await send("message_end", {})
        if self.version >= (0, 23) or script.extra_events:
            await send("node_finished", _node("Message:Reply", "Message", finished=True))
        if script.extra_events:
            await send("user_inputs", {"inputs": {}, "tips": ""})
            usage = {"prompt_tokens": 42, "completion_tokens": len(tokens), "total_tokens": 42 + len(tokens)}
            await send("workflow_finished", {"inputs": {}, "outputs": {}, "elapsed_time": 0.5, "usage": usage})
        session["message"] += [{"content": question, "role": "user"}, {"content": answer, "role": "assistant"}]
        if script.terminator == "legacy":
            await response.write(prefix + b'{"code": 0, "message": "", "data": true}\n\n')
        else:
            await response.write(prefix + b"[DONE]\n\n")

    def _retrieve(self, dsl: dict[str, Any], question: str) -> list[dict[str, Any]]:
        """Chunks of the DSL's datasets sharing words with the question, best first (at most 3)."""
        dataset_ids: set[str] = set()
        for component in (dsl.get("components") or {}).values():
            obj = component.get("obj") or {}
            if obj.get("component_name") == "Retrieval":
                dataset_ids.update(obj.get("params", {}).get("kb_ids") or ())
        words = set(WORD.findall(question.lower()))
        scored = []
        for doc in self.documents.values():
            if doc["dataset_id"] not in dataset_ids or doc["run"] != "DONE":
                continue
            for chunk in doc["chunks"]:
                overlap = len(words & set(WORD.findall(chunk["content"].lower())))
                if overlap:
                    scored.append((overlap, chunk))
        scored.sort(key=lambda pair: -pair[0])
        return [
            {**chunk, "similarity": round(0.5 + 0.1 * overlap, 2), "vector_similarity": 0.7, "term_similarity": 0.5}
            for overlap, chunk in scored[:3]
        ]


def _chunks(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Paragraphs of a text document, in the shape `chunks_format` gives them."""
    text = doc["content"].decode("utf-8", errors="replace")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()] or [text.strip()]
    return [
        {
            "id": hashlib.sha1(f"{doc['id']}:{n}".encode(), usedforsecurity=False).hexdigest()[:16],
            "content": paragraph,
            "document_id": doc["id"],
            "document_name": doc["name"],
            "dataset_id": doc["dataset_id"],
            "image_id": "",
            "positions": [[n + 1, 0, 0, 0, 0]],
            "url": None,
            "doc_type": "",
            "row_id": None,
        }
        for n, paragraph in enumerate(paragraphs)
    ]


def _default_answer(chunks: list[dict[str, Any]], cited: dict[str, dict[str, Any]]) -> list[str]:
    if not chunks:
        return ["I", " could", " not", " find", " that", " in", " the", " knowledge", " base", "."]
    sentence = re.split(r"(?<=[.!?])\s", chunks[0]["content"])[0].rstrip(".")
    words = sentence.split()
    return ["Your", " sources", " say:", *[f" {word}" for word in words], " [ID:{ID}]", "."]


def _node(component_id: str, name: str, *, finished: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "component_id": component_id,
        "component_name": name,
        "component_type": name,
        "created_at": time.time(),
    }
    if finished:
        data.update(inputs={}, outputs={"_elapsed_time": 0.01}, error=None, elapsed_time=0.01)
    else:
        data["thoughts"] = ""
    return data
