"""The project's error handlers (`handler400`, `handler404`, `handler500`): JSON under the API.

DRF answers every error its views raise with `{"detail": ...}`, but a URL no pattern matches, a
request Django refuses before any view, and an exception nothing caught are answered by Django
itself, with an HTML page. An API client would then get HTML where it parses JSON. Under
`/api/` these are `{"detail": ...}` too; every other page keeps Django's own.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from deepsight.middleware import request_too_large_response

API_PREFIX = "/api/"


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request: HttpRequest, exception: Exception, template_name: str = "400.html") -> HttpResponse:
    """A body Django found too large is a 413 like every other (`deepsight.middleware`)."""
    if isinstance(exception, RequestDataTooBig):
        return request_too_large_response()
    if _is_api(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception, template_name=template_name)


def page_not_found(request: HttpRequest, exception: Exception, template_name: str = "404.html") -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception, template_name=template_name)


def server_error(request: HttpRequest, template_name: str = "500.html") -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "A server error occurred."}, status=500)
    return defaults.server_error(request, template_name=template_name)
