"""The chat throttles (chat_sessions/api/throttling.py): DRF's sliding window, never passed by concurrency.

Each test runs on the configured cache: the in-process `LocMemCache` without `REDIS_URL`, Redis
with it (the script path), so CI proves both.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
import time_machine
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from chat_sessions.api.throttling import ChatRateThrottle


@pytest.fixture
def rates(monkeypatch):
    monkeypatch.setattr(ChatRateThrottle, "THROTTLE_RATES", {"chat_send": "5/min", "chat_create": "2/min"})


def request_of(user_pk: int) -> SimpleNamespace:
    return SimpleNamespace(user=SimpleNamespace(pk=user_pk, is_authenticated=True), META={})


def view_of(scope: str) -> SimpleNamespace:
    return SimpleNamespace(throttle_scope=scope)


def allowed(user_pk: int, scope: str = "chat_send") -> tuple[bool, ChatRateThrottle]:
    throttle = ChatRateThrottle()
    return throttle.allow_request(request_of(user_pk), view_of(scope)), throttle


def test_requests_at_once_never_get_past_the_rate(rates):
    start = threading.Barrier(24)
    decisions: list[bool] = []

    def send() -> None:
        start.wait()
        decisions.append(allowed(1)[0])

    threads = [threading.Thread(target=send) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert decisions.count(True) == 5
    assert allowed(1)[0] is False  # the five were all recorded: the window is full


def test_the_window_slides_and_the_refusal_says_when_to_retry(rates):
    with time_machine.travel("2026-12-03 10:00:00Z", tick=False) as clock:
        first = allowed(7, "chat_create")[0]
        clock.shift(30)
        second = allowed(7, "chat_create")[0]
        clock.shift(10)
        refused, throttle = allowed(7, "chat_create")
        clock.shift(19)
        still_refused = allowed(7, "chat_create")[0]
        clock.shift(2)  # the first request is now 61 s old, the second 31 s: one place is free
        after_a_minute = [allowed(7, "chat_create")[0] for _ in range(2)]

    assert (first, second) == (True, True)
    assert refused is False
    assert throttle.wait() == pytest.approx(20)  # when the oldest request leaves the window
    assert still_refused is False
    assert after_a_minute == [True, False]


def test_each_user_and_scope_has_its_own_window(rates):
    assert [allowed(1, "chat_create")[0] for _ in range(3)] == [True, True, False]

    assert allowed(2, "chat_create")[0] is True
    assert allowed(1, "chat_send")[0] is True


def test_a_view_without_a_scope_or_a_rate_is_not_limited(rates, monkeypatch):
    throttle = ChatRateThrottle()
    assert all(throttle.allow_request(request_of(1), SimpleNamespace()) for _ in range(10))

    monkeypatch.setattr(ChatRateThrottle, "THROTTLE_RATES", {"chat_send": None})
    assert all(allowed(1)[0] for _ in range(10))


def test_on_redis_the_window_is_one_sorted_set_that_expires(rates, settings):
    if not isinstance(caches["default"], RedisCache):
        pytest.skip("needs REDIS_URL: the Redis script path (CI runs it with PostgreSQL and Redis)")
    import redis

    allowed(3, "chat_create")
    client = redis.Redis.from_url(settings.REDIS_URL)
    (key,) = client.keys("*throttle_chat_create_3:window")

    assert client.type(key) == b"zset"
    assert client.zcard(key) == 1
    assert 0 < client.ttl(key) <= 60
