"""Rate limits for opening sessions and sending messages: DRF's `ScopedRateThrottle`, made atomic.

DRF's throttle reads a user's request history from the cache, decides, then writes it back: two
requests at once read the same history, both pass, and the second write drops the first's entry,
so concurrent requests get past the rate (and the history under-counts after them). Here the same
sliding window is decided in one step:

- on a Redis cache (`django.core.cache.backends.redis.RedisCache` and its subclasses) by a script
  that trims the window, counts, and records the request in one round trip, atomic across every
  web process sharing that Redis (it also replaces DRF's two round trips and pickled list);
- on any other cache, by DRF's own code under a process-wide lock: exact for the in-process
  `LocMemCache` of the embedded mode, and no worse than DRF's for a shared cache.

Rates, scopes, cache keys and `Retry-After` are DRF's (`DEFAULT_THROTTLE_RATES`, `throttle_scope`).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache import cache as default_cache
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

# KEYS[1]: the window's sorted set (member: one request, score: its time).
# ARGV: now, duration (seconds), allowed requests, this request's member.
# Returns an empty list when the request is allowed (and recorded); else the window's times,
# newest first, as DRF keeps its history, for `wait()`.
_WINDOW_SCRIPT = """
local now = tonumber(ARGV[1])
local duration = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - duration)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '-inf', 'WITHSCORES')
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(duration))
return {}
"""

#: The scopes the chat views throttle by; each needs a rate in `DEFAULT_THROTTLE_RATES` (checked
#: at start-up: `chat_sessions.E004`).
CHAT_SCOPES = ("chat_create", "chat_send")

_fallback_lock = threading.Lock()


class AtomicRateThrottle(SimpleRateThrottle):
    """`SimpleRateThrottle` whose check and record cannot interleave with another request's."""

    #: The Redis key holds a sorted set, not DRF's pickled list: a key of its own, so the two
    #: never meet (during a rolling deploy, say).
    redis_key_suffix = ":window"

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        backend = caches[DEFAULT_CACHE_ALIAS] if self.cache is default_cache else self.cache
        if not isinstance(backend, RedisCache):
            with _fallback_lock:
                return super().allow_request(request, view)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        # `_cache` is Django's Redis client wrapper; `get_client` hands out its `redis.Redis`.
        client = backend._cache.get_client(self.key, write=True)
        window = client.register_script(_WINDOW_SCRIPT)(
            keys=[backend.make_and_validate_key(self.key + self.redis_key_suffix)],
            args=[repr(self.now), self.duration, self.num_requests, uuid.uuid4().hex],
        )
        # WITHSCORES pairs: member, score, member, score...
        self.history = [float(score) for score in window[1::2]]
        return self.throttle_failure() if window else True


class ChatRateThrottle(ScopedRateThrottle, AtomicRateThrottle):
    """The chat views' throttle: the rate of the view's `throttle_scope`, decided atomically."""
