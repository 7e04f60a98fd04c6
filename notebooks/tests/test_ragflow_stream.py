"""Reading completion streams byte by byte: the parser alone, on the shapes RAGFlow versions send."""

from __future__ import annotations

import json

import pytest

from notebooks.ragflow.errors import RagFlowAuthError, RagFlowProtocolError, RagFlowStreamError
from notebooks.ragflow.stream import AnswerText, CompletionParser, References, references_normalize


def frame(event, data, **extra):
    body = {"event": event, "message_id": "m1", "created_at": 1, "task_id": "t1", "data": data, "session_id": "s1"}
    return b"data:" + json.dumps({**body, **extra}, ensure_ascii=False).encode() + b"\n\n"


def test_a_frame_split_across_network_reads_is_read_whole():
    stream = frame("message", {"content": "Grüße, Welt"}) + b"data:[DONE]\n\n"
    parser = CompletionParser()

    frames = [f for i in range(len(stream)) for f in parser.feed(stream[i : i + 1])]

    assert [f.text for f in frames if isinstance(f, AnswerText)] == ["Grüße, Welt"]
    assert parser.finished


def test_a_stream_that_ends_without_a_terminator_is_not_finished():
    parser = CompletionParser()

    parser.feed(frame("message", {"content": "partial"}))

    assert not parser.finished


def test_chat_assistant_references_are_a_list_numbered_from_zero():
    reference = {
        "chunks": [
            {"id": "c0", "content": "first", "document_id": "d1", "document_name": "a.pdf"},
            {"chunk_id": "c1", "content_with_weight": "second", "doc_id": "d2", "docnm_kwd": "b.pdf"},
        ],
        "doc_aggs": [{"doc_name": "a.pdf", "doc_id": "d1", "count": 1}],
        "total": 2,
    }

    sources = references_normalize(reference)

    assert [(s["index"], s["title"], s["document_id"], s["snippet"]) for s in sources] == [
        (0, "a.pdf", "d1", "first"),
        (1, "b.pdf", "d2", "second"),
    ]


def test_agent_references_are_ordered_by_their_numeric_keys_and_named_from_doc_aggs():
    reference = {
        "chunks": {"120": {"id": "x", "content": "later", "document_id": "d9"}, "7": {"id": "y", "content": "early"}},
        "doc_aggs": {"notes.md": {"doc_name": "notes.md", "doc_id": "d9", "count": 1}},
    }

    sources = references_normalize(reference)

    assert [s["index"] for s in sources] == [7, 120]
    assert sources[1]["title"] == "notes.md"


def test_an_empty_message_end_gives_no_references():
    parser = CompletionParser()

    frames = parser.feed(frame("message_end", {}) + frame("message_end", {"reference": {"chunks": {}}}))

    assert [f for f in frames if isinstance(f, References)] == []


def test_an_error_text_from_older_servers_is_an_error():
    parser = CompletionParser()

    with pytest.raises(RagFlowStreamError, match="ERROR"):
        parser.feed(frame("message", {"content": "**ERROR**: LLM quota exceeded"}))


def test_an_auth_refusal_where_a_stream_was_expected_is_an_auth_error():
    parser = CompletionParser()

    with pytest.raises(RagFlowAuthError):
        parser.feed(b'{"code":109,"data":false,"message":"Authentication error: API key is invalid!"}\n')


def test_a_pre_v020_answer_format_is_refused_with_the_version_needed():
    parser = CompletionParser()
    legacy = b'data:{"code": 0, "message": "", "data": {"answer": "How is the", "reference": {}, "id": "x"}}\n\n'

    with pytest.raises(RagFlowProtocolError, match=r"v0\.20\.5"):
        parser.feed(legacy)


def test_frames_before_an_error_in_the_same_read_are_returned_first():
    parser = CompletionParser()

    frames = parser.feed(frame("message", {"content": "kept"}) + b'data:{"code": 500, "message": "boom"}\n\n')

    assert [f.text for f in frames if isinstance(f, AnswerText)] == ["kept"]
    with pytest.raises(RagFlowStreamError, match="boom"):
        parser.raise_pending()


def test_a_line_that_is_not_json_is_a_protocol_error():
    with pytest.raises(RagFlowProtocolError):
        CompletionParser().feed(b"data:{not json\n\n")
