"""`assistant dev` as a new user runs it: one command, embedded defaults, the offline demo model."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.client import WsClient, text_of
from tests.support.processes import free_port, wait_for


def test_dev_runs_everything_and_answers_with_a_tool_call(tmp_path: Path) -> None:
    project = tmp_path / "demo"
    project.mkdir()
    (project / "notes.txt").write_text("The launch code is 1234.\nSecond line.\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ASSISTANT_", "ANTHROPIC_", "PYTEST"))
    }
    env["ASSISTANT_DATA_DIR"] = str(tmp_path / "data")
    port = free_port()
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        # Run from the project directory: a first run registers it as the first project.
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "assistant"), "dev", "--port", str(port)],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def healthy() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 60, "assistant dev to serve /healthz")
        # Open on loopback: no token needed.
        names = [p["name"] for p in httpx.get(f"http://127.0.0.1:{port}/api/projects").json()]
        assert names == ["demo"]
        with WsClient(f"ws://127.0.0.1:{port}/api/assistant/ws/demo") as ws:
            ws.start()
            frames = ws.ask("What is in notes.txt?", timeout=60)
        assert {
            "type": "tool_call",
            "tool": "read_file",
            "input": {"path": "notes.txt"},
        }.items() <= next(f for f in frames if f["type"] == "tool_call").items()
        assert "The launch code is 1234." in text_of(frames)
        assert frames[-1]["type"] == "response_done"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    output = log_path.read_text()
    assert "OFFLINE DEMO MODEL" in output
    assert "embedded Redis" in output
    # Everything it started is gone: nothing answers on its port any more.
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
        raise AssertionError("the API is still running after Ctrl-C")
    except httpx.HTTPError:
        pass
    redis_port = int(re.search(r"embedded Redis at redis://127\.0\.0\.1:(\d+)", output)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", redis_port)) != 0, "embedded Redis left running"
