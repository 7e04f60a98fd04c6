"""Finding the passages of a notebook's sources that best match a question (BM25).

Notebooks hold tens of documents, not millions, so scoring in Python per question is
milliseconds, needs no index to keep in sync, and works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

PASSAGE_WORDS = 120
_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = frozenset(
    "a an the of to in on for and or is are was were be been do does did what which who how why when "
    "where can could would should will i me my we our you your it its this that these those with as at by "
    "from about into than then there their them they he she his her not no yes so if but".split()
)


@dataclass(frozen=True)
class Passage:
    source_id: str
    title: str
    text: str
    score: float = 0.0


def terms(text: str) -> list[str]:
    return [word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]


def passages_split(*, source_id: str, title: str, content: str) -> list[Passage]:
    """Paragraphs of a source, merged or cut to about `PASSAGE_WORDS` words each."""
    passages: list[Passage] = []
    buffer: list[str] = []
    for paragraph in re.split(r"\n\s*\n", content):
        words = paragraph.split()
        while words:
            room = PASSAGE_WORDS - len(buffer)
            buffer += words[:room]
            words = words[room:]
            if len(buffer) >= PASSAGE_WORDS:
                passages.append(Passage(source_id, title, " ".join(buffer)))
                buffer = []
        if len(buffer) >= PASSAGE_WORDS // 2:
            passages.append(Passage(source_id, title, " ".join(buffer)))
            buffer = []
    if buffer:
        passages.append(Passage(source_id, title, " ".join(buffer)))
    return passages


def passages_rank(
    *, question: str, passages: Iterable[Passage], limit: int = 3, k1: float = 1.5, b: float = 0.75
) -> list[Passage]:
    """The best `limit` passages for the question by BM25; only passages sharing a term score."""
    docs = [(passage, Counter(terms(passage.text))) for passage in passages]
    query = set(terms(question))
    if not docs or not query:
        return []
    average = sum(sum(counts.values()) for _, counts in docs) / len(docs) or 1.0
    frequency = {term: sum(1 for _, counts in docs if term in counts) for term in query}
    scored = []
    for passage, counts in docs:
        length = sum(counts.values())
        score = 0.0
        for term in query:
            tf = counts.get(term, 0)
            if tf:
                idf = math.log(1 + (len(docs) - frequency[term] + 0.5) / (frequency[term] + 0.5))
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average))
        if score > 0:
            scored.append(Passage(passage.source_id, passage.title, passage.text, round(score, 4)))
    scored.sort(key=lambda passage: passage.score, reverse=True)
    return scored[:limit]
