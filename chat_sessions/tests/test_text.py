"""Text checked or made fit to be UTF-8: what a client sends is refused, what a model wrote is kept."""

from __future__ import annotations

import pytest

from chat_sessions.text import text_holds_surrogate, text_unicode_only


@pytest.mark.parametrize(
    ("value", "holds"),
    [
        ("plain", False),
        ("Blätter \U0001f33f", False),
        ("a\ud800", True),
        (["ok", "\udfff"], True),
        ({"\ud83c": "key"}, True),
        ({"k": {"deep": ("\udc00",)}}, True),
        (3, False),
    ],
)
def test_a_surrogate_is_found_anywhere_in_a_json_value(value, holds):
    assert text_holds_surrogate(value) is holds


def test_halves_become_the_replacement_character_and_a_pair_side_by_side_its_character():
    assert text_unicode_only("a\ud800b") == "a\ufffdb"
    assert text_unicode_only("\ud83c\udf3f \udf3f") == "\U0001f33f \ufffd"
    assert text_unicode_only({"\ud800": ["x\udfff", 1, None]}) == {"\ufffd": ["x\ufffd", 1, None]}
    assert text_unicode_only("x\udfff").encode() == "x\ufffd".encode()


def test_text_without_a_surrogate_is_returned_as_it_is():
    text = "Chlorophyll absorbs blue light, ça va \U0001f33f"

    assert text_unicode_only(text) is text
