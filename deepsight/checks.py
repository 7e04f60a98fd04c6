"""Deployment checks for the security middleware, which accept subclasses of Django's own.

Django's `security.W001` to `W003` look for the exact dotted paths of its security, clickjacking and
CSRF middleware; `MIDDLEWARE` names subclasses that run on the event loop
(`deepsight/async_middleware.py`), so those three are silenced and checked here instead.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register
from django.utils.module_loading import import_string

REQUIRED = (
    ("django.middleware.security.SecurityMiddleware", "deepsight.W001", "HSTS, SSL redirect and nosniff"),
    ("django.middleware.clickjacking.XFrameOptionsMiddleware", "deepsight.W002", "the X-Frame-Options header"),
    ("django.middleware.csrf.CsrfViewMiddleware", "deepsight.W003", "CSRF protection"),
)


@register(Tags.security, deploy=True)
def security_middleware_check(app_configs, **kwargs) -> list[Warning]:
    installed = [import_string(path) for path in settings.MIDDLEWARE]
    warnings = []
    for path, check_id, what in REQUIRED:
        required = import_string(path)
        if not any(isinstance(cls, type) and issubclass(cls, required) for cls in installed):
            warnings.append(Warning(f"Neither {path} nor a subclass of it is in MIDDLEWARE: no {what}.", id=check_id))
    return warnings
