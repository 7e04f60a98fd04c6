"""ASGI entry point: deepsight is served by uvicorn so answers can stream token by token."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepsight.settings")

django_application = get_asgi_application()

from django.urls import get_resolver  # noqa: E402  (needs the settings above)

from deepsight.middleware import RequestBodyLimitASGI  # noqa: E402

# Django imports the URLconf (and every view module behind it) on the first request; done here,
# a new process's first users do not wait for it.
get_resolver().url_patterns  # noqa: B018

# Django reads a whole body before any middleware runs: the limit is enforced while it arrives.
application = RequestBodyLimitASGI(django_application)
