"""Errors the chat services raise for a caller to turn into a clear 4xx.

Each carries a stable `code` (for programs and tests) and a `message` safe to show a user.
"""

from __future__ import annotations


class ChatError(Exception):
    status_code = 400
    code = "invalid"
    default_message = "The request could not be carried out."
    #: Seconds after which a retry may succeed, sent as `Retry-After`; None when waiting won't help.
    retry_after: int | None = None

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class SessionArchived(ChatError):
    status_code = 409
    code = "session_archived"
    default_message = "This session is archived. Unarchive it to send messages."


class GenerationInProgress(ChatError):
    status_code = 409
    code = "generation_in_progress"
    default_message = "An answer is still being generated in this session. Wait for it or stop it."


class ClientMessageIdReused(ChatError):
    status_code = 409
    code = "client_message_id_reused"
    default_message = (
        "This client_message_id was already used for a different message in this session. "
        "Send a new message with a new id."
    )


class GenerationLimitReached(ChatError):
    status_code = 429
    code = "too_many_generations"
    default_message = "Too many answers are being generated for you at once. Try again shortly."
    retry_after = 5  # an answer takes seconds: the hint spares a client from guessing


class NoGenerationRunning(ChatError):
    status_code = 409
    code = "no_generation_running"
    default_message = "Nothing is being generated in this session."


class NothingToTitle(ChatError):
    status_code = 409
    code = "nothing_to_title"
    default_message = "This session has no complete answer yet to make a title from."
