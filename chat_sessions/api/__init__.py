"""The REST API of chat sessions: DRF views, their serializers, filters and URLs."""
