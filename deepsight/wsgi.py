"""WSGI entry point, for tools that need one. Streaming needs ASGI: serve `deepsight.asgi`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepsight.settings")

application = get_wsgi_application()
