"""Content negotiation for the streaming routes.

DRF must accept `Accept: text/event-stream` on them. The stream itself never goes through a
renderer; this one is only chosen for the error responses (404, 409...) that precede a stream,
which `ChatAPIMixin.finalize_response` then renders as JSON labelled `application/json`, so a
client reads them like any other API error.
"""

from __future__ import annotations

from rest_framework.renderers import JSONRenderer


class EventStreamRenderer(JSONRenderer):
    media_type = "text/event-stream"
    format = "sse"
