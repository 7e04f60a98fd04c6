"""What a RAGFlow call can fail with, typed so callers decide between retrying and giving up.

RAGFlow answers most business errors with HTTP 200 and a non-zero `code` in the body; the client
maps both that and HTTP failures to these classes. Messages are meant for logs and for the
`last_error` an administrator reads: they never contain the API key (the client redacts it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RagFlowError(Exception):
    """A RAGFlow call failed. `code` is RAGFlow's `code` (or None), `status` the HTTP status."""

    #: Worth trying again later (the service was down, overloaded or slow).
    transient = False

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class RagFlowUnavailable(RagFlowError):
    """RAGFlow could not be reached, timed out, or failed internally (HTTP 5xx, code 100/105/500)."""

    transient = True


class RagFlowTimeout(RagFlowUnavailable):
    """RAGFlow took longer than the configured timeout to answer (or to send the next piece)."""


class RagFlowAuthError(RagFlowError):
    """RAGFlow refused the API key (HTTP 401, code 109 or 401, or the v0.24 code-0 quirk)."""


class RagFlowNotFound(RagFlowError):
    """The dataset, document, agent or session is not there, or not ours (code 102)."""


class RagFlowRefused(RagFlowError):
    """RAGFlow refused the request: bad argument (101), not allowed (103, 108), unknown route (404)."""


class RagFlowProtocolError(RagFlowError):
    """RAGFlow answered something this client cannot read (not JSON, an unexpected shape)."""


class RagFlowStreamError(RagFlowError):
    """An answer broke off: an error frame in the stream, or the connection closed before the end."""


class RagFlowNotReady(RagFlowError):
    """What this step needs on our side (the dataset, the agent) is not provisioned yet."""

    transient = True


#: What a worker retries with backoff; everything else is recorded as an error at once.
TRANSIENT_ERRORS = (RagFlowUnavailable, RagFlowNotReady)


def error_for_body(body: Mapping[str, Any], *, status: int, what: str) -> RagFlowError | None:
    """The error a RAGFlow JSON envelope stands for, or None when it reports success.

    `what` names the call for the message, e.g. "POST /datasets".
    """
    code = body.get("code")
    message = str(body.get("message") or "").strip()
    if status == 401 or code in (109, 401):
        return RagFlowAuthError(
            f"RAGFlow refused the API key on {what}: {message or 'unauthorized'}", code=code, status=status
        )
    if code == 0 or (code is None and status < 400):
        if body.get("data") is False and "authoriz" in message.lower():
            # v0.24 and older answer a missing or malformed header with code 0 and data false.
            return RagFlowAuthError(f"RAGFlow refused the request on {what}: {message}", code=code, status=status)
        return None
    text = f"RAGFlow refused {what} (code {code}): {message}" if code is not None else f"RAGFlow refused {what}"
    if status >= 500 or status == 429 or code in (100, 105, 500):
        return RagFlowUnavailable(text, code=code, status=status)
    if code == 102:
        return RagFlowNotFound(text, code=code, status=status)
    return RagFlowRefused(text, code=code, status=status)
