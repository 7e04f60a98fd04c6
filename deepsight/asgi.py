"""ASGI entry point: deepsight is served by uvicorn so answers can stream token by token."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepsight.settings")

django_application = get_asgi_application()

from deepsight.middleware import RequestBodyLimitASGI  # noqa: E402  (needs the settings above)

# Django reads a whole body before any middleware runs: the limit is enforced while it arrives.
application = RequestBodyLimitASGI(django_application)
