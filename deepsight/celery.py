"""Celery application, configured from Django settings (the `CELERY_` prefix).

With `REDIS_URL` set, Redis is the broker and result backend. With nothing set, the broker is
kombu's filesystem transport under `var/celery/`, so a worker and beat run as real processes on a
fresh machine with no server to install. Tasks are found in each installed app's `tasks.py`; the
beat schedule is `CELERY_BEAT_SCHEDULE` in settings (the README, "Background jobs").
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepsight.settings")

app = Celery("deepsight")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
