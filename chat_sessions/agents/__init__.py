"""The agent seam: what the chat app asks of whatever answers a turn (see `base.py`)."""
