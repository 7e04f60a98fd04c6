"""DRF views for notebooks and their sources: translate HTTP, call services and selectors."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, status, viewsets
from rest_framework import serializers as drf_serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from chat_sessions.api.forms import WriteFormsMixin
from chat_sessions.api.pagination import CheckedPositionMixin, StrictPageSizeMixin
from chat_sessions.api.parsers import JSONParser
from notebooks import selectors, services
from notebooks.api.serializers import (
    NotebookSerializer,
    NotebookWriteSerializer,
    SourceCreateSerializer,
    SourceSerializer,
)
from notebooks.models import Notebook, Source
from notebooks.uploads import UploadRejected


class ApiRootView(APIView):
    """Where the API starts: links to the notebooks, the schema and its docs (the browsable API's home)."""

    @extend_schema(
        responses=inline_serializer(
            "ApiRoot",
            {name: drf_serializers.URLField() for name in ("notebooks", "schema", "docs")},
        )
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "notebooks": reverse("notebooks_api:notebook-list", request=request),
                "schema": reverse("schema", request=request),
                "docs": reverse("swagger-ui", request=request),
            }
        )


class NotebookPagination(CheckedPositionMixin, StrictPageSizeMixin, CursorPagination):
    position_model = Notebook
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 100
    ordering = ("-updated_at", "-id")


class SourcePagination(NotebookPagination):
    position_model = Source
    ordering = ("-created_at", "-id")


class NotebookViewSet(WriteFormsMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """The user's notebooks."""

    serializer_class = NotebookSerializer
    write_serializer_classes = {"POST": NotebookWriteSerializer, "PATCH": NotebookWriteSerializer}
    pagination_class = NotebookPagination
    lookup_url_kwarg = "notebook_id"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.notebook_list(user=self.request.user)

    def notebook_or_404(self) -> Notebook:
        notebook = selectors.notebook_get(user=self.request.user, notebook_id=self.kwargs["notebook_id"])
        if notebook is None:
            raise NotFound("No such notebook.")
        return notebook

    @extend_schema(request=NotebookWriteSerializer, responses={201: NotebookSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = NotebookWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        notebook = services.notebook_create(owner=request.user, **serializer.validated_data)
        data = NotebookSerializer(notebook, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(NotebookSerializer(self.notebook_or_404(), context=self.get_serializer_context()).data)

    @extend_schema(request=NotebookWriteSerializer, responses={200: NotebookSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        notebook = self.notebook_or_404()
        serializer = NotebookWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        notebook = services.notebook_update(notebook=notebook, **serializer.validated_data)
        return Response(NotebookSerializer(notebook, context=self.get_serializer_context()).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.notebook_delete(notebook=self.notebook_or_404())
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourceViewSet(WriteFormsMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """A notebook's sources: paste text (JSON) or upload a file (multipart)."""

    serializer_class = SourceSerializer
    write_serializer_classes = {"POST": SourceCreateSerializer}
    pagination_class = SourcePagination
    parser_classes = (JSONParser, MultiPartParser, FormParser)
    lookup_url_kwarg = "source_id"
    notebook: Notebook

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        notebook = selectors.notebook_get(user=request.user, notebook_id=kwargs["notebook_id"])
        if notebook is None:
            raise NotFound("No such notebook.")
        self.notebook = notebook

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no notebook
            return Source.objects.none()
        return selectors.source_list(notebook=self.notebook)

    def source_or_404(self):
        source = selectors.source_get(notebook=self.notebook, source_id=self.kwargs["source_id"])
        if source is None:
            raise NotFound("No such source.")
        return source

    @extend_schema(request=SourceCreateSerializer, responses={201: SourceSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = SourceCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("file"):
            try:
                source = services.source_create_file(
                    notebook=self.notebook, upload=data["file"], title=data.get("title", "")
                )
            except UploadRejected as exc:
                raise ValidationError({"file": [str(exc)]}) from exc
        else:
            source = services.source_create_text(
                notebook=self.notebook, title=data.get("title", ""), content=data["content"]
            )
        return Response(SourceSerializer(source).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(SourceSerializer(self.source_or_404()).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.source_delete(source=self.source_or_404())
        return Response(status=status.HTTP_204_NO_CONTENT)
