"""Settings for the benchmarks: deepsight's own, as production runs them, answering from the fake upstream.

`bench.cli` points `DATABASE_URL` and `REDIS_URL` at the bench database and Redis before this module
is imported, so the orchestrator, the uvicorn it starts and the writer processes all share them.
What differs from production, and why:

- the agent is `bench.agent.BenchRagFlowAgent`, which reads RAGFlow's agent SSE format from the
  fake upstream at `BENCH_UPSTREAM_URL`;
- throttles are set out of reach (one client sends thousands of messages a minute);
- Celery publishes to memory: each bench session's first answer queues a title task, which no
  worker here would ever consume;
- `bench/urls.py` adds the plain `values()` view the session list is compared against.
"""

import os

from deepsight.settings import *  # noqa: F403
from deepsight.settings import CHAT_SESSIONS, REST_FRAMEWORK

DEBUG = False
SECURE_SSL_REDIRECT = False
ROOT_URLCONF = "bench.urls"

REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"chat_send": "10000000/min", "chat_create": "10000000/min"},
}

CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = None

BENCH_UPSTREAM_URL = os.environ.get("BENCH_UPSTREAM_URL", "http://127.0.0.1:9")

CHAT_SESSIONS = {
    **CHAT_SESSIONS,
    "AGENT_BACKEND": "bench.agent.BenchRagFlowAgent",
    "TITLE_BACKEND": None,
    "REDIS_KEY_PREFIX": "deepsight-bench",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
