"""deepsight's URLs plus the baseline the session list is measured against: a plain `values()` view.

The view authenticates the token and reads the same rows (same filter, order and page size) with
`values()` into `JsonResponse`: no DRF, no serializer, no filter set, no pagination class, no tags.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from rest_framework.authtoken.models import Token

from chat_sessions.conf import chat_settings
from chat_sessions.models import ChatSession, SessionStatus
from deepsight.urls import urlpatterns as deepsight_urlpatterns

FIELDS = (
    "id",
    "container_id",
    "title",
    "title_source",
    "status",
    "pinned",
    "llm_model_name",
    "rag_document_ids",
    "message_count",
    "last_activity",
    "started_at",
    "ended_at",
    "created_at",
    "updated_at",
)


def sessions_values(request: HttpRequest, container_id: str) -> JsonResponse:
    """The first page of a user's active sessions in one notebook, as plain dicts."""
    key = request.headers.get("Authorization", "").removeprefix("Token ")
    user_id = Token.objects.filter(key=key).values_list("user_id", flat=True).first()
    if user_id is None:
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    rows = (
        ChatSession.objects.filter(container_id=container_id, created_by_id=user_id, status=SessionStatus.ACTIVE)
        .order_by("-last_activity", "-id")
        .values(*FIELDS)[: chat_settings.PAGE_SIZE]
    )
    return JsonResponse({"sessions": list(rows)})


urlpatterns = [
    path("bench/values/<uuid:container_id>/sessions/", sessions_values, name="bench-sessions-values"),
    *deepsight_urlpatterns,
]
