"""Reading a RAGFlow agent completion stream (v0.20+) into typed frames.

RAGFlow writes `data:{json}\\n\\n` (no space; its OpenAI-style paths add one), with the event type
inside the JSON. The parser is fed raw bytes as they arrive and keeps no limit on line length
(a `message_end` with many chunks is one long line). What it accepts, version by version:

- `message` events: `data.content` is a delta; frames with `start_to_think` / `end_to_think`
  bracket the reasoning, which arrives as ordinary deltas in between.
- `message_end`: `data.reference.chunks`, an object keyed by the number the text cites as
  `[ID:n]` (agents), or a list indexed from 0 (chat assistants). One per Message component.
- `workflow_finished`: `data.usage`, when the server reports it.
- the end: `data:[DONE]`, or `{"code": 0, "data": true}` (older agent and chat streams).
- errors: a frame with a non-zero `code` (`{"code": 500, "message": ..., "data": false}`), or an
  answer text starting with `**ERROR**:` (older servers).
- every other event (`node_started`, `node_finished`, `workflow_started`, `user_inputs`, ...) is
  ignored, as the RAGFlow team asks clients to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chat_sessions.agents.http import json_value
from notebooks.ragflow.errors import (
    RagFlowAuthError,
    RagFlowError,
    RagFlowProtocolError,
    RagFlowStreamError,
    error_for_body,
)

#: A single SSE line longer than this is not a RAGFlow frame: stop instead of growing forever.
MAX_LINE_BYTES = 16 * 1024 * 1024
SNIPPET_CHARS = 500


@dataclass(frozen=True, slots=True)
class AnswerText:
    """A piece of the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningText:
    """A piece of the model's thinking, between `start_to_think` and `end_to_think`."""

    text: str


@dataclass(frozen=True, slots=True)
class References:
    """The chunks the answer may cite, as plain dicts (see `references_normalize`)."""

    chunks: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Usage:
    usage: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SessionSeen:
    """The stream named its agent session (every event carries `session_id`); sent once."""

    session_id: str


CompletionFrame = AnswerText | ReasoningText | References | Usage | SessionSeen


@dataclass
class CompletionParser:
    """Feed it bytes with `feed`; it returns frames and sets `finished` at the terminator.

    Raises `RagFlowStreamError` for an error frame, `RagFlowAuthError` when the key is refused,
    and `RagFlowProtocolError` for a line that is not JSON.
    """

    finished: bool = False
    session_id: str = ""
    _thinking: bool = False
    _pending: RagFlowError | None = None
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[CompletionFrame]:
        """The frames completed by `data`. An error after some of them is kept for `raise_pending`,
        so what RAGFlow streamed before it (in the same network read) is not lost."""
        self._buffer += data
        frames: list[CompletionFrame] = []
        try:
            while not self.finished:
                end = self._buffer.find(b"\n")
                if end < 0:
                    if len(self._buffer) > MAX_LINE_BYTES:
                        raise RagFlowProtocolError("RAGFlow sent a stream line longer than 16 MB.")
                    break
                line = bytes(self._buffer[:end]).strip()
                del self._buffer[: end + 1]
                frames += self._line(line)
        except RagFlowError as exc:
            if not frames:
                raise
            self._pending = exc
        return frames

    def raise_pending(self) -> None:
        """Raise the error met after the frames `feed` last returned, if there was one."""
        if self._pending is not None:
            error, self._pending = self._pending, None
            raise error

    def close(self) -> list[CompletionFrame]:
        """The body ended: read a last line that had no newline."""
        line = bytes(self._buffer).strip()
        self._buffer.clear()
        return self._line(line) if line and not self.finished else []

    def _line(self, line: bytes) -> list[CompletionFrame]:
        if line.startswith(b"data:"):
            payload = line[5:].strip()
        elif line.startswith(b"{"):
            payload = line  # a JSON error body where a stream was expected
        else:
            return []  # blank lines, `: comments`, `event:` and `id:` lines
        if not payload:
            return []
        if payload == b"[DONE]":
            self.finished = True
            return []
        try:
            frame = json_value(payload)
        except ValueError as exc:
            raise RagFlowProtocolError("RAGFlow sent a stream frame that is not JSON.") from exc
        if not isinstance(frame, dict):
            return []
        return self._frame(frame)

    def _frame(self, frame: dict[str, Any]) -> list[CompletionFrame]:
        data = frame.get("data")
        if "code" in frame or "event" not in frame:
            error = error_for_body(frame, status=200, what="the answer")
            if isinstance(error, RagFlowAuthError):
                raise error
            if error is not None:
                message = str(frame.get("message") or "").strip()
                raise RagFlowStreamError(f"RAGFlow failed mid-answer (code {error.code}): {message}", code=error.code)
        if "event" not in frame:
            if data is True:  # the terminator of older agent streams and of chat streams
                self.finished = True
                return []
            if isinstance(data, dict) and "answer" in data:
                raise RagFlowProtocolError(
                    "RAGFlow answered in the pre-v0.20 agent format; deepsight needs RAGFlow v0.20.5 or newer."
                )
        frames: list[CompletionFrame] = []
        session_id = frame.get("session_id") or (data.get("session_id") if isinstance(data, dict) else "")
        if session_id and not self.session_id:
            self.session_id = str(session_id)
            frames.append(SessionSeen(self.session_id))
        if not isinstance(data, dict):
            return frames
        event = frame.get("event")
        if event == "message":
            frames += self._message(data)
        elif event == "message_end":
            chunks = references_normalize(data.get("reference"))
            if chunks:
                frames.append(References(tuple(chunks)))
        elif event == "workflow_finished" and isinstance(data.get("usage"), dict) and data["usage"]:
            frames.append(Usage(data["usage"]))
        return frames

    def _message(self, data: dict[str, Any]) -> list[CompletionFrame]:
        if data.get("start_to_think"):
            self._thinking = True
        content = data.get("content")
        text = content if isinstance(content, str) else ""
        if text.lstrip().startswith("**ERROR**"):
            raise RagFlowStreamError(f"RAGFlow failed mid-answer: {text.strip()[:300]}")
        frames: list[CompletionFrame] = []
        if text:
            frames.append(ReasoningText(text) if self._thinking else AnswerText(text))
        if data.get("end_to_think"):
            self._thinking = False
        return frames


