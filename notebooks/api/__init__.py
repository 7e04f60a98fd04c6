"""The REST API of notebooks and their sources."""
