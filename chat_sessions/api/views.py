"""DRF views for sessions and their message history; they translate HTTP and call services.

Every view looks its objects up among the containers the user may use (the container itself, or
the sessions scoped to those containers), so a foreign or unknown container (and anything inside
it) is a 404 for every method.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from chat_sessions import selectors, services
from chat_sessions.access import container_model
from chat_sessions.agents.registry import agent_backend
from chat_sessions.api.filters import ChatSessionFilter, SessionFilterBackend
from chat_sessions.api.forms import WriteFormsMixin
from chat_sessions.api.pagination import MessageCursorPagination, SessionCursorPagination
from chat_sessions.api.parsers import parsers_safe
from chat_sessions.api.renderers import EventStreamRenderer
from chat_sessions.api.serializers import (
    ChatSessionCreateSerializer,
    ChatSessionDetailSerializer,
    ChatSessionSerializer,
    ChatSessionUpdateSerializer,
    MessageSendSerializer,
    MessageSerializer,
    TurnSerializer,
)
from chat_sessions.api.throttling import ChatRateThrottle
from chat_sessions.exceptions import ChatError, NothingToTitle
from chat_sessions.models import ChatSession, SessionChatMessage
from chat_sessions.session_list_sql import SessionListRead

RECENT_MESSAGES = 50

SESSION_ENVELOPE = inline_serializer("SessionEnvelope", {"session": ChatSessionSerializer()})
# One Server-Sent Event as a client's parser sees it (OpenAPI 3.0: the schema describes each event).
STREAM_EVENT = OpenApiResponse(
    response=inline_serializer(
        "StreamEvent",
        {
            "id": serializers.CharField(help_text="The event's number (1, 2, 3...); resume with `Last-Event-ID`."),
            "data": serializers.CharField(
                help_text="One JSON object whose `type` is start, token, reasoning, reference, title, done or error."
            ),
        },
    ),
    description="`text/event-stream`: start, token, reasoning, reference, done or error events.",
)
SESSION_DETAIL_ENVELOPE = inline_serializer("SessionDetailEnvelope", {"session": ChatSessionDetailSerializer()})


def _container_name() -> str:
    """What the host calls its containers (the model's verbose name): "notebook" in deepsight."""
    return str(container_model()._meta.verbose_name)


def _no_such_container() -> str:
    return f"No such {_container_name()}."


def _flag(request: Request, name: str) -> bool:
    """A boolean query parameter; a value that is not one is a 400, never quietly false."""
    raw = request.query_params.get(name)
    if raw is None:
        return False
    try:
        return serializers.BooleanField().to_internal_value(raw)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({name: exc.detail}) from None


class ChatAPIMixin:
    """Container scoping, session lookup and chat errors as clean 4xx responses."""

    container: Any = None

    def get_renderers(self):
        return [*super().get_renderers(), EventStreamRenderer()]

    def get_parsers(self):
        return parsers_safe(super().get_parsers())

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(getattr(response, "accepted_renderer", None), EventStreamRenderer):
            # A stream never goes through a renderer: what one renders (an error before the
            # stream, a list asked for by an EventSource-minded client) is JSON, and says so.
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSONRenderer.media_type
        return response

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if "session_id" in kwargs or getattr(self, "action", None) == "list":
            # Session lookups and lists are scoped to the containers this user may chat in: the
            # container is not read first (the list checks it only when its page is empty).
            return
        self.container = selectors.container_for_user(user=request.user, container_id=kwargs["container_id"])
        if self.container is None:
            raise NotFound(_no_such_container())

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ChatError):
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
            return Response({"detail": exc.message, "code": exc.code}, status=exc.status_code, headers=headers)
        return super().handle_exception(exc)

    def session_or_404(self) -> ChatSession:
        session = selectors.session_for_user(
            user=self.request.user,
            container_id=self.kwargs["container_id"],
            session_id=self.kwargs["session_id"],
        )
        if session is None:
            raise NotFound("No such session.")
        return session


