"""Separating `<think>...</think>` spans from answer text as tokens arrive.

Some servers (Ollama, llama.cpp, RAGFlow's OpenAI endpoint) put a reasoning model's thinking
inline. Tags can be split across tokens, so the splitter keeps a short tail until it knows.
"""

from __future__ import annotations

from chat_sessions.agents.base import ReasoningEvent, TokenEvent

_OPEN, _CLOSE = "<think>", "</think>"


class ThinkSplitter:
    """Feed text pieces; get `TokenEvent`s for the answer and `ReasoningEvent`s for thinking."""

    def __init__(self) -> None:
        self._thinking = False
        self._pending = ""

    def feed(self, text: str) -> list[TokenEvent | ReasoningEvent]:
        if not self._pending and "<" not in text:
            # The common case, kept cheap: no tag can start in this piece.
            return [ReasoningEvent(text) if self._thinking else TokenEvent(text)] if text else []
        buffer = self._pending + text
        self._pending = ""
        events: list[TokenEvent | ReasoningEvent] = []
        while buffer:
            tag = _CLOSE if self._thinking else _OPEN
            index = buffer.find(tag)
            if index >= 0:
                self._emit(events, buffer[:index])
                buffer = buffer[index + len(tag) :]
                self._thinking = not self._thinking
                continue
            keep = _partial_suffix(buffer, tag)
            self._emit(events, buffer[: len(buffer) - keep])
            self._pending = buffer[len(buffer) - keep :]
            break
        return events

    def flush(self) -> list[TokenEvent | ReasoningEvent]:
        events: list[TokenEvent | ReasoningEvent] = []
        self._emit(events, self._pending)
        self._pending = ""
        return events

    def _emit(self, events: list, text: str) -> None:
        if text:
            events.append(ReasoningEvent(text) if self._thinking else TokenEvent(text))


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a beginning of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0
