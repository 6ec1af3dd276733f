"""Hostile input through the real stack with default settings (issue 8).

The model stand-in's `[[tool:NAME {json}]]` directives play a hostile (prompt-injected) model
that calls the tools with any argument it likes; the other tests play a signed-in or anonymous
user sending what they like. Each test attacks the way the finding did.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shared import auth
from shared.db import session_scope
from shared.tools import GLOB, GREP, READ
from tests.support.client import WsClient, text_of
from tests.support.data import make_account, make_project
from tests.support.processes import REPO, Stack, StackFactory, memory_kb

SECRET = "S3CRET-CREDENTIAL-8d2f1"
CREDENTIALS = [
    ".pgpass",
    ".kube/config",
    "prod.env",
    ".git-credentials",
    "terraform.tfstate",
    ".docker/config.json",
    ".htpasswd",
    ".envrc",
    "id_dsa",
    "x.jks",
    "sub/.ssh/config",
]


def ws_url(base: str, project: str) -> str:
    return f"{base}/api/assistant/ws/{project}"


def tool(name: str, **tool_input: object) -> str:
    return f"[[tool:{name} {json.dumps(tool_input)}]]"


def tool_lines(frames: list[dict[str, object]]) -> list[str]:
    """The demo model's summary of the tool results it got: one `- NAME TARGET: "..."` each."""
    text = text_of(frames)
    assert "Tool results:" in text, text
    return [ln for ln in text.split("Tool results:", 1)[1].splitlines() if ln.startswith("- ")]


# ---- 8.1 credential files ---------------------------------------------------------------------


def test_credential_files_stay_closed_to_a_hostile_model(stack: Stack, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    for rel in CREDENTIALS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"password={SECRET}\n")
    (root / "README.md").write_text("# ok\n")
    project, acct = make_project(root), make_account()
    with WsClient(ws_url(stack.api.ws_url, project), acct.token) as ws:
        ws.start()
        reads = ws.ask(" ".join(tool(READ, file_path=rel) for rel in CREDENTIALS))
        searched = ws.ask(
            tool(GREP, pattern="password", output_mode="content")
            + tool(GLOB, pattern="**/*")
            + tool(READ, file_path="README.md")
        )
    for frames in (reads, searched):
        assert frames[-1]["type"] == "response_done"
        assert SECRET not in json.dumps(frames)
    read_lines = tool_lines(reads)
    assert len(read_lines) == len(CREDENTIALS)
    assert all(" failed: " in ln and "not allowed" in ln for ln in read_lines), read_lines
    grep, glob, readme = tool_lines(searched)
    assert "No matches" in grep or "No files" in grep, grep
    assert "failed" not in readme  # the tools still work for ordinary files
    listing = text_of(searched)
    for rel in CREDENTIALS:
        assert rel.rsplit("/", 1)[-1] not in listing.split("Tool results:", 1)[1], glob


# ---- 8.2 a regular expression that eats the worker ---------------------------------------------


def test_hostile_regex_leaves_the_worker_memory_as_it_was(
    isolated: StackFactory, project_dir: Path
) -> None:
    stack = isolated.stack()
    project, acct = make_project(project_dir), make_account()
    pid = stack.worker.popen.pid
    with WsClient(ws_url(stack.api.ws_url, project), acct.token) as ws:
        ws.start()
        # Warm up: the first search loads what a search needs, so it is not counted below.
        assert ws.ask(tool(GREP, pattern="main"))[-1]["type"] == "response_done"
        rss_before, peak_before = memory_kb(pid), memory_kb(pid, "VmHWM")
        frames = ws.ask(tool(GREP, pattern="(?x)a{1000 0000}", output_mode="content"), 90)
        (line,) = tool_lines(frames)
        rss_after, peak_after = memory_kb(pid), memory_kb(pid, "VmHWM")
        # The worker still works.
        assert text_of(ws.ask("[[text:2]]")) == "word1 word2"
    assert (rss_after - rss_before) < 64 * 1024, (rss_before, rss_after)
    assert (peak_after - peak_before) < 64 * 1024, (peak_before, peak_after)
    assert " failed: " in line, line


