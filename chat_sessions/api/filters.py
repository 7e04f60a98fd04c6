"""Filters for the session list: status, pin, tag, title search and date ranges."""

from __future__ import annotations

import django_filters
from django.db.models import Exists, OuterRef, QuerySet

from chat_sessions.models import ChatSession, ChatSessionTag, SessionStatus


class ChatSessionFilter(django_filters.FilterSet):
    """With no `status`, the list shows active sessions: the tabs."""

    status = django_filters.ChoiceFilter(choices=SessionStatus.choices, method="filter_status")
    pinned = django_filters.BooleanFilter()
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
