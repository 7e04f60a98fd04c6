"""A blocking SSE client for tests: reads a `text/event-stream` response event by event as it arrives."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class SSEEvent:
    id: int | None
    data: dict[str, Any]
    received_at: float = field(default_factory=time.monotonic)

    @property
    def type(self) -> str:
        return self.data.get("type", "")


class SSEResponse:
    """An open streaming response; iterate it for events (pings are skipped but counted)."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self.connection = connection
        self.response = response
        self.status = response.status
        self.headers = response.headers
        self.pings = 0

    def __iter__(self) -> Iterator[SSEEvent]:
        event_id: int | None = None
        data_lines: list[str] = []
        while True:
            raw = self.response.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            if line == "":
                if data_lines:
                    yield SSEEvent(event_id, json.loads("\n".join(data_lines)))
                event_id, data_lines = None, []
            elif line.startswith(":"):
                self.pings += 1
            elif line.startswith("id:"):
                event_id = int(line[3:].strip())
            elif line.startswith("data:"):
                data_lines.append(line[5:].lstrip())

    def body(self) -> bytes:
        return self.response.read()

    def close(self) -> None:
        """Drop the connection, as a closed browser tab does."""
        self.connection.close()


def sse_request(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> SSEResponse:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    body = None if json_body is None else json.dumps(json_body)
    all_headers = {"Accept": "text/event-stream", **(headers or {})}
    if body is not None:
        all_headers["Content-Type"] = "application/json"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    connection.request(method, path, body=body, headers=all_headers)
    return SSEResponse(connection, connection.getresponse())
