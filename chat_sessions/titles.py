"""Session titles: asked of an LLM, cleaned and checked, with a heuristic when that fails.

A session is titled from its first exchange whose answer completed (never from an interrupted or
failed one). The LLM named by `CHAT_SESSIONS["TITLE_BACKEND"]` gets `TITLE_ATTEMPTS` tries, each
bounded in time and output tokens; an answer that is empty or longer than a title is refused. When
no try gives a title (or no LLM is configured), the first question gives one. The title is written
by `services.session_title_apply`, only while the session's title is still the default, so a user's
rename always wins.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet

from chat_sessions import services
from chat_sessions.agents.base import AgentBackend
from chat_sessions.agents.http import http_session_close
from chat_sessions.agents.registry import title_backend
from chat_sessions.models import (
    ChatSession,
    MessageStatus,
    Sender,
    SessionChatMessage,
    SessionStatus,
    TitleSource,
)

logger = logging.getLogger(__name__)

TITLE_PROMPT = (
    "Write a title of 3 to 6 words for a conversation that starts like this. "
    "Answer with the title only: no quotes, no punctuation at the end.\n\n"
    "User: {question}\n\nAssistant: {answer}"
)
#: The first try and two retries.
TITLE_ATTEMPTS = 3
#: Enough for six words in any tokenizer; a model that rambles is cut off, not waited for.
TITLE_MAX_TOKENS = 24
#: Each try is stopped after this long, so three tries fit well inside the task's time limit.
TITLE_ATTEMPT_SECONDS = 15.0
#: Pause before the second try; doubled before the third.
TITLE_RETRY_DELAY = 1.0
#: Characters of the question and of the answer shown to the model.
TITLE_PROMPT_CHARS = 2000
MAX_TITLE_WORDS = 6
MAX_TITLE_CHARS = 80
#: A first answer that completed this long ago and left the session untitled lost its title task.
TITLE_SWEEP_AFTER = timedelta(minutes=3)
TITLE_SWEEP_BATCH = 50
FALLBACK_TITLE = "Untitled chat"

_QUOTES = "\"'`*_#>\u201c\u201d\u2018\u2019\u00ab\u00bb"
_TRAILING_PUNCTUATION = ".!?,;:\u2026\u3002"
_THINKING = re.compile(r"<think>.*?(</think>|$)", flags=re.DOTALL | re.IGNORECASE)
_LABEL = re.compile(r"^(session\s+)?title\s*:\s*", flags=re.IGNORECASE)
_STOPWORDS = frozenset(
    "a an the of to in on for and or is are was were be do does did what which who whom whose how why "
    "when where can could would should will shall may might must i me my we our you your it its this that "
    "these those please tell about give show explain with from into than then there their them they".split()
)


_ARTICLES = frozenset({"a", "an", "the"})
_WORD = re.compile(r"\w[\w'-]*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
#: Where a question's first clause ends: punctuation inside a sentence, or a dash between words.
_CLAUSE_BREAK = re.compile(r"[,;:()\u2013\u2014]|\s-\s")
#: What a question may start with before what it is about; matched over and over at its start.
#: "What is" too: "What is RuBisCO?" is about RuBisCO.
_ASKING = re.compile(
    r"\W*(?:(?:hi|hello|hey|ok|okay|so|please|thanks|thank you)\b"
    r"|(?:what|who)(?:\s+(?:is|are|was|were)|['\u2019]s)\b"
    r"|(?:can|could|would|will)\s+you\b"
    r"|(?:tell|show)\s+(?:me|us)(?:\s+about)?\b"
    r"|(?:explain|describe)(?:\s+to\s+(?:me|us))?\b"
    r"|help\s+(?:me|us)\s+understand\b"
    r"|i(?:\s+want|\s+would\s+like|['\u2019]d\s+like)\s+to\s+know(?:\s+about)?\b"
    r"|i\s+(?:was\s+)?wonder(?:ing)?\b)[\W_]*",
    flags=re.IGNORECASE,
)


@dataclass(frozen=True)
class Exchange:
    """The question and answer a title is made from."""

    question: str
    answer: str


def title_clean(*, raw: str) -> str | None:
    """A model's answer made into a title, or None if it is empty or longer than a title.

    Drops inline thinking, a leading "Title:", wrapping quotes or Markdown and trailing
    punctuation; keeps the first line only.
    """
    text = _THINKING.sub("", raw)
    lines = [line for line in (line.strip() for line in text.splitlines()) if line]
    if not lines:
        return None
    text = _LABEL.sub("", lines[0])
    previous = None
    while text != previous:  # quotes around punctuation, or punctuation inside quotes
        previous = text
        text = text.strip().strip(_QUOTES).rstrip(_TRAILING_PUNCTUATION)
    text = " ".join(text.split())
    if not text or len(text) > MAX_TITLE_CHARS or len(text.split()) > MAX_TITLE_WORDS:
        return None
    return text


def title_heuristic(*, question: str) -> str:
    """A title from the first question alone, in its own words where they are few enough.

    The question sentence is used (the first one asking, else the first), without the asking
    before it ("Hi! Can you tell me...", "What is") and a leading article. Then its first clause,
    when that has two to six words ("Where does photosynthesis happen, and..." gives "Where does
    photosynthesis happen"); else up to six words it is the title as it stands ("What does
    chlorophyll absorb?" gives "What does chlorophyll absorb"); else its first words from the first
    one that is not a stopword ("How do plants turn sunlight into sugar?" gives "Plants turn
    sunlight into sugar").
    """
    sentences = [part for part in _SENTENCE_END.split(question.strip()) if _WORD.search(part)]
    if not sentences:
        return FALLBACK_TITLE
    sentence = next((part for part in sentences if part.rstrip().endswith("?")), sentences[0])
    sentence = _without_asking(sentence)
    words = _WORD.findall(sentence)
    clause = _WORD.findall(_CLAUSE_BREAK.split(sentence, maxsplit=1)[0])
    if 1 < len(clause) <= MAX_TITLE_WORDS:
        words = clause
    elif len(words) > MAX_TITLE_WORDS:
        start = next((i for i, word in enumerate(words) if word.lower() not in _STOPWORDS), 0)
        words = words[start : start + MAX_TITLE_WORDS]
        while len(words) > 1 and words[-1].lower() in _STOPWORDS:
            words.pop()
    if len(words) > 1 and words[0].lower() in _ARTICLES:
        words = words[1:]
    title = ""
    for word in words:
        if len(title) + len(word) + 1 > MAX_TITLE_CHARS:
            break
        title = f"{title} {word}".strip()
    title = title or words[0][:MAX_TITLE_CHARS]
    return title[0].upper() + title[1:]


def _without_asking(sentence: str) -> str:
    """The sentence without the greetings and requests before what is asked ("Please tell me about")."""
    rest = sentence
    while True:
        match = _ASKING.match(rest)
        # Only while something is left to ask: "Hello there" stays a greeting.
        if match is None or all(word.lower() in _STOPWORDS for word in _WORD.findall(rest[match.end() :])):
            return rest
        rest = rest[match.end() :]


def tags_suggest(*, text: str, limit: int = 3) -> list[str]:
    """A few lower-case keywords from a text, most frequent first, for the session's suggested tags."""
    counts: dict[str, int] = {}
    for word in re.findall(r"\b[a-z][a-z-]{3,29}\b", text.lower()):
        if word not in _STOPWORDS:
            counts[word] = counts.get(word, 0) + 1
    return [word for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]]


def exchange_first_complete(*, session_id: Any) -> Exchange | None:
    """The session's first answer that completed, with the question it answers; None if none has."""
    answer = (
        SessionChatMessage.objects.filter(
            session_id=session_id, sender=Sender.ASSISTANT, status=MessageStatus.COMPLETE, message_order__gt=1
        )
        .order_by("message_order")
        .first()
    )
    if answer is None:
        return None
    question = SessionChatMessage.objects.filter(
        session_id=session_id, sender=Sender.USER, message_order=answer.message_order - 1
    ).first()
    if question is None:
        return None
    return Exchange(question=question.message, answer=answer.message)


def title_from_llm(*, backend: AgentBackend, exchange: Exchange) -> str | None:
    """Ask the LLM up to `TITLE_ATTEMPTS` times; the first acceptable title, or None."""
    prompt = TITLE_PROMPT.format(
        question=exchange.question[:TITLE_PROMPT_CHARS], answer=exchange.answer[:TITLE_PROMPT_CHARS]
    )
    return asyncio.run(_title_ask(backend=backend, prompt=prompt))


async def _title_ask(*, backend: AgentBackend, prompt: str) -> str | None:
    try:
        for attempt in range(1, TITLE_ATTEMPTS + 1):
            try:
                async with asyncio.timeout(TITLE_ATTEMPT_SECONDS):
                    raw = await backend.complete(prompt=prompt, max_tokens=TITLE_MAX_TOKENS)
            except Exception:
                # Any failure of the model (refusal, timeout, malformed answer, a backend bug)
                # costs one attempt; the heuristic title is always there behind the last one.
                logger.warning("Title attempt %d of %d failed", attempt, TITLE_ATTEMPTS, exc_info=True)
            else:
                title = title_clean(raw=raw)
                if title:
                    return title
                logger.info("Title attempt %d of %d refused: %r", attempt, TITLE_ATTEMPTS, raw[:200])
            if attempt < TITLE_ATTEMPTS:
                await asyncio.sleep(TITLE_RETRY_DELAY * 2 ** (attempt - 1))
        return None
    finally:
        # This event loop ends with the call: close the HTTP pool it opened.
        await http_session_close()


def session_title_generate(*, session_id: Any) -> str | None:
    """Title a session from its first complete exchange while its title is the default.

    Returns the title written, or None when there was nothing to do: the session is gone, the
    user named it (before or during generation), or no answer has completed yet.
    """
    if not ChatSession.objects.filter(pk=session_id, title_source=TitleSource.DEFAULT).exists():
        return None
    exchange = exchange_first_complete(session_id=session_id)
    if exchange is None:
        return None
    backend = title_backend()
    title = (title_from_llm(backend=backend, exchange=exchange) if backend else None) or title_heuristic(
        question=exchange.question
    )
    if not services.session_title_apply(session_id=session_id, title=title):
        logger.info("Session %s was renamed while its title was generated; the user's title stays", session_id)
        return None
    services.session_suggested_tags_set(session_id=session_id, names=tags_suggest(text=f"{title} {exchange.question}"))
    logger.info("Session %s titled %r", session_id, title)
    return title


def sessions_awaiting_title(*, now: datetime) -> QuerySet[ChatSession]:
    """Active sessions still on the default title although an answer completed a while ago.

    Their title task was lost (a broker that was down, a worker killed with the message) or never
    asked for (the first answer failed and a later one completed); housekeeping asks again.
    """
    answered = SessionChatMessage.objects.filter(
        session_id=OuterRef("pk"),
        sender=Sender.ASSISTANT,
        status=MessageStatus.COMPLETE,
        updated_at__lt=now - TITLE_SWEEP_AFTER,
    )
    return (
        ChatSession.objects.filter(status=SessionStatus.ACTIVE, title_source=TitleSource.DEFAULT)
        .filter(Exists(answered))
        .order_by("-last_activity")
    )
