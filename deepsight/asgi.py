"""ASGI entry point: deepsight is served by uvicorn so answers can stream token by token."""

import gc
import os

from chat_sessions.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepsight.settings")

django_application = get_asgi_application()

from django.conf import settings  # noqa: E402  (needs the settings above)
from django.urls import get_resolver  # noqa: E402

from deepsight.middleware import RequestBodyLimitASGI  # noqa: E402
from deepsight.request_threads import RequestThreads  # noqa: E402

# Django imports the URLconf (and every view module behind it) on the first request; done here,
# a new process's first users do not wait for it.
get_resolver().url_patterns  # noqa: B018

# Every open stream holds a few tasks and their coroutines, over a hundred tracked objects each:
# with Python's default thresholds a full collection ran every few seconds under load and stopped
# the event loop for up to 400 ms with 2,000 streams open (bench/, token latency p99). The heap
# built at start-up is frozen out of collections, and the young generation is collected less often.
gc.collect()
gc.freeze()
gc.set_threshold(*settings.WEB_GC_THRESHOLDS)

# Django reads a whole body before any middleware runs: the limit is enforced while it arrives.
# Each request's sync code runs on a pooled thread, not on one started for it.
application = RequestBodyLimitASGI(RequestThreads(django_application))
