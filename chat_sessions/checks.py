"""System checks: catch a misconfigured `CHAT_SESSIONS` at start-up, not at the first chat."""

from __future__ import annotations

import inspect
from datetime import timedelta

from django.apps import apps
from django.core.checks import Error, Warning, register

from chat_sessions.conf import DEFAULTS, IMPORT_STRINGS, chat_settings


@register()
def check_chat_sessions_settings(app_configs=None, **kwargs):
    errors = []
    unknown = sorted(set(chat_settings.user_settings) - set(DEFAULTS))
    if unknown:
        errors.append(Warning(f"Unknown CHAT_SESSIONS keys: {', '.join(unknown)}.", id="chat_sessions.W001"))
    try:
        apps.get_model(chat_settings.CONTAINER_MODEL)
    except (LookupError, ValueError):
        errors.append(
            Error(
                f"CHAT_SESSIONS['CONTAINER_MODEL'] = {chat_settings.CONTAINER_MODEL!r} is not an installed model.",
                hint="Use 'app_label.ModelName', like AUTH_USER_MODEL.",
                id="chat_sessions.E001",
            )
        )
    for name in IMPORT_STRINGS:
        try:
            getattr(chat_settings, name)
        except ImportError as exc:
            errors.append(Error(f"CHAT_SESSIONS['{name}'] cannot be imported: {exc}", id="chat_sessions.E002"))
    for name in ("IDLE_TIMEOUT", "STALE_STREAM_AFTER", "STREAM_RETENTION"):
        if not isinstance(getattr(chat_settings, name), timedelta):
            errors.append(Error(f"CHAT_SESSIONS['{name}'] must be a timedelta.", id="chat_sessions.E003"))
    seconds = [name for name in SECONDS if not _is_number(getattr(chat_settings, name))]
    for name in seconds:
        errors.append(Error(f"CHAT_SESSIONS['{name}'] must be a number of seconds.", id="chat_sessions.E003"))
    if seconds:
        return errors  # the comparisons below need numbers
    errors.extend(_hook_errors())
    if chat_settings.FLUSH_INTERVAL <= 0 or chat_settings.FLUSH_INTERVAL > 1:
        errors.append(
            Warning(
                "CHAT_SESSIONS['FLUSH_INTERVAL'] should be above 0 and at most 1 second, "
                "or a crash may lose more than a second of an answer.",
                id="chat_sessions.W002",
            )
        )
    stale = getattr(chat_settings, "STALE_STREAM_AFTER", None)
    if isinstance(stale, timedelta) and stale.total_seconds() < 3 * chat_settings.HEARTBEAT_INTERVAL:
        errors.append(
            Warning(
                "CHAT_SESSIONS['STALE_STREAM_AFTER'] should be at least three HEARTBEAT_INTERVALs, or a "
                "live answer whose heartbeat is late may be marked interrupted.",
                id="chat_sessions.W003",
            )
        )
    errors.extend(_throttle_rate_errors())
    return errors


#: Settings given in seconds, compared with each other here and used as timeouts elsewhere.
SECONDS = ("FLUSH_INTERVAL", "HEARTBEAT_INTERVAL", "PING_INTERVAL", "MAX_GENERATION_SECONDS")


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _hook_errors() -> list[Error]:
    """Hooks that import but cannot work: each would be a 500 at the first request instead."""
    from chat_sessions.access import containers_owned_by
    from chat_sessions.agents.base import AgentBackend

    errors = []
    try:
        policy = chat_settings.ACCESS_POLICY
        backends = {name: getattr(chat_settings, name) for name in ("AGENT_BACKEND", "TITLE_BACKEND")}
        model = apps.get_model(chat_settings.CONTAINER_MODEL)
    except (ImportError, LookupError, ValueError):
        return errors  # reported above
    if inspect.isclass(policy) or not callable(policy):
        errors.append(
            Error(
                f"CHAT_SESSIONS['ACCESS_POLICY'] is {policy!r}, not a function.",
                hint="A function `(*, user) -> QuerySet` of the containers this user may chat in.",
                id="chat_sessions.E005",
            )
        )
    elif policy is containers_owned_by:
        owner = chat_settings.CONTAINER_OWNER_FIELD
        try:
            model._meta.get_field(owner)
        except Exception:  # FieldDoesNotExist, or a name that is no field name at all
            errors.append(
                Error(
                    f"CHAT_SESSIONS['CONTAINER_OWNER_FIELD'] = {owner!r} is not a field of {model._meta.label}.",
                    hint="The field naming the container's owner, used by the default ACCESS_POLICY; "
                    "or set ACCESS_POLICY to a function of your own.",
                    id="chat_sessions.E006",
                )
            )
    for name, value in backends.items():
        if value is not None and not (inspect.isclass(value) and issubclass(value, AgentBackend)):
            errors.append(
                Error(
                    f"CHAT_SESSIONS['{name}'] is {value!r}, not an AgentBackend subclass.",
                    hint="A subclass of chat_sessions.agents.base.AgentBackend.",
                    id="chat_sessions.E007",
                )
            )
    return errors


def _throttle_rate_errors() -> list[Error]:
    """The chat views' throttle scopes need a rate, or DRF fails their first request with a 500."""
    from rest_framework.settings import api_settings

    from chat_sessions.api.throttling import CHAT_SCOPES, ChatRateThrottle

    rates = api_settings.DEFAULT_THROTTLE_RATES or {}
    errors = []
    for scope in CHAT_SCOPES:
        if scope not in rates:
            problem = "is not set"
        else:
            try:
                ChatRateThrottle().parse_rate(rates[scope])
                continue
            except (AttributeError, KeyError, IndexError, ValueError):
                problem = f"is {rates[scope]!r}, not a rate"
        errors.append(
            Error(
                f"REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['{scope}'] {problem}.",
                hint="A rate like '60/min' (per second, minute, hour or day), or None for no limit.",
                id="chat_sessions.E004",
            )
        )
    return errors
