"""Which serializer the browsable API's HTML form shows for a write method.

These views read with one serializer and write with another, each named in its handler. DRF's
browsable API builds its form from `get_serializer()` under the form's method, so it got the
read serializer, every field read-only, and showed a form with no fields.
"""

from __future__ import annotations

from typing import Any


class WriteFormsMixin:
    """`get_serializer_class()` answers with `write_serializer_classes[method]` for a write method."""

    #: The input serializer of each write method, e.g. `{"POST": ChatSessionCreateSerializer}`.
    write_serializer_classes: dict[str, type] = {}

    def get_serializer_class(self) -> Any:
        return self.write_serializer_classes.get(self.request.method) or super().get_serializer_class()
