"""Settings for a deepsight web process the security tests start, kill and restart.

The test settings, with the OpenAI-compatible agent pointed at the fake upstream the test runs
(`DEEPSIGHT_TEST_OPENAI_URL`), so the process streams answers the test controls; a test that
needs an answer to go stale within seconds sets `DEEPSIGHT_TEST_STALE_SECONDS` and
`DEEPSIGHT_TEST_HEARTBEAT_SECONDS`.
"""

import os
from datetime import timedelta

from deepsight.settings_test import *  # noqa: F403
from deepsight.settings_test import CHAT_SESSIONS

CHAT_SESSIONS = {
    **CHAT_SESSIONS,
    "AGENT_BACKEND": "chat_sessions.agents.openai.OpenAICompatibleAgent",
    "OPENAI": {
        "BASE_URL": os.environ.get("DEEPSIGHT_TEST_OPENAI_URL", ""),
        "API_KEY": "sk-test-secret",
        "MODEL": "fake-model",
    },
}
if os.environ.get("DEEPSIGHT_TEST_STALE_SECONDS"):
    CHAT_SESSIONS["STALE_STREAM_AFTER"] = timedelta(seconds=float(os.environ["DEEPSIGHT_TEST_STALE_SECONDS"]))
    CHAT_SESSIONS["HEARTBEAT_INTERVAL"] = float(os.environ["DEEPSIGHT_TEST_HEARTBEAT_SECONDS"])
