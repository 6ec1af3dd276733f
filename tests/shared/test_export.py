"""Export (shared.export) on both databases: the active path of a branched tree, the JSON record
of every message, the Markdown of the path, and a file name safe in a header."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from shared import export
from shared.models import Conversation, Message
from tests.support.db import Ids


def add(
    engine: Engine, conv_id: int, parent: int | None, role: str, content: str, **kw: Any
) -> int:
    with Session(engine) as s:
        msg = Message(conversation_id=conv_id, parent_id=parent, role=role, content=content, **kw)
        s.add(msg)
        s.commit()
        assert msg.id is not None
        return msg.id


def snap(engine: Engine, conv_id: int, leaf: int | None) -> export.Snapshot:
    with Session(engine) as s:
        conv = s.get(Conversation, conv_id)
        assert conv is not None
        conv.active_leaf_id = leaf
        s.add(conv)
        s.commit()
        return export.snapshot(s, conv)


def test_branches_paths_json_and_markdown(engine: Engine, conv_ids: Ids) -> None:
    cid = conv_ids.conversation_id
    with Session(engine) as s:
        (greeting,) = export.snapshot(s, s.get_one(Conversation, cid)).messages
    g = greeting.id
    q1 = add(engine, cid, g, "user", "first question")
    a1 = add(
        engine, cid, q1, "assistant", "first answer", turn_id=101, input_tokens=5, cost_usd=0.1
    )
    q2 = add(engine, cid, a1, "user", "second question")
    a2 = add(engine, cid, q2, "assistant", "old reply", turn_id=102, output_tokens=7)
    a2b = add(
        engine,
        cid,
        q2,
        "assistant",
        "new reply",
        turn_id=103,
        cache_read_tokens=3,
        cache_write_tokens=2,
        cost_usd=0.2,
        tool_calls=[{"tool": "Grep", "input": {"pattern": "a`b"}}],
        model="claude-x",
    )
    q1b = add(engine, cid, g, "user", "edited question")

    # The leaf's ancestors, then down by the newest child.
    assert [m.id for m in snap(engine, cid, q2).path] == [g, q1, a1, q2, a2b]
    assert [m.id for m in snap(engine, cid, a2).path] == [g, q1, a1, q2, a2]
    assert [m.id for m in snap(engine, cid, q1b).path] == [g, q1b]
    # No leaf (or one of another conversation): the newest message.
    assert [m.id for m in snap(engine, cid, None).path] == [g, q1b]
    assert [m.id for m in snap(engine, cid, 10**9).path] == [g, q1b]

    shot = snap(engine, cid, q2)
    doc = export.to_json(shot)
    assert [m["id"] for m in doc["messages"]] == [g, q1, a1, q2, a2, a2b, q1b]
    assert {m["id"]: m["parent_id"] for m in doc["messages"]} == {
        g: None,
        q1: g,
        a1: q1,
        q2: a1,
        a2: q2,
        a2b: q2,
        q1b: g,
    }
    assert doc["active_path"] == [g, q1, a1, q2, a2b]
    assert doc["usage"] == {
        "input_tokens": 5,
        "output_tokens": 7,
        "cache_read_tokens": 3,
        "cache_write_tokens": 2,
        "cost_usd": 0.3,
    }
    assert doc["conversation"]["active_leaf_id"] == q2
    for stamp in [doc["exported_at"], doc["conversation"]["created_at"]] + [
        m["created_at"] for m in doc["messages"]
    ]:
        assert datetime.fromisoformat(stamp).utcoffset() is not None

    md = export.to_markdown(shot)
    assert md.count("## You") == 2 and md.count("## Assistant") == 3
    assert "new reply" in md and "old reply" not in md and "edited question" not in md
    assert '- `Grep` `{"pattern": "a\'b"}`' in md  # a backtick cannot end the code span
    assert "claude-x" in md
    assert "*Usage: 0 input, 0 output, 3 cache read, 2 cache write tokens; $0.2000.*" in md
    assert "every branch): 5 input, 7 output, 3 cache read, 2 cache write tokens; $0.3000" in md


def test_file_names_are_plain_ascii() -> None:
    conv = Conversation(
        id=7, project_name="p", user_id=1, title='Ünïcode "quotes"; /etc/passwd\r\n'
    )
    assert export.filename(conv, "md") == "conversation-7-unicode-quotes-etc-passwd.md"
    assert export.filename(Conversation(id=8, project_name="p", user_id=1), "json") == (
        "conversation-8.json"
    )