def references_normalize(reference: Any) -> list[dict[str, Any]]:
    """RAGFlow's `reference` as a list of dicts ordered by `index`, the number `[ID:n]` cites.

    Agents key `chunks` by that number as a string; chat assistants send a list whose positions
    are the numbers. Each dict has `index`, `title`, `document_id`, `snippet`, `chunk_id`,
    `dataset_id` and `similarity`.
    """
    if not isinstance(reference, dict):
        return []
    chunks = reference.get("chunks")
    if isinstance(chunks, dict):
        numbered = []
        for position, (key, chunk) in enumerate(chunks.items()):
            key_text = str(key).strip()
            numbered.append((int(key_text) if key_text.isdigit() else position, chunk))
    elif isinstance(chunks, list):
        numbered = list(enumerate(chunks))
    else:
        return []
    names = _document_names(reference.get("doc_aggs"))
    sources = []
    for index, chunk in sorted(numbered, key=lambda pair: pair[0]):
        if not isinstance(chunk, dict):
            continue
        document_id = str(chunk.get("document_id") or chunk.get("doc_id") or "")
        content = chunk.get("content") or chunk.get("content_with_weight") or ""
        sources.append(
            {
                "index": index,
                "title": str(chunk.get("document_name") or chunk.get("docnm_kwd") or names.get(document_id) or ""),
                "document_id": document_id,
                "snippet": str(content)[:SNIPPET_CHARS],
                "chunk_id": str(chunk.get("id") or chunk.get("chunk_id") or ""),
                "dataset_id": str(chunk.get("dataset_id") or chunk.get("kb_id") or ""),
                "similarity": chunk.get("similarity"),
            }
        )
    return sources


def _document_names(doc_aggs: Any) -> dict[str, str]:
    """`doc_aggs` is keyed by document name (agents) or a list (chat assistants): id -> name."""
    entries = doc_aggs.values() if isinstance(doc_aggs, dict) else doc_aggs if isinstance(doc_aggs, list) else ()
    return {
        str(entry.get("doc_id")): str(entry.get("doc_name") or "")
        for entry in entries
        if isinstance(entry, dict) and entry.get("doc_id")
    }
