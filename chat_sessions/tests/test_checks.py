"""System checks catch a misconfigured CHAT_SESSIONS at start-up."""

from __future__ import annotations

from datetime import timedelta

from chat_sessions.checks import check_chat_sessions_settings


def ids(settings, **overrides) -> set[str]:
    settings.CHAT_SESSIONS = {**settings.CHAT_SESSIONS, **overrides}
    return {message.id for message in check_chat_sessions_settings()}


def test_the_project_configuration_passes(settings):
    assert ids(settings) == set()


def test_an_unknown_container_model_is_an_error(settings):
    assert "chat_sessions.E001" in ids(settings, CONTAINER_MODEL="nowhere.Thing")


def test_a_backend_that_does_not_import_is_an_error(settings):
    assert "chat_sessions.E002" in ids(settings, AGENT_BACKEND="nowhere.Agent")


def test_a_duration_that_is_not_a_timedelta_is_an_error(settings):
    assert "chat_sessions.E003" in ids(settings, IDLE_TIMEOUT=24)


def test_an_unknown_key_is_a_warning(settings):
    assert "chat_sessions.W001" in ids(settings, IDLE_TIMEOUTS=timedelta(hours=1))


def test_a_slow_flush_is_a_warning(settings):
    assert "chat_sessions.W002" in ids(settings, FLUSH_INTERVAL=5)


def test_a_stale_limit_within_three_heartbeats_is_a_warning(settings):
    assert "chat_sessions.W003" in ids(settings, STALE_STREAM_AFTER=timedelta(seconds=20), HEARTBEAT_INTERVAL=10)
    assert "chat_sessions.W003" not in ids(settings, STALE_STREAM_AFTER=timedelta(seconds=30), HEARTBEAT_INTERVAL=10)


def test_a_chat_scope_without_a_rate_is_an_error(settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"chat_send": rates["chat_send"]}}
    missing = check_chat_sessions_settings()
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"chat_send": "60 per minute", "chat_create": None},
    }
    unreadable = check_chat_sessions_settings()

    assert [(m.id, m.msg) for m in missing] == [
        ("chat_sessions.E004", "REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['chat_create'] is not set.")
    ]
    assert [(m.id, m.msg) for m in unreadable] == [
        ("chat_sessions.E004", "REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['chat_send'] is '60 per minute', not a rate.")
    ]


def test_a_duration_in_seconds_that_is_no_number_is_an_error_not_a_crash(settings):
    assert "chat_sessions.E003" in ids(settings, FLUSH_INTERVAL="1")
    assert "chat_sessions.E003" in ids(settings, HEARTBEAT_INTERVAL="10")


def test_an_access_policy_that_is_not_a_function_is_an_error(settings):
    assert "chat_sessions.E005" in ids(settings, ACCESS_POLICY="notebooks.models.Notebook")


def test_the_default_policy_needs_the_owner_field_on_the_container(settings):
    default = "chat_sessions.access.containers_owned_by"
    assert ids(settings, ACCESS_POLICY=default) == set()
    assert "chat_sessions.E006" in ids(settings, ACCESS_POLICY=default, CONTAINER_OWNER_FIELD="creator")


def test_a_backend_that_is_not_an_agent_backend_is_an_error(settings):
    assert "chat_sessions.E007" in ids(settings, AGENT_BACKEND="datetime.timedelta")
    assert "chat_sessions.E007" in ids(settings, TITLE_BACKEND="datetime.timedelta")
