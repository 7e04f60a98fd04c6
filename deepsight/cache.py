"""The Redis cache backend, with one connection pool per process instead of one per request.

Django keeps cache objects per async context, and `RedisCache` builds its client (and so its
connection pool) per cache object: under ASGI every request opened a new Redis connection, with
its handshake, for the throttles' first read. redis-py's pools are thread-safe, so here every
cache object of a process with the same location and options shares one client.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_clients: dict[tuple[str, ...], RedisCacheClient] = {}
_clients_lock = threading.Lock()


class SharedPoolRedisCache(RedisCache):
    """`django.core.cache.backends.redis.RedisCache` whose client is shared across the process."""

    @property
    def _cache(self) -> Any:
        key = (*self._servers, repr(sorted(self._options.items())))
        client = _clients.get(key)
        if client is None:
            with _clients_lock:
                client = _clients.setdefault(key, self._class(self._servers, **self._options))
        return client
