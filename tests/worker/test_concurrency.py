"""One worker process holds at least 100 turns at once (turns wait on the network)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from shared.devtools.demo_model import DemoModelServer
from tests.support.client import WsClient, text_of
from tests.support.data import make_account, make_project
from tests.support.processes import StackFactory

N = 100


def test_one_worker_process_holds_100_turns_at_once(
    isolated: StackFactory, model: DemoModelServer, project_dir: Path
) -> None:
    # Its own Redis: only this test's single worker process consumes these turns.
    stack = isolated.stack()
    project = make_project(project_dir)
    acct = make_account()
    url = f"{stack.api.ws_url}/api/assistant/ws/{project}"

    def one_turn(_: int) -> str:
        with WsClient(url, acct.token) as ws:
            ws.start()
            # Each stream is held open by the stand-in until N of them are open at once:
            # the reply says so only if the worker really held N turns together.
            return text_of(ws.ask(f"[[barrier:{N}:60]]", timeout=90))

    with ThreadPoolExecutor(max_workers=N) as pool:
        answers = list(pool.map(one_turn, range(N)))

    bad = [a for a in answers if not a.startswith(f"barrier reached: {N} concurrent")]
    assert not bad, bad[:3]
    assert httpx.get(f"{model.url}/_stats").json()["streams_max"] >= N
