"""Session titles: asked of an LLM, cleaned and checked, with a heuristic when that fails."""

from __future__ import annotations

import re

TITLE_PROMPT = (
    "Write a title of 3 to 6 words for a conversation that starts like this. "
    "Answer with the title only: no quotes, no punctuation at the end.\n\n"
    "User: {question}\n\nAssistant: {answer}"
)
_QUOTES = "\"'`*#\u201c\u201d\u2018\u2019"
MAX_TITLE_WORDS = 8
MAX_TITLE_CHARS = 80
_STOPWORDS = frozenset(
    "a an the of to in on for and or is are was were be do does did what which who whom whose how why "
    "when where can could would should will shall may might must i me my we our you your it its this that "
    "these those please tell about give show explain".split()
)


def title_clean(raw: str) -> str | None:
    """A model's answer made into a title, or None if it is empty, overlong or not a title."""
    text = raw.strip().splitlines()[0] if raw.strip() else ""
    text = re.sub(r"^(title|session title)\s*:\s*", "", text, flags=re.IGNORECASE)
    text = text.strip().strip(_QUOTES).strip()
    text = re.sub(r"[.!?,;:]+$", "", text).strip()
    if not text or len(text) > MAX_TITLE_CHARS or len(text.split()) > MAX_TITLE_WORDS:
        return None
    return text


def title_heuristic(question: str) -> str:
    """A title from the first question alone: its first few meaningful words."""
    words = re.findall(r"[\w'-]+", question)
    meaningful = [word for word in words if word.lower() not in _STOPWORDS] or words
    title = " ".join(meaningful[:6])
    if not title:
        return "Untitled chat"
    title = title[:MAX_TITLE_CHARS].strip()
    return title[0].upper() + title[1:]


def tags_suggest(text: str, *, limit: int = 3) -> list[str]:
    """A few lower-case keywords from a text, most frequent first, for the session's suggested tags."""
    counts: dict[str, int] = {}
    for word in re.findall(r"[a-zA-Z][a-zA-Z-]{3,}", text.lower()):
        if word not in _STOPWORDS:
            counts[word] = counts.get(word, 0) + 1
    return [word for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]]
