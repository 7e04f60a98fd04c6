"""Filters for the session list: status, pin, tag, title search and date ranges."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, QuerySet
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

from chat_sessions.models import ChatSession, ChatSessionTag, SessionStatus


class StrictBooleanField(forms.NullBooleanField):
    """`true`/`false` (or `1`/`0`); anything else is an error, not silently "no filter"."""

    widget = forms.TextInput

    def to_python(self, value):
        if value in (None, ""):
            return None
        lowered = str(value).strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise forms.ValidationError("Use true or false.", code="invalid")

    def validate(self, value) -> None:
        pass


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class UTCIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, in UTC before it reaches the database.

    ISO 8601 (and Python) allow UTC offsets up to 23:59, PostgreSQL only to 15:59; and a moment
    that falls off the calendar in UTC is an error the client should see, not a 500.
    """

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None or moment.tzinfo is None:
            return moment
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("This moment is outside the calendar in UTC.", code="invalid") from None


class UTCIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCIsoDateTimeField


class ChatSessionFilter(django_filters.FilterSet):
    """With no `status`, the list shows active sessions: the tabs."""

    status = django_filters.ChoiceFilter(choices=SessionStatus.choices, method="filter_status")
    pinned = StrictBooleanFilter()
    tag = django_filters.CharFilter(method="filter_tag", max_length=50)
    q = django_filters.CharFilter(field_name="title", lookup_expr="icontains", max_length=200)
    last_activity_after = UTCIsoDateTimeFilter(field_name="last_activity", lookup_expr="gte")
    last_activity_before = UTCIsoDateTimeFilter(field_name="last_activity", lookup_expr="lt")
    created_after = UTCIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UTCIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = ChatSession
        fields: list[str] = []

    @property
    def qs(self) -> QuerySet[ChatSession]:
        queryset = super().qs
        if not self.form.cleaned_data.get("status"):
            queryset = self.unfiltered(queryset)
        return queryset

    @staticmethod
    def unfiltered(queryset: QuerySet[ChatSession]) -> QuerySet[ChatSession]:
        """The list when no filter is asked for: the active sessions."""
        return queryset.filter(status=SessionStatus.ACTIVE)

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(status=value) if value else queryset

    def filter_tag(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # EXISTS rather than a join, so a session with the tag from two sources is listed once.
        return queryset.filter(Exists(ChatSessionTag.objects.filter(session=OuterRef("pk"), name=value)))


class SessionFilterBackend(DjangoFilterBackend):
    """django-filter for the session list, skipped when the request names no filter at all.

    That is the list the tabs load every time; building and validating the filter form for it
    was a tenth of the request.
    """

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            repeated = sorted(
                name
                for name, values in request.query_params.lists()
                if len(values) > 1 and name in filterset_class.base_filters
            )
            if repeated:
                # A form would keep the last and ignore the rest: `?tag=a&tag=b` listed the `b`s alone.
                raise ValidationError({name: ["Give this filter once."] for name in repeated})
        unfiltered = getattr(filterset_class, "unfiltered", None)
        if unfiltered is not None and self.names_no_filter(request, filterset_class):
            return unfiltered(queryset)
        return super().filter_queryset(request, queryset, view)

    @staticmethod
    def names_no_filter(request, filterset_class) -> bool:
        return request.query_params.keys().isdisjoint(filterset_class.base_filters)
