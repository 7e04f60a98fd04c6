"""RAGFlow, the service that holds each notebook's knowledge base and answers from it.

- `client`: the async HTTP client (datasets, documents, agents, agent sessions, completions).
- `stream`: reading an agent's completion stream into typed frames, tolerant of version quirks.
- `errors`: what can go wrong, typed, with messages that never carry the API key.
- `dsl`: the agent template (`templates/`) filled in for one notebook.
- `agent`: `RagFlowNotebookAgent`, the chat backend that streams a notebook's answers.
"""
