"""chat_sessions: tabbed chat sessions with a pluggable agent, streamed over server-sent events.

A reusable Django app. A host project names its container model (what sessions belong to), who
may use a container, and which agent answers, in the `CHAT_SESSIONS` setting: see `conf.py`.
"""
