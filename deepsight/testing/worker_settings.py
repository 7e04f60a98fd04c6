"""Settings for a real Celery worker or beat started by a test, sharing the test's database.

The test suite runs tasks eagerly (`settings_test`); a worker started as a subprocess must not. The
test passes, through the environment:

- `DEEPSIGHT_WORKER_DB_NAME`: the test database (the SQLite file, or `test_<name>` on PostgreSQL);
- `DEEPSIGHT_WORKER_BROKER_URL` and `DEEPSIGHT_WORKER_BROKER_OPTIONS` (JSON): the broker the test
  publishes to, e.g. a filesystem broker in a temporary folder, or Redis with a key prefix of its own;
- `DEEPSIGHT_WORKER_HOUSEKEEPING_SECONDS`: how often beat sends the housekeeping task.
"""

import json
import os
from datetime import timedelta

from deepsight.settings_test import *  # noqa: F403
from deepsight.settings_test import CELERY_BEAT_SCHEDULE, DATABASES

CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_EAGER_PROPAGATES = False
# A pool process killed by a test is reported after this long instead of the default 10 s.
CELERY_WORKER_LOST_WAIT = 2.0

if os.environ.get("DEEPSIGHT_WORKER_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["DEEPSIGHT_WORKER_DB_NAME"]
if os.environ.get("DEEPSIGHT_WORKER_BROKER_URL"):
    CELERY_BROKER_URL = os.environ["DEEPSIGHT_WORKER_BROKER_URL"]
    CELERY_BROKER_TRANSPORT_OPTIONS = json.loads(os.environ.get("DEEPSIGHT_WORKER_BROKER_OPTIONS", "{}"))
if os.environ.get("DEEPSIGHT_WORKER_HOUSEKEEPING_SECONDS"):
    CELERY_BEAT_SCHEDULE = {
        "chat-sessions-housekeeping": {
            **CELERY_BEAT_SCHEDULE["chat-sessions-housekeeping"],
            "schedule": timedelta(seconds=float(os.environ["DEEPSIGHT_WORKER_HOUSEKEEPING_SECONDS"])),
            "options": {},
        }
    }
