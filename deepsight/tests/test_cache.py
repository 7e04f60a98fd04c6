"""The Redis cache shares one connection pool per process, whatever context asks for it."""

from __future__ import annotations

import threading

import pytest
import redis
from django.conf import settings
from django.core.cache import caches

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (CI runs it with Redis)")


def _cache_in_new_thread():
    found = {}
    thread = threading.Thread(target=lambda: found.setdefault("cache", caches["default"]))
    thread.start()
    thread.join()
    return found["cache"]


def _connections_received() -> int:
    """Connections the Redis server has accepted since it started (this probe's own included)."""
    with redis.Redis.from_url(settings.REDIS_URL) as probe:
        return probe.info("stats")["total_connections_received"]


def test_cache_objects_of_different_threads_share_one_client():
    here, there = caches["default"], _cache_in_new_thread()
    assert here is not there  # Django makes one per thread (and per async context)

    here.set("shared-pool-check", "value")

    assert there.get("shared-pool-check") == "value"
    assert here._cache is there._cache


def test_one_request_after_another_opens_no_new_redis_connection():
    caches["default"].set("shared-pool-check", "value")  # the pool holds a connection from here on
    before = _connections_received()

    for _ in range(20):  # as twenty requests, each in its own context, one after another
        assert _cache_in_new_thread().get("shared-pool-check") == "value"

    # Django's stock RedisCache opens one per context (20); the shared pool reuses its idle one.
    # Counted by the server: the two probes' own connections, and slack for one reconnect.
    assert _connections_received() - before <= 3


def test_commands_from_many_threads_share_one_redis_client_and_each_gets_its_own_answer():
    cache = caches["default"]
    client = cache._cache.get_client(write=True)
    assert cache._cache.get_client() is client  # one server: reads and writes, one client

    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            for round_number in range(50):
                key = f"shared-client-{number}-{round_number}"
                cache.set(key, number * 1000 + round_number)
                assert cache.get(key) == number * 1000 + round_number
        except BaseException as exc:  # reported below, from the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert _cache_in_new_thread()._cache.get_client() is client
