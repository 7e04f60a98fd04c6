"""Dates as the API writes them: DRF's `DateTimeField`, in the current time zone, read once.

The session list and the messages (in lists, and in the event stream's `start` and `done`) write
their dates through here, so one response never mixes `Z` with the host's `TIME_ZONE` offset.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings


def datetime_writer() -> Callable[[datetime], str]:
    """DRF's `DateTimeField().to_representation`, with the current time zone looked up once.

    DRF looks the zone up for every date it writes, five times per session: that was most of a
    list page's serializing. Any other `DATETIME_FORMAT` than ISO 8601 goes through DRF itself.
    """
    if api_settings.DATETIME_FORMAT is None or api_settings.DATETIME_FORMAT.lower() != ISO_8601 or not settings.USE_TZ:
        return serializers.DateTimeField().to_representation
    zone = timezone.get_current_timezone()

    def write(value: datetime) -> str:
        text = (value.astimezone(zone) if timezone.is_aware(value) else timezone.make_aware(value, zone)).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return write
