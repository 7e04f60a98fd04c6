"""Generating one answer: read the agent's events, publish them, save the answer, always finish.

A generation is an asyncio task of its own, not part of any response: the browser that asked
may go away and the answer still completes and is saved. It ends in a `finally`, as `complete`,
`interrupted` (stopped, or the process shutting down) or `error` (the agent failed; the text so
far is kept), and its stream always ends with a `done` or an `error` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from chat_sessions.agents.base import (
    AgentError,
    EndEvent,
    ErrorEvent,
    ReasoningEvent,
    ReferenceEvent,
    RemoteSessionEvent,
    TokenEvent,
    Turn,
    UsageEvent,
)
from chat_sessions.agents.registry import agent_backend
from chat_sessions.conf import chat_settings
from chat_sessions.models import MessageStatus
from chat_sessions.streaming.channels import channel_hub
from chat_sessions.streaming.heartbeat import heartbeat
from chat_sessions.streaming.persistence import db_call, text_flusher

logger = logging.getLogger(__name__)

#: Running generations of this process, by assistant message id (a strong reference keeps them).
_running: dict[int, asyncio.Task] = {}
#: Answers of crashed generations being marked `interrupted` (a strong reference keeps the tasks).
_cleanups: set[asyncio.Task] = set()


@dataclass(frozen=True)
class GenerationSpec:
    """What a generation needs, gathered by the request before it starts."""

    turn: Turn
    session_id: str
    message_id: int
    user_message: dict[str, Any]
    assistant_message: dict[str, Any]


@dataclass
class _Answer:
    message_id: int
    parts: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)

    def snapshot(self) -> tuple[str, str]:
        return "".join(self.parts), "".join(self.reasoning)


def generation_start(spec: GenerationSpec) -> asyncio.Task:
    """Publish `start` and run the generation as its own task on the running loop."""
    hub = channel_hub()
    hub.open(spec.message_id)
    hub.publish(
        spec.message_id,
        {
            "type": "start",
            "session_id": spec.session_id,
            "user_message_id": spec.user_message["id"],
            "assistant_message_id": spec.message_id,
            "user_message": spec.user_message,
            "assistant_message": spec.assistant_message,
        },
    )
    if hub.redis is not None:
        hub.redis.stop_listen(generation_cancel)
    # A fresh context: the request's context (and its thread-sensitive executor) ends with the
    # request, while this task must outlive it.
    loop = asyncio.get_running_loop()
    task = loop.create_task(_generate(spec), context=contextvars.Context())
    _running[spec.message_id] = task
    task.add_done_callback(functools.partial(_generation_ended, spec))
    heartbeat(functools.partial(_running_on, loop)).ensure()
    return task


def _running_on(loop: asyncio.AbstractEventLoop) -> list[int]:
    """The answers generated on `loop` (a process has one; a test may run servers on several)."""
    return [message_id for message_id, task in _running.items() if task.get_loop() is loop]


def _generation_ended(spec: GenerationSpec, task: asyncio.Task) -> None:
    _running.pop(spec.message_id, None)
    if task.cancelled() or task.exception() is None:
        return
    # A bug past `_generate`'s own handling (it ends every stream it can): the stream must still
    # end, or its tabs wait forever, and the answer must not stay `streaming`, blocking its session.
    logger.error("Generation of message %s crashed", spec.message_id, exc_info=task.exception())
    hub = channel_hub()
    log = hub.local(spec.message_id)
    if log is not None and not log.finished:
        answer = {**spec.assistant_message, "status": MessageStatus.INTERRUPTED}
        hub.finish(
            spec.message_id,
            {
                "type": "error",
                "message": "The answer ended unexpectedly.",
                "code": "internal_error",
                "assistant_message": answer,
            },
        )
    from chat_sessions.services import message_interrupt

    cleanup = asyncio.get_running_loop().create_task(db_call(message_interrupt, message_id=spec.message_id))
    _cleanups.add(cleanup)
    cleanup.add_done_callback(_cleanups.discard)


def generation_cancel(message_id: int) -> bool:
    """Stop a generation running in this process; True if there was one."""
    task = _running.get(message_id)
    if task is None or task.done():
        return False
    task.cancel()
    return True


#: How long a server shutting down waits for its stopped answers to be saved.
SHUTDOWN_GRACE_SECONDS = 10.0


async def generations_end(*, grace: float = SHUTDOWN_GRACE_SECONDS) -> int:
    """The server is shutting down: stop the answers generated on this loop and wait for each to be
    saved (`interrupted`, with every token its watchers were sent); how many there were.

    Without this a server's graceful stop (SIGTERM) ended the process with its answers mid-write:
    left `streaming`, their last second of text lost, their sessions refusing messages until they
    were taken for dead.
    """
    loop = asyncio.get_running_loop()
    tasks = [task for task in _running.values() if task.get_loop() is loop and not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        logger.warning("Shutting down: stopping %d answer(s) being generated and saving them", len(tasks))
        await asyncio.wait(tasks, timeout=grace)
        redis = channel_hub().redis
        if redis is not None:  # their last events, `done` among them, for resumes on other processes
            await redis.drain(seconds=2.0)
    return len(tasks)


def generation_is_local(message_id: int) -> bool:
    return message_id in _running


async def generation_stop(message_id: int) -> bool:
    """Stop a generation wherever it runs: here directly, elsewhere through Redis."""
    if generation_cancel(message_id):
        return True
    redis = channel_hub().redis
    if redis is None:
        return False
    await redis.stop_publish(message_id)
    return True


async def _generate(spec: GenerationSpec) -> None:
    hub = channel_hub()
    flusher = text_flusher()
    answer = _Answer(spec.message_id)
    sources: list[dict[str, Any]] = []
    usage: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    status = MessageStatus.COMPLETE
    started = time.monotonic()
    first_token_at: float | None = None
    publish, publish_text = hub.publish, hub.publish_text
    message_id = spec.message_id
    try:
        prepare_error = spec.turn.context.get("prepare_error")
        if prepare_error:
            raise AgentError(prepare_error["message"], code=prepare_error["code"])
        async with asyncio.timeout(chat_settings.MAX_GENERATION_SECONDS):
            async with contextlib.aclosing(agent_backend().stream_reply(turn=spec.turn)) as events:
                async for event in events:
                    kind = type(event)
                    if kind is TokenEvent:
                        if first_token_at is None:
                            first_token_at = time.monotonic()
                        answer.parts.append(event.text)
                        publish_text(message_id, "token", event.text)
                        flusher.mark(answer)
                    elif kind is ReasoningEvent:
                        answer.reasoning.append(event.text)
                        publish_text(message_id, "reasoning", event.text)
                        flusher.mark(answer)
                    elif kind is ReferenceEvent:
                        sources = [dict(source) for source in event.sources]
                        publish(message_id, {"type": "reference", "sources": sources})
                    elif kind is UsageEvent:
                        usage = dict(event.usage)
                    elif kind is RemoteSessionEvent:
                        await _remember_remote_session(spec, event)
                    elif kind is EndEvent:
                        if event.final_text:
                            answer.parts = [event.final_text]
                        break
                    elif kind is ErrorEvent:
                        status, error = MessageStatus.ERROR, {"message": event.message, "code": event.code}
                        break
    except asyncio.CancelledError:
        status = MessageStatus.INTERRUPTED
    except TimeoutError:
        status = MessageStatus.ERROR
        error = {"message": "The answer took too long and was stopped.", "code": "timeout"}
    except AgentError as exc:
        status, error = MessageStatus.ERROR, {"message": exc.message, "code": exc.code}
    except Exception:
        logger.exception("Generation of message %s failed", message_id)
        status = MessageStatus.ERROR
        error = {"message": "The agent failed unexpectedly.", "code": "internal_error"}
    finally:
        flusher.forget(message_id)
    metadata: dict[str, Any] = {
        "sources": sources,
        "model": spec.turn.llm_model_name or agent_backend().name,
        "latency_ms": round((time.monotonic() - started) * 1000),
    }
    if first_token_at is not None:
        metadata["first_token_ms"] = round((first_token_at - started) * 1000)
    text, reasoning = answer.snapshot()
    if reasoning:
        metadata["reasoning"] = reasoning
    if usage:
        metadata["usage"] = usage
    if error:
        metadata["error"] = error
    # Shielded: a second cancellation (shutdown) must not lose the answer between here and the write.
    await asyncio.shield(_finish(spec, text=text, status=status, metadata=metadata, error=error))


async def _finish(
    spec: GenerationSpec, *, text: str, status: str, metadata: dict[str, Any], error: dict[str, str] | None
) -> None:
    from chat_sessions.payloads import message_as_dict
    from chat_sessions.services import message_finish

    hub = channel_hub()
    message: dict[str, Any] | None = None
    for attempt in range(5):
        try:
            saved = await db_call(
                message_finish, message_id=spec.message_id, text=text, status=status, metadata=metadata
            )
            if saved is None:
                # Its session was deleted for good while it was written: nothing was kept, and the
                # tabs still watching must not be told it was.
                error = {"message": "This chat was deleted while the answer was written.", "code": "session_deleted"}
            message = message_as_dict(saved) if saved is not None else None
            break
        except Exception:
            logger.exception("Could not save the answer %s (attempt %d)", spec.message_id, attempt + 1)
            await asyncio.sleep(0.5 * 2**attempt)
    else:
        error = {"message": "The answer could not be saved.", "code": "persist_failed"}
    if message is None:
        message = {**spec.assistant_message, "message": text, "status": status, "metadata": metadata}
    if error:
        hub.finish(spec.message_id, {"type": "error", **error, "assistant_message": message})
    else:
        hub.finish(spec.message_id, {"type": "done", "message": message})


async def _remember_remote_session(spec: GenerationSpec, event: RemoteSessionEvent) -> None:
    from chat_sessions.services import session_remote_ids_set

    await db_call(
        session_remote_ids_set,
        session_id=spec.session_id,
        remote_session_id=event.remote_session_id,
        remote_agent_id=event.remote_agent_id,
    )


async def generation_result(message_id: int) -> dict[str, Any] | None:
    """Wait for a generation of this process to end; its last event (`done` or `error`)."""
    hub = channel_hub()
    log = hub.local(message_id)
    if log is None:
        return None
    while not log.finished:
        await log.changed()
    return log.final
