"""ASGI entry point: deepsight is served by uvicorn so answers can stream token by token."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepsight.settings")

application = get_asgi_application()