# ---- 8.4 hard links ---------------------------------------------------------------------------


def test_hard_link_to_an_outside_file_is_refused_until_an_admin_allows_it(
    stack: Stack, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text(f"{SECRET}\n")
    root = tmp_path / "proj"
    root.mkdir()
    os.link(outside, root / "linked.txt")
    project, acct = make_project(root), make_account()
    with WsClient(ws_url(stack.api.ws_url, project), acct.token) as ws:
        ws.start()
        refused = ws.ask(tool(READ, file_path="linked.txt") + tool(GREP, pattern="S3CRET"))
        assert SECRET not in json.dumps(refused)
        read_line, grep_line = tool_lines(refused)
        assert "hard link" in read_line and " failed: " in read_line, read_line
        assert "No matches" in grep_line
        cli = [sys.executable, "-m", "cli", "projects", "set", project, "--hardlinks", "on"]
        done = subprocess.run(cli, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        allowed = ws.ask(
            tool(READ, file_path="linked.txt") + tool(GREP, pattern="S3CRET", output_mode="content")
        )
    read_line, grep_line = tool_lines(allowed)
    assert " failed: " not in read_line and "linked.txt (lines 1-1 of 1)" in read_line
    assert f"linked.txt:1:{SECRET}" in grep_line


# ---- 8.5 request bodies read before authentication ---------------------------------------------


def post_unauthenticated(port: int, total: int, chunked: bool) -> tuple[int, int]:
    """POST /api/projects with a `total`-byte body and no token, generated while sending (never
    held in memory); (HTTP status, body bytes sent before the answer came)."""
    size = 1 << 16
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % total
    block = (b"%x\r\n" % size + b"x" * size + b"\r\n") if chunked else b"x" * size
    head = b"POST /api/projects HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += b"Content-Type: application/json\r\n" + framing + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        sent, pending = 0, memoryview(block)
        deadline = time.monotonic() + 120
        while sent < total and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1)
            if readable:
                break  # the server answered before taking the whole body
            if writable:
                pending = pending[sock.send(pending) :]
                if not pending:
                    sent, pending = sent + size, memoryview(block)
        if sent >= total and chunked:
            sock.sendall(b"0\r\n\r\n")
        sock.setblocking(True)
        answer = b""
        while b"\r\n" not in answer:
            got = sock.recv(4096)
            assert got, "the server closed the connection without an answer"
            answer += got
    return int(answer.split(b" ", 2)[1]), sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_unauthenticated_body_is_refused_before_it_is_read(
    stack_factory: StackFactory, chunked: bool
) -> None:
    api = stack_factory.api()
    total = 300 * 1024 * 1024
    peak_before = memory_kb(api.popen.pid, "VmHWM")
    status, sent = post_unauthenticated(api.port, total, chunked)
    peak_after = memory_kb(api.popen.pid, "VmHWM")
    assert (peak_after - peak_before) < 32 * 1024, (peak_before, peak_after)
    assert status == 413
    assert sent < total // 2
    # The API goes on serving.
    assert httpx.get(f"{api.base_url}/healthz", timeout=10).status_code == 200


# ---- 8.6 server paths -------------------------------------------------------------------------


def test_only_admins_see_project_paths(stack: Stack, project_dir: Path) -> None:
    project = make_project(project_dir)
    user, admin = make_account(), make_account(admin=True)
    url = f"{stack.api.base_url}/api/projects"
    as_user = httpx.get(url, headers=user.headers, timeout=10).json()
    as_admin = httpx.get(url, headers=admin.headers, timeout=10).json()
    (mine,) = [p for p in as_user if p["name"] == project]
    assert mine["path"] is None
    assert all(p["path"] is None for p in as_user)
    assert str(project_dir) not in json.dumps(as_user)
    (theirs,) = [p for p in as_admin if p["name"] == project]
    assert theirs["path"] == str(project_dir.resolve())


# ---- 8.7 a revoked token on an open socket ------------------------------------------------------


@pytest.mark.parametrize("command", ["start", "resume", "cancel"])
def test_revoked_token_cannot_continue_on_an_open_socket(
    stack: Stack, project_dir: Path, command: str
) -> None:
    acct = make_account()
    project = make_project(project_dir)
    with WsClient(ws_url(stack.api.ws_url, project), acct.token) as ws:
        conv = ws.start()
        with session_scope() as session:
            for token in auth.list_tokens(session, auth.get_user(session, acct.name)):
                assert token.id is not None
                auth.revoke_token(session, token.id)
        if command == "resume":
            ws.send(type="resume", conversation_id=conv)
        elif command == "cancel":
            ws.send(type="cancel")
        else:
            ws.send(type="start", conversation_id=None)
        frames, code = ws.until_closed()
    assert [f["type"] for f in frames] == ["error"], frames
    assert "revoked" in frames[0]["content"]
    assert code == 4001


# ---- 8.8 deeply nested JSON -------------------------------------------------------------------


def test_deeply_nested_frame_gets_an_error_and_the_connection_stays_usable(
    stack: Stack, project_dir: Path
) -> None:
    project, acct = make_project(project_dir), make_account()
    with WsClient(ws_url(stack.api.ws_url, project), acct.token) as ws:
        ws.send_raw("[" * 120_000)
        error = ws.recv()
        assert error["type"] == "error" and "nested" in error["content"], error
        ws.send_raw('{"type": "message", "content": ' + "[" * 50_000 + "]" * 50_000 + "}")
        assert ws.recv()["type"] == "error"
        ws.send(type="ping")
        assert ws.recv() == {"type": "pong"}
        ws.start()
        assert text_of(ws.ask("[[text:2]]")) == "word1 word2"
    assert "RecursionError" not in stack.api.log()


@pytest.mark.parametrize("body", ["[" * 120_000, '{"name": ' + "[" * 100_000])
def test_deeply_nested_rest_body_is_a_client_error(stack: Stack, body: str) -> None:
    admin = make_account(admin=True)
    headers = {**admin.headers, "Content-Type": "application/json"}
    for path in ("/api/projects", "/api/assistant/conversations/demo"):
        resp = httpx.post(f"{stack.api.base_url}{path}", content=body, headers=headers, timeout=10)
        assert 400 <= resp.status_code < 500, (path, resp.status_code, resp.text[:200])
        assert "Traceback" not in resp.text
    assert "RecursionError" not in stack.api.log()


# ---- 8.9 upstream error bodies ----------------------------------------------------------------


def test_upstream_error_body_is_not_shown_but_its_request_id_is(
    stack: Stack, project_dir: Path
) -> None:
    project, acct = make_project(project_dir), make_account()
    with WsClient(ws_url(stack.api.ws_url, project), acct.token) as ws:
        ws.start()
        frames = ws.ask("[[error:400]]")
    error = frames[-1]
    assert error["type"] == "error"
    content = str(error["content"])
    assert "req_demo_error" in content
    for raw in ("{", "invalid_request_error", "simulated", "Error code"):
        assert raw not in content, content
    assert "simulated HTTP 400" in stack.worker.log()  # the detail is in the log


# ---- 8.10b registering broad directories --------------------------------------------------------


@pytest.mark.parametrize("path", ["/tmp", "checkout"])
def test_broad_directories_need_force(stack: Stack, path: str) -> None:
    target = str(REPO) if path == "checkout" else path
    admin = make_account(admin=True)
    url = f"{stack.api.base_url}/api/projects"
    name = f"broad{os.urandom(4).hex()}"
    refused = httpx.post(url, json={"name": name, "path": target}, headers=admin.headers)
    assert refused.status_code == 400
    assert "force" in refused.json()["detail"]
    forced = httpx.post(
        url, json={"name": name, "path": target, "force": True}, headers=admin.headers
    )
    assert forced.status_code == 201, forced.text
    assert httpx.delete(f"{url}/{name}", headers=admin.headers).status_code == 200
