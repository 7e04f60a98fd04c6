"""Live answers: generations that run on their own, event channels to watch them, SSE encoding.

- `generation.py` runs one answer: agent events in, channel events and database writes out.
- `channels.py` holds each answer's events for live and late subscribers (Redis across processes).
- `direct.py` lets the generation send its live events through the response's ASGI `send` itself.
- `persistence.py` writes to the database off the event loop, in short transactions.
- `turns.py` stores a turn and gathers what its generation needs.
"""