class ChatSessionViewSet(
    ChatAPIMixin,
    WriteFormsMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """The sessions (tabs) of one notebook: list, open, read, edit, close or delete."""

    serializer_class = ChatSessionSerializer
    write_serializer_classes = {"POST": ChatSessionCreateSerializer, "PATCH": ChatSessionUpdateSerializer}
    pagination_class = SessionCursorPagination
    filterset_class = ChatSessionFilter
    filter_backends = [SessionFilterBackend]
    lookup_url_kwarg = "session_id"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[ChatSession]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no container
            return ChatSession.objects.none()
        return selectors.sessions_for_user(user=self.request.user, container_id=self.kwargs["container_id"])

    def get_throttles(self):
        if self.action == "create":
            self.throttle_scope = "chat_create"
            return [ChatRateThrottle()]
        return super().get_throttles()

    @extend_schema(responses={200: ChatSessionSerializer(many=True)})
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            sessions = self.listed_sessions()
            page = self.paginate_queryset(sessions)
            if page is None:  # a subclass without pagination lists every session it may see
                page = list(sessions)
        except APIException:
            self._container_or_404()  # a notebook the user may not see is a 404 before any 400
            raise
        if not page:
            self._container_or_404()
        selectors.sessions_tags_load(sessions=page)
        data = self.get_serializer(page, many=True).data
        if self.paginator is None:
            return Response({"sessions": data})
        return self.get_paginated_response(data)

    def listed_sessions(self) -> QuerySet[ChatSession] | SessionListRead:
        """What the list pages through: the tabs' fixed-shape read when the request names no filter.

        Only while this class's own queryset, filters and ordering are in use: a subclass that
        changes any of them is read through the ORM, with its changes.
        """
        own = (
            type(self).get_queryset is ChatSessionViewSet.get_queryset
            and type(self).filter_queryset is ChatSessionViewSet.filter_queryset
            and list(self.filter_backends) == [SessionFilterBackend]
            and self.filterset_class is ChatSessionFilter
            and tuple(getattr(self.paginator, "ordering", ())) == SessionCursorPagination.ordering
        )
        if own and SessionFilterBackend.names_no_filter(self.request, ChatSessionFilter):
            return selectors.session_tabs_for_user(user=self.request.user, container_id=self.kwargs["container_id"])
        return selectors.sessions_with_tags(self.filter_queryset(self.get_queryset()))

    def _container_or_404(self) -> None:
        if selectors.container_for_user(user=self.request.user, container_id=self.kwargs["container_id"]) is None:
            raise NotFound(_no_such_container())

    @extend_schema(request=ChatSessionCreateSerializer, responses={201: SESSION_ENVELOPE})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ChatSessionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        document_ids = serializer.validated_data.get("rag_document_ids")
        if document_ids:
            unknown = agent_backend().document_ids_unknown(container=self.container, document_ids=document_ids)
            if unknown:
                shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
                raise ValidationError({"rag_document_ids": [f"No such document in this {_container_name()}: {shown}."]})
        session = services.session_create(container=self.container, user=request.user, **serializer.validated_data)
        return Response({"session": self._shown(session.pk)}, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: SESSION_DETAIL_ENVELOPE})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        session = self.session_or_404()
        selectors.sessions_tags_load(sessions=[session])
        recent = list(selectors.messages_for_session(session=session).order_by("-message_order")[:RECENT_MESSAGES])
        session.recent_messages = recent[::-1]
        session.has_older_messages = bool(recent) and recent[-1].message_order > 1
        session.older_messages = None
        if session.has_older_messages:
            messages_url = reverse("chat_sessions:session-messages", kwargs=self.kwargs, request=request)
            session.older_messages = MessageCursorPagination().older_link(
                base_url=messages_url, before_order=recent[-1].message_order
            )
        return Response({"session": ChatSessionDetailSerializer(session).data})

    @extend_schema(request=ChatSessionUpdateSerializer, responses={200: SESSION_ENVELOPE})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        session = self.session_or_404()
        serializer = ChatSessionUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.session_update(session=session, **serializer.validated_data)
        return Response({"session": self._shown(session.pk)})

    def _shown(self, session_id: Any) -> dict[str, Any]:
        """A session as the API shows it, read again after a write."""
        session = selectors.sessions_with_tags(self.get_queryset()).get(pk=session_id)
        selectors.sessions_tags_load(sessions=[session])
        return ChatSessionSerializer(session).data

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "permanent",
                OpenApiTypes.BOOL,
                description="Delete the session and its messages instead of closing it.",
            )
        ],
        responses={204: None},
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        session = self.session_or_404()
        if _flag(request, "permanent"):
            services.session_delete(session=session)
        else:
            services.session_close(session=session)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MessagesView(ChatAPIMixin, WriteFormsMixin, ListAPIView):
    """A session's messages in order (GET, cursor-paginated), and sending one (POST).

    POST is served by `chat_sessions.api.streams.messages_endpoint`, an async view that runs this
    class for authentication, validation and the turn's writes, then streams the answer.
    """

    serializer_class = MessageSerializer
    write_serializer_classes = {"POST": MessageSendSerializer}
    pagination_class = MessageCursorPagination
    filter_backends: list = []

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return SessionChatMessage.objects.none()
        return selectors.messages_for_session(session=self.session_or_404())

    def get_throttles(self):
        if self.request.method == "POST":
            self.throttle_scope = "chat_send"
            return [ChatRateThrottle()]
        return super().get_throttles()

    @extend_schema(
        request=MessageSendSerializer,
        parameters=[
            OpenApiParameter(
                "Accept",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="`text/event-stream` (default) streams the answer; `application/json` waits for it.",
            )
        ],
        responses={
            (200, "text/event-stream"): STREAM_EVENT,
            (201, "application/json"): TurnSerializer,
            409: OpenApiResponse(
                description="A generation is already running, the session is archived, or the client_message_id "
                "was already used for a different message."
            ),
            429: OpenApiResponse(description="Too many generations at once for this user."),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        from chat_sessions.streaming.turns import turn_prepare

        try:
            serializer = MessageSendSerializer(data=request.data)
            if not serializer.is_valid():
                raise serializers.ValidationError(serializer.errors)
        except APIException:
            # A body that cannot be read (400, 415) or is invalid (400): an unknown or foreign
            # session is a 404 first, so the answer says nothing about someone else's session.
            self.session_or_404()
            raise
        # The session is looked up by the turn's own statement (one round trip on PostgreSQL).
        prepared = turn_prepare(
            user=request.user,
            container_id=self.kwargs["container_id"],
            session_id=self.kwargs["session_id"],
            text=serializer.validated_data["message"],
            client_message_id=serializer.validated_data.get("client_message_id"),
        )
        if prepared is None:
            raise NotFound("No such session.")
        response = Response(status=status.HTTP_202_ACCEPTED)
        response.prepared = prepared
        return response


class MessageStreamView(ChatAPIMixin, APIView):
    """Resume the event stream of one answer (served by the async `message_stream_endpoint`)."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "Last-Event-ID",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                pattern=r"^[0-9]*$",
                description="The id of the last event received (empty: from the start); the stream continues after it.",
            )
        ],
        responses={(200, "text/event-stream"): STREAM_EVENT},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        message = selectors.message_for_session(session=self.session_or_404(), message_id=kwargs["message_id"])
        if message is None:
            raise NotFound("No such message.")
        response = Response(status=status.HTTP_202_ACCEPTED)
        response.prepared = message
        return response


class SessionStopView(ChatAPIMixin, APIView):
    """Stop the answer being generated in a session; what was written so far is kept."""

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer("StopResult", {"message": MessageSerializer()}),
            409: OpenApiResponse(description="Nothing is being generated in this session."),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        from chat_sessions.exceptions import NoGenerationRunning

        session = self.session_or_404()
        message = selectors.streaming_messages().filter(session=session).first()
        if message is None:
            raise NoGenerationRunning()
        response = Response(status=status.HTTP_202_ACCEPTED)
        response.prepared = message
        return response


class SessionTitleView(ChatAPIMixin, APIView):
    """Generate the session's title again from its first complete exchange.

    Asking is the user's latest word, so it replaces a title they set themselves too. A session
    with no complete answer yet has nothing to be named from: 409.
    """

    @extend_schema(
        request=None,
        responses={
            202: inline_serializer("TitleQueued", {"detail": serializers.CharField()}),
            409: OpenApiResponse(description="No complete answer yet to make a title from."),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not services.session_title_regenerate(session=self.session_or_404()):
            raise NothingToTitle()
        return Response({"detail": "A new title is being generated."}, status=status.HTTP_202_ACCEPTED)
