"""Logging for every process: readable text or one JSON object per line, tagged with the turn.

Where a turn is handled (the API's `message` command, the worker's turn, a turn's ending) the
code binds `turn_id`, `conversation_id` and `user_id` to the current context (contextvars, so
each asyncio task and thread sees its own turn); every log line written there carries them,
also lines of libraries (Celery, httpx, uvicorn). So `grep turn_id=42` on text logs, or a JSON
filter on `turn_id`, follows one turn from the message to the reply across processes.

Never log a token or a message body at INFO or above: ids, states and sizes only.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

TURN_FIELDS = ("turn_id", "conversation_id", "user_id")

_turn_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("turn_id", default=None)
_conversation_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "conversation_id", default=None
)
_user_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("user_id", default=None)

# turn -> (conversation, user), as learnt by this process: a line that knows only the turn
# (Celery's, in the pool thread; a watchdog's) still gets the other two. Bounded, oldest out.
_KNOWN_MAX = 10_000
_known: OrderedDict[int, tuple[int, int]] = OrderedDict()
_known_lock = threading.Lock()


def remember_turn(turn_id: int | None, conversation_id: int | None, user_id: int | None) -> None:
    if turn_id is None or conversation_id is None or user_id is None:
        return
    with _known_lock:
        _known[turn_id] = (conversation_id, user_id)
        _known.move_to_end(turn_id)
        if len(_known) > _KNOWN_MAX:
            _known.popitem(last=False)


def known_ids(turn_id: int) -> tuple[int, int] | None:
    """(conversation_id, user_id) of the turn, if this process has learnt them."""
    return _known.get(turn_id)


@contextlib.contextmanager
def turn_scope(
    turn_id: int, conversation_id: int | None = None, user_id: int | None = None
) -> Iterator[None]:
    """Tag the lines written inside the block (and by tasks started in it) with the turn.

    The tags are removed on leaving, so a thread reused for other work (a Celery pool thread,
    a connection's task) does not keep them; another turn's ids never carry over."""
    remember_turn(turn_id, conversation_id, user_id)
    tokens = [
        (_turn_id, _turn_id.set(turn_id)),
        (_conversation_id, _conversation_id.set(conversation_id)),
        (_user_id, _user_id.set(user_id)),
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind_turn(conversation_id: int | None = None, user_id: int | None = None) -> None:
    """Add what was learnt about the bound turn (its conversation and user) to later lines of
    this context (an asyncio task's context is its own copy) and of this process."""
    if conversation_id is not None:
        _conversation_id.set(conversation_id)
    if user_id is not None:
        _user_id.set(user_id)
    remember_turn(_turn_id.get(), _conversation_id.get(), _user_id.get())


def current_turn_fields() -> dict[str, int]:
    turn_id = _turn_id.get()
    if turn_id is None:
        return {}
    conversation_id, user_id = _conversation_id.get(), _user_id.get()
    if conversation_id is None or user_id is None:
        conversation_id, user_id = known_ids(turn_id) or (conversation_id, user_id)
    fields = {"turn_id": turn_id, "conversation_id": conversation_id, "user_id": user_id}
    return {name: value for name, value in fields.items() if value is not None}


class TurnContextFilter(logging.Filter):
    """Copies the bound turn ids onto each record (as attributes, for both formatters)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_turn_fields().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message turn_id=42 conversation_id=7 user_id=3`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = " ".join(
            f"{name}={getattr(record, name)}" for name in TURN_FIELDS if hasattr(record, name)
        )
        if not tags:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} {tags}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, process role and pid, the turn
    ids when bound, and the traceback (as one string) when there is one."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": self.role,
            "pid": record.process,
        }
        for name in TURN_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


_HANDLER_MARK = "_assistant_handler"


def configure_logging(
    fmt: Literal["text", "json"], role: str, level: int | str = logging.INFO
) -> logging.Handler:
    """One stderr handler on the root logger for the whole process (idempotent): every
    library's records (uvicorn, Celery, tornado) propagate to it and come out alike."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(JsonFormatter(role) if fmt == "json" else TextFormatter())
    handler.addFilter(TurnContextFilter())
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    # In a JSON log, Python warnings (e.g. Celery's) are records too, not loose lines.
    logging.captureWarnings(fmt == "json")
    return handler
