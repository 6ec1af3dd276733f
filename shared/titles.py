"""Titles written by a small model (ASSISTANT_TITLE_MODEL) after a conversation's first reply.

Until then, and whenever this fails, a conversation is titled by the first 50 characters of its
first question (shared/conversations.title_for). The worker starts `write_title` after the
reply's terminal chunk is out, as a task of its own: the reply never waits for it, and a
failure only logs. The title is stored by a conditional UPDATE that matches only while
`title_source` is still "auto", so a title the user set (even a moment before) is never
overwritten, and a second writer cannot replace the first.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial

from anthropic import AsyncAnthropic
from sqlalchemy import CursorResult, func, update
from sqlmodel import Session, col, select

from shared.config import Settings
from shared.db import read_scope
from shared.group_commit import Writes
from shared.models import Conversation, Message, MessageStatus, TitleSource, Turn
from shared.usage import Usage, current_month, record_usage

log = logging.getLogger(__name__)

# The demo model knows a title request by this opening (shared/devtools/demo_model/titles.py).
TITLE_SYSTEM = (
    "You write the titles of conversations. Given the first question of a conversation "
    "about a software project, and the start of its answer, reply with a title of at most "
    "six words in the question's language: no quotes, no final punctuation, nothing else."
)
TITLE_MAX_TOKENS = 30
TITLE_TIMEOUT_S = 30.0
QUESTION_CHARS = 2000
ANSWER_CHARS = 1000
TITLE_MAX_CHARS = 100  # the column's size


@dataclass(frozen=True)
class TitleJob:
    """What a title needs: the question, or None when the conversation needs no title."""

    question: str | None
    reason: str = ""
    user_id: int | None = None  # whose month the title's tokens count in


def title_job(session: Session, *, conversation_id: int, turn_id: int) -> TitleJob:
    """Whether this turn's reply is the conversation's first complete one, with its title
    still automatic; and its question."""
    conv = session.get(Conversation, conversation_id)
    if conv is None:
        return TitleJob(None, "the conversation is gone")
    if conv.title_source != TitleSource.auto:
        return TitleJob(None, f"its title is set ({conv.title_source})")
    complete = session.exec(
        select(func.count(col(Message.id))).where(
            Message.conversation_id == conversation_id,
            Message.role == "assistant",
            col(Message.turn_id).is_not(None),
            Message.status == MessageStatus.complete,
        )
    ).one()
    if complete != 1:
        return TitleJob(None, "not its first reply")
    question = session.exec(
        select(Message.content)
        .join(Turn, col(Turn.user_message_id) == col(Message.id))
        .where(Turn.id == turn_id)
    ).first()
    return TitleJob(question, "" if question else "its question is gone", conv.user_id)


def clean_title(text: str) -> str:
    """The model's answer as a title: its first line, without quotes or final punctuation."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = line.removeprefix("Title:").strip().strip("\"'`*").strip()
    return line.rstrip(".!?:;,").strip()[:TITLE_MAX_CHARS]


async def ask_title(
    client: AsyncAnthropic, settings: Settings, *, question: str, answer: str
) -> tuple[str, Usage]:
    """The title model's title for a conversation (empty if it gave none), and what it cost."""
    prompt = (
        f"<question>{question[:QUESTION_CHARS]}</question>\n"
        f"<answer>{answer[:ANSWER_CHARS]}</answer>"
    )
    response = await client.messages.create(
        model=settings.title_model,
        max_tokens=TITLE_MAX_TOKENS,
        system=TITLE_SYSTEM,
        messages=[{"role": "user", "content": prompt}],
        timeout=TITLE_TIMEOUT_S,
    )
    text = "".join(b.text for b in response.content if b.type == "text")
    u = response.usage
    usage = Usage(
        u.input_tokens,
        u.output_tokens,
        u.cache_read_input_tokens or 0,
        u.cache_creation_input_tokens or 0,
    ).priced(settings, response.model)
    return clean_title(text), usage


def store_title(session: Session, *, conversation_id: int, title: str) -> bool:
    """Set a model's title while the conversation's title is still automatic; whether it was."""
    result = session.execute(
        update(Conversation)
        .where(
            col(Conversation.id) == conversation_id,
            col(Conversation.title_source) == TitleSource.auto,
        )
        .values(title=title, title_source=TitleSource.model)
    )
    assert isinstance(result, CursorResult)
    return int(result.rowcount) == 1


async def write_title(
    client: AsyncAnthropic,
    settings: Settings,
    db: Writes,
    *,
    conversation_id: int,
    turn_id: int,
    answer: str,
) -> None:
    """Title the conversation after its first reply, if it still needs one. Never raises
    (but for cancellation): a title is a courtesy, and the 50 characters stay on failure."""
    try:
        job = await asyncio.to_thread(_read_job, conversation_id, turn_id)
        if job.question is None:
            log.info("turn %s: no model title: %s", turn_id, job.reason)
            return
        title, usage = await ask_title(client, settings, question=job.question, answer=answer)
        if job.user_id is not None:
            # The title's tokens are the user's spending too (the ledger, not the reply).
            await db.write(
                partial(record_usage, user_id=job.user_id, month=current_month(), usage=usage)
            )
        if not title:
            log.warning("turn %s: the title model gave no title", turn_id)
            return
        stored = await db.write(partial(store_title, conversation_id=conversation_id, title=title))
        if stored:
            log.info("turn %s: title written by %s", turn_id, settings.title_model)
        else:
            log.info("turn %s: model title not stored: the title was set meanwhile", turn_id)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("turn %s: title failed (%s: %s)", turn_id, type(exc).__name__, exc)


def _read_job(conversation_id: int, turn_id: int) -> TitleJob:
    with read_scope() as session:
        return title_job(session, conversation_id=conversation_id, turn_id=turn_id)
