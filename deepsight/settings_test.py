"""Settings for the test suite: the real settings, made fast and deterministic.

The database and Redis still come from the environment, so the same suite runs on SQLite and,
with `DATABASE_URL` and `REDIS_URL`, on PostgreSQL and Redis.
"""

import os
from pathlib import Path

from deepsight.settings import *  # noqa: F403
from deepsight.settings import CHAT_SESSIONS, DATABASES, REST_FRAMEWORK, VAR_DIR

# One test database and one Redis key space per test run, so parallel runs never collide.
RUN_ID = os.environ.get("DEEPSIGHT_TEST_RUN_ID", str(os.getpid()))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{RUN_ID}.sqlite3")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
LOCAL_AGENT_TOKEN_DELAY = 0.0
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"chat_send": "10000/min", "chat_create": "10000/min"},
}
CHAT_SESSIONS = {
    **CHAT_SESSIONS,
    "FLUSH_INTERVAL": 0.2,
    "STREAM_RETENTION": timedelta(seconds=30),
}

# WhiteNoise warns when STATIC_ROOT is missing; tests never collect static files.
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
