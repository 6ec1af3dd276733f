"""Real parts for the tests: a Redis server, the model stand-in, the API and Celery workers.

Each is a real process on a free port, started and stopped by the fixtures. Only the model is a
stand-in (shared.devtools.demo_model), reached by the real anthropic SDK through ANTHROPIC_BASE_URL.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# The test process uses the same database as the processes it starts; set before any import
# of shared.config reads the environment.
_TMP = Path(tempfile.mkdtemp(prefix="assistant-tests-"))
os.environ["ASSISTANT_DATABASE_URL"] = f"sqlite:///{_TMP / 'test.db'}"
os.environ["ASSISTANT_DATA_DIR"] = str(_TMP)
os.environ.pop("ASSISTANT_REDIS_URL", None)

import shared.db  # noqa: E402
from shared.config import get_settings  # noqa: E402
from shared.db import make_engine  # noqa: E402
from shared.devtools.demo_model import DemoModelServer  # noqa: E402
from shared.devtools.redis_server import RedisServer  # noqa: E402
from shared.migrate import upgrade  # noqa: E402
from tests.support.processes import Stack, StackFactory  # noqa: E402

# engine (SQLite and PostgreSQL), scoped, conv_ids
pytest_plugins = ["tests.support.db_fixtures"]


@pytest.fixture(scope="session")
def database_url() -> str:
    get_settings.cache_clear()
    url = os.environ["ASSISTANT_DATABASE_URL"]
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer(data_dir=_TMP / "redis") as server:
        os.environ["ASSISTANT_REDIS_URL"] = server.url
        get_settings.cache_clear()
        yield server


@pytest.fixture(scope="session")
def model() -> Iterator[DemoModelServer]:
    with DemoModelServer() as server:
        yield server


@pytest.fixture(scope="session")
def stack_factory(
    database_url: str, redis_server: RedisServer, model: DemoModelServer
) -> Iterator[StackFactory]:
    factory = StackFactory(_TMP, database_url, redis_server.url, model.url)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def stack(stack_factory: StackFactory) -> Stack:
    """One API process and one worker process, shared by the tests that do not break them."""
    return stack_factory.stack()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(data_dir=tmp_path / "redis") as server:
        yield server


@pytest.fixture
def isolated(
    own_redis: RedisServer,
    model: DemoModelServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[StackFactory]:
    """Processes with their own Redis and their own database.

    Both, not just Redis: the session stack's watchdogs scan the database they share, and would
    find these turns' heartbeats missing from their Redis and "recover" them. In a deployment
    every process shares one Redis, so that cannot happen there. The test process's own
    session_scope() is pointed at the same database.
    """
    url = f"sqlite:///{tmp_path / 'isolated.db'}"
    upgrade(url)
    engine = make_engine(url)
    monkeypatch.setattr(shared.db, "get_engine", lambda: engine)
    factory = StackFactory(tmp_path, url, own_redis.url, model.url)
    try:
        yield factory
    finally:
        factory.stop_all()
        engine.dispose()


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "README.md").write_text("# Demo project\n\nA tiny project used by the tests.\n")
    (root / "src" / "app.py").write_text("def main():\n    return 42\n")
    return root
