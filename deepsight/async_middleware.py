"""Django's own middleware, with its hooks run on the event loop when they do no I/O.

Under ASGI, Django runs every `process_request` and `process_response` of a `MiddlewareMixin`
middleware in a worker thread (`sync_to_async`), in case it blocks: with the seven in `MIDDLEWARE`
that was up to fourteen hand-offs to a thread and back for every request, the largest share of a
small request's CPU. These hooks are plain computations except where a session or the messages
must be saved; those cases still go to a thread, each checked before it runs.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csrf, security


class InlineHooksMixin:
    """`MiddlewareMixin.__acall__` without the thread hand-offs, for hooks that do no I/O."""

    def request_may_block(self, request: HttpRequest) -> bool:
        return False

    def response_may_block(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            if self.request_may_block(request):
                response = await sync_to_async(self.process_request, thread_sensitive=True)(request)
            else:
                response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_may_block(request, response):
                response = await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
            else:
                response = self.process_response(request, response)
        return response


class SecurityMiddleware(InlineHooksMixin, security.SecurityMiddleware):
    """Headers and the HTTPS redirect: no I/O."""


class CommonMiddleware(InlineHooksMixin, common.CommonMiddleware):
    """Host checks and the slash redirect (a URL resolve): no I/O."""


class XFrameOptionsMiddleware(InlineHooksMixin, clickjacking.XFrameOptionsMiddleware):
    """One header: no I/O."""


class AuthenticationMiddleware(InlineHooksMixin, auth.AuthenticationMiddleware):
    """Sets a lazy `request.user`: the user is read from the database only where it is used."""


class CsrfViewMiddleware(InlineHooksMixin, csrf.CsrfViewMiddleware):
    """The CSRF secret comes from a cookie; from the session (`CSRF_USE_SESSIONS`) it may read the database."""

    def request_may_block(self, request: HttpRequest) -> bool:
        return settings.CSRF_USE_SESSIONS

    def response_may_block(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return settings.CSRF_USE_SESSIONS


class SessionMiddleware(InlineHooksMixin, sessions.SessionMiddleware):
    """The session is loaded lazily; saving a changed one is I/O, done in a thread as Django does."""

    def response_may_block(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        session: Any = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class MessageMiddleware(InlineHooksMixin, messages.MessageMiddleware):
    """Messages are stored (cookie or session) only when some were read or added."""

    def response_may_block(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        storage: Any = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)
