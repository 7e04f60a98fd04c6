"""Filters for the session list: status, pin, tag, title search and date ranges."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, QuerySet

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


class ChatSessionFilter(django_filters.FilterSet):
    """With no `status`, the list shows active sessions: the tabs."""

    status = django_filters.ChoiceFilter(choices=SessionStatus.choices, method="filter_status")
    pinned = StrictBooleanFilter()
    tag = django_filters.CharFilter(method="filter_tag", max_length=50)
    q = django_filters.CharFilter(field_name="title", lookup_expr="icontains", max_length=200)
    last_activity_after = django_filters.IsoDateTimeFilter(field_name="last_activity", lookup_expr="gte")
    last_activity_before = django_filters.IsoDateTimeFilter(field_name="last_activity", lookup_expr="lt")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = ChatSession
        fields: list[str] = []

    @property
    def qs(self) -> QuerySet[ChatSession]:
        queryset = super().qs
        if not self.form.cleaned_data.get("status"):
            queryset = queryset.filter(status=SessionStatus.ACTIVE)
        return queryset

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(status=value) if value else queryset

    def filter_tag(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # EXISTS rather than a join, so a session with the tag from two sources is listed once.
        return queryset.filter(Exists(ChatSessionTag.objects.filter(session=OuterRef("pk"), name=value)))
