"""The Redis cache backend, with one connection pool and one client per process instead of per request.

Django keeps cache objects per async context, and `RedisCache` builds its client (and so its
connection pool) per cache object: under ASGI every request opened a new Redis connection, with
its handshake, for the throttles' first read. redis-py's pools are thread-safe, so here every
cache object of a process with the same location and options shares one client.

Django's client also builds a new `redis.Redis` for every command, and each one fills a table of
about 170 response callbacks: two of them per throttled request. A `redis.Redis` takes its
connection from the pool for each command and is safe to share between threads, so one is kept
per server.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_clients: dict[tuple[str, ...], RedisCacheClient] = {}
_clients_lock = threading.Lock()


class SharedRedisCacheClient(RedisCacheClient):
    """Django's Redis cache client, keeping one `redis.Redis` per server instead of one per command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._redis_clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._redis_clients.get(index)
        if client is None:
            if index not in self._pools:  # as Django's `_get_connection_pool`, for the index picked above
                self._pools[index] = self._pool_class.from_url(self._servers[index], **self._pool_options)
            client = self._redis_clients.setdefault(index, self._client(connection_pool=self._pools[index]))
        return client


class SharedPoolRedisCache(RedisCache):
    """`django.core.cache.backends.redis.RedisCache` whose client is shared across the process."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedRedisCacheClient

    @property
    def _cache(self) -> Any:
        key = (*self._servers, repr(sorted(self._options.items())))
        client = _clients.get(key)
        if client is None:
            with _clients_lock:
                client = _clients.setdefault(key, self._class(self._servers, **self._options))
        return client
