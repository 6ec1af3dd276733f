"""A conversation exported: Markdown of the path shown, JSON of every message of every branch.

The JSON is the complete record (format_version 1): each message with its parent, so the tree
and all its branches can be rebuilt, the path that was shown, and the usage totals. The Markdown
is for reading: the active path only, with the tools each reply used and what it cost.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from shared import branches
from shared import conversations as convs
from shared.models import Conversation, Message, iso, utcnow
from shared.usage import usage_of

FORMAT_VERSION = 1
USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
)


@dataclass(frozen=True)
class Snapshot:
    """One conversation read in one go: its row, all its messages (id order), the path."""

    conversation: Conversation
    messages: list[Message]
    path: list[Message]
    exported_at: datetime


def snapshot(session: Session, conv: Conversation) -> Snapshot:
    """The path as the conversation's detail shows it (shared.branches), cut at a question
    still waiting for its reply, and every message."""
    assert conv.id is not None
    tree = branches.load_tree(session, conv.id)
    path = branches.shown_path(tree, conv.active_leaf_id, convs.active_turn(session, conv.id))
    messages = [tree.by_id[i] for i in sorted(tree.by_id)]
    return Snapshot(conv, messages, path, utcnow())


def _usage_of(msg: Message) -> dict[str, Any]:
    return {name: getattr(msg, name) for name in USAGE_FIELDS}


# ---- JSON -------------------------------------------------------------------------------------


def to_json(snap: Snapshot) -> dict[str, Any]:
    conv = snap.conversation
    return {
        "format_version": FORMAT_VERSION,
        "exported_at": iso(snap.exported_at),
        "conversation": {
            "id": conv.id,
            "project_name": conv.project_name,
            "title": conv.title,
            "title_source": conv.title_source,
            "created_at": iso(conv.created_at),
            "updated_at": iso(conv.updated_at),
            "active_leaf_id": conv.active_leaf_id,
        },
        "messages": [
            {
                "id": m.id,
                "parent_id": m.parent_id,
                "role": m.role,
                "content": m.content,
                "status": m.status,
                "tool_calls": m.tool_calls or [],
                "references": m.references,
                "stop_reason": m.stop_reason,
                "turn_id": m.turn_id,
                "model": m.model,
                **_usage_of(m),
                "created_at": iso(m.created_at),
            }
            for m in snap.messages
        ],
        "active_path": [m.id for m in snap.path],
        "usage": usage_of(snap.messages).as_dict(),
    }


# ---- Markdown ---------------------------------------------------------------------------------

_ROLE_HEADINGS = {"user": "You", "assistant": "Assistant"}


def _when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt is not None else ""


def _usage_line(usage: dict[str, Any]) -> str:
    return (
        f"{usage['input_tokens']} input, {usage['output_tokens']} output, "
        f"{usage['cache_read_tokens']} cache read, {usage['cache_write_tokens']} cache write "
        f"tokens; ${float(usage['cost_usd']):.4f}"
    )


def _tool_line(call: dict[str, Any]) -> str:
    tool = str(call.get("tool", "tool"))
    arguments = json.dumps(call.get("input", {}), ensure_ascii=False, sort_keys=True)
    return f"- {_code(tool)} {_code(arguments)}"


def _code(value: str) -> str:
    # An inline code span: a backtick inside would end it early.
    return "`" + value.replace("`", "'") + "`"


def to_markdown(snap: Snapshot) -> str:
    conv = snap.conversation
    title = conv.title or f"Conversation {conv.id}"
    lines = [
        f"# {title}",
        "",
        f"Project **{conv.project_name}**, conversation {conv.id}, started "
        f"{_when(conv.created_at)}; exported {_when(snap.exported_at)}.",
    ]
    for msg in snap.path:
        heading = _ROLE_HEADINGS.get(msg.role, msg.role.capitalize())
        details = [_when(msg.created_at)]
        if msg.model:
            details.append(msg.model)
        if msg.status != "complete":
            details.append(msg.status)
        lines += ["", f"## {heading} ({', '.join(details)})", "", msg.content.rstrip()]
        if msg.tool_calls:
            lines += ["", "Tools used:", *(_tool_line(c) for c in msg.tool_calls)]
        if msg.role == "assistant" and msg.turn_id is not None:
            lines += ["", f"*Usage: {_usage_line(_usage_of(msg))}.*"]
    lines += [
        "",
        "---",
        "",
        f"*Conversation total (every branch): {_usage_line(usage_of(snap.messages).as_dict())}.*",
        "",
    ]
    return "\n".join(lines)


_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


def filename(conv: Conversation, extension: str) -> str:
    """An ASCII file name from the title: safe in a Content-Disposition header on any OS."""
    ascii_title = unicodedata.normalize("NFKD", conv.title or "").encode("ascii", "ignore")
    slug = _UNSAFE.sub("-", ascii_title.decode()).strip("-").lower()[:40].rstrip("-")
    return f"conversation-{conv.id}{'-' + slug if slug else ''}.{extension}"
