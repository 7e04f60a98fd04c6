"""URLs of the chat API, to include under a route that captures `container_id`, e.g.

path("api/v1/notebooks/<uuid:container_id>/chat/", include("chat_sessions.api.urls"))
"""

from django.urls import path

from chat_sessions.api.streams import message_stream_endpoint, messages_endpoint, session_stop_endpoint
from chat_sessions.api.views import ChatSessionViewSet, SessionTitleView

app_name = "chat_sessions"

session_list = ChatSessionViewSet.as_view({"get": "list", "post": "create"})
session_detail = ChatSessionViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"})

urlpatterns = [
    path("sessions/", session_list, name="session-list"),
    path("sessions/<uuid:session_id>/", session_detail, name="session-detail"),
    path("sessions/<uuid:session_id>/messages/", messages_endpoint, name="session-messages"),
    path(
        "sessions/<uuid:session_id>/messages/<int:message_id>/stream/",
        message_stream_endpoint,
        name="message-stream",
    ),
    path("sessions/<uuid:session_id>/stop/", session_stop_endpoint, name="session-stop"),
    path("sessions/<uuid:session_id>/title/", SessionTitleView.as_view(), name="session-title"),
]
