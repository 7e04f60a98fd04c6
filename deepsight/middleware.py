"""Request hardening that holds whichever door a request comes in by: body limits and security headers.

- `RequestBodyLimitASGI` wraps the ASGI application. Django's ASGI handler reads a whole request
  body into a temporary file before any middleware or view runs, so this is the only place that
  can refuse a body while it arrives: a declared `Content-Length` over the limit is refused before
  a byte is read, and a chunked body (no `Content-Length`) is counted and cut off at the limit.
- `RequestBodyLimitMiddleware` is the same rule for WSGI and the test client (the declared
  length; WSGI servers never hand Django more than that), and `error_views.bad_request` (the
  project's `handler400`) turns Django's own `RequestDataTooBig` into the same 413 instead of a 400.
- `SecurityHeadersMiddleware` adds the Content-Security-Policy and the headers Django's
  `SecurityMiddleware` does not set.

Every refusal is the same JSON: `{"detail": "...", "code": "request_too_large"}` with status 413.
Uploads need more room than JSON, so paths matching `REQUEST_BODY_UPLOAD_PATHS` get
`REQUEST_BODY_UPLOAD_MAX_BYTES`; every other request gets `REQUEST_BODY_MAX_BYTES`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import cache
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from whitenoise.middleware import WhiteNoiseMiddleware

TOO_LARGE_CODE = "request_too_large"

#: Defaults of the settings this module reads (deepsight/settings.py sets them all).
DEFAULTS: dict[str, Any] = {
    "REQUEST_BODY_MAX_BYTES": 1024 * 1024,
    "REQUEST_BODY_UPLOAD_MAX_BYTES": 11 * 1024 * 1024,
    "REQUEST_BODY_UPLOAD_PATHS": (),
    "CONTENT_SECURITY_POLICY": {
        "default-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
    "CONTENT_SECURITY_POLICY_PATH_ADDITIONS": (),
    "SECURITY_EXTRA_HEADERS": {},
}


def _setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


@cache
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(pattern) for pattern in patterns)


def body_limit(path: str) -> int:
    """The most bytes a request body to `path` may have."""
    if any(pattern.search(path) for pattern in _compiled(tuple(_setting("REQUEST_BODY_UPLOAD_PATHS")))):
        return _setting("REQUEST_BODY_UPLOAD_MAX_BYTES")
    return _setting("REQUEST_BODY_MAX_BYTES")


def _too_large_payload(limit: int | None) -> dict[str, str]:
    if limit is None:
        detail = "The request body is too large."
    else:
        detail = f"The request body is larger than the {limit:,} bytes this address accepts."
    return {"detail": detail, "code": TOO_LARGE_CODE}


def request_too_large_response(limit: int | None = None) -> JsonResponse:
    return JsonResponse(_too_large_payload(limit), status=413)


def _declared_length(value: str | bytes | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


# ASGI
# ------------------------------------------------------------------------------


class _BodyTooLarge(Exception):
    pass


class RequestBodyLimitASGI:
    """ASGI wrapper: refuses request bodies over the path's limit with a 413, while they arrive."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope.get("path", ""))
        headers = dict(scope.get("headers") or ())
        declared = _declared_length(headers.get(b"content-length"))
        if declared is not None and declared > limit:
            await self._refuse(send, limit)
            return
        received = 0

        async def counting_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge()
            return message

        try:
            # `send` is passed on as it is: a wrapper would sit in the path of every streamed token.
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge:
            # Django reads the whole body before anything answers, so nothing has been sent yet.
            await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send: Callable, limit: int) -> None:
        body = json.dumps(_too_large_payload(limit)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-content-type-options", b"nosniff"),
                    # The rest of the body is never read, so the connection cannot be reused.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# Django middleware and error handler
# ------------------------------------------------------------------------------


class SyncOrAsyncMiddleware:
    """Middleware that runs in Django's sync or async chain as it finds it: `_call` or `_acall`.

    In an async chain (ASGI) a sync-only middleware would send every request through a worker
    thread and back; these do no I/O, so they run on the event loop.
    """

    sync_capable = True
    async_capable = True

    def _adapt_to(self, get_response: Callable) -> None:
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        return self._acall(request) if self.is_async else self._call(request)

    def _call(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError("SyncOrAsyncMiddleware subclasses must implement _call()")

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError("SyncOrAsyncMiddleware subclasses must implement _acall()")


class RequestBodyLimitMiddleware(SyncOrAsyncMiddleware):
    """Refuses a request whose declared body is over the path's limit, before anything reads it."""

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self._adapt_to(get_response)

    def _call(self, request: HttpRequest) -> HttpResponse:
        return self._refusal(request) or self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return self._refusal(request) or await self.get_response(request)

    @staticmethod
    def _refusal(request: HttpRequest) -> HttpResponse | None:
        limit = body_limit(request.path)
        declared = _declared_length(request.META.get("CONTENT_LENGTH"))
        if declared is not None and declared > limit:
            return request_too_large_response(limit)
        return None


class SecurityHeadersMiddleware(SyncOrAsyncMiddleware):
    """Adds the Content-Security-Policy and the headers `SecurityMiddleware` does not set.

    The policy (`CONTENT_SECURITY_POLICY`, a dict of directives) allows scripts and styles from
    this site only: no inline script anywhere. Third-party pages need a little more, granted by
    path in `CONTENT_SECURITY_POLICY_PATH_ADDITIONS` (`[(regex, {directive: [sources]})]`): the
    admin, the browsable API and the API docs carry inline `style` attributes, and the browsable
    API's "Log out" link one inline handler, allowed by its hash alone. A response that set its
    own policy keeps it.
    """

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self._adapt_to(get_response)

    def _call(self, request: HttpRequest) -> HttpResponse:
        return self._add_headers(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return self._add_headers(request, await self.get_response(request))

    @staticmethod
    def _add_headers(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy(request.path)
        for header, value in _setting("SECURITY_EXTRA_HEADERS").items():
            response.headers.setdefault(header, value)
        return response


def content_security_policy(path: str) -> str:
    directives = {name: list(sources) for name, sources in _setting("CONTENT_SECURITY_POLICY").items()}
    for pattern, additions in _setting("CONTENT_SECURITY_POLICY_PATH_ADDITIONS"):
        if re.search(pattern, path):
            for name, sources in additions.items():
                directives[name] = [*directives.get(name, directives.get("default-src", [])), *sources]
    return "; ".join(" ".join([name, *sources]) for name, sources in directives.items())


class StaticFilesMiddleware(SyncOrAsyncMiddleware, WhiteNoiseMiddleware):
    """WhiteNoise, able to run in Django's async middleware chain.

    WhiteNoise's middleware is sync-only: under ASGI, Django then runs every request (not only the
    static ones) through a worker thread and back to the event loop, two hand-offs per request.
    Finding a static file is a dictionary lookup, so it is done on the loop here; the rest of the
    chain stays async.
    """

    def __init__(self, get_response: Callable, settings: Any = settings) -> None:
        super().__init__(get_response, settings)
        self._adapt_to(get_response)

    def _call(self, request: HttpRequest) -> HttpResponse:
        return WhiteNoiseMiddleware.__call__(self, request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        static_file = self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        if static_file is not None:
            # autorefresh (DEBUG) searches the disk; production finds files in a dict built at start.
            return _with_async_body(self.serve(static_file, request))
        return await self.get_response(request)


STATIC_READ_BYTES = 64 * 1024


def _with_async_body(response: FileResponse) -> FileResponse:
    """The file read in a worker thread chunk by chunk, as the ASGI server asks for it.

    WhiteNoise's body is a sync iterator: under ASGI, Django reads it whole in a thread before
    sending the first byte, and warns on every static file that it had to.
    """
    file = response.file_to_stream
    response.streaming_content = _file_chunks(file) if file is not None else _no_chunks()
    return response


async def _file_chunks(file: Any) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(file.read, STATIC_READ_BYTES):
            yield chunk
    finally:
        file.close()


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield  # an async generator with nothing to send: HEAD, 304
