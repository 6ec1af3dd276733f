"""The whole path once more with PostgreSQL as the database, when a server is reachable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session

from shared import auth, projects
from shared.conversations import messages_of
from shared.db import make_engine
from shared.devtools.demo_model import DemoModelServer
from shared.devtools.redis_server import RedisServer
from shared.migrate import upgrade
from shared.models import Turn
from tests.support.client import WsClient, text_of
from tests.support.processes import StackFactory

HUGE = 3_000_000_000  # a valid id in the protocol, past PostgreSQL's INTEGER
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    admin = create_engine(
        ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2}
    )
    name = f"assistant_e2e_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable: {exc.__class__.__name__}")
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_chat_turn_with_tool_call_on_postgresql(
    postgres_url: str, model: DemoModelServer, project_dir: Path, tmp_path: Path
) -> None:
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    with Session(engine) as session:
        user = auth.create_user(session, "pg-user")
        _, token = auth.issue_token(session, user)
        projects.add_project(session, "pgproj", str(project_dir))
        session.commit()

    with RedisServer(data_dir=tmp_path / "redis") as redis:
        factory = StackFactory(tmp_path, postgres_url, redis.url, model.url)
        try:
            stack = factory.stack()
            with WsClient(f"{stack.api.ws_url}/api/assistant/ws/pgproj", token) as ws:
                conv_id = ws.start()
                frames = ws.ask('[[tool:Read {"file_path": "README.md"}]]')
                # Ids past PostgreSQL's 32-bit INTEGER are absent, not a database error.
                for msg in (
                    {"type": "resume", "turn_id": HUGE, "after_seq": 0},
                    {"type": "cancel", "turn_id": HUGE},
                    {"type": "regenerate", "message_id": HUGE},
                    {"type": "message", "content": "hi", "parent_id": HUGE},
                    {"type": "start", "conversation_id": HUGE},
                ):
                    ws.send(**msg)
                    reply = ws.recv()
                    assert reply["type"] == "error", reply
                    assert reply["content"].startswith(
                        ("No running reply", "Turn not", "Message not", "Conversation not")
                    ), reply
                headers = {"Authorization": f"Bearer {token}"}
                base = f"{stack.api.base_url}/api/assistant/conversations/pgproj/{HUGE}"
                for method, url in (("GET", base), ("DELETE", base), ("POST", base + "/cancel")):
                    assert httpx.request(method, url, headers=headers).status_code == 404, url
                ws.start(conv_id)  # and the socket still works
                assert ws.ask("[[text:3]]")[-1]["type"] == "response_done"
        finally:
            factory.stop_all()

    assert frames[-1]["type"] == "response_done"
    assert any(f["type"] == "tool_call" for f in frames)
    with Session(engine) as session:
        msgs = messages_of(session, conv_id)
        assert [m.role for m in msgs] == ["assistant", "user", "assistant", "user", "assistant"]
        assert msgs[2].content == text_of(frames)
        turn = session.get(Turn, frames[-1]["turn_id"])
        assert turn is not None and turn.status == "complete"
    engine.dispose()
