"""Benchmark: what coalescing text deltas buys, measured as ratios within one run.

Runs the real processes (Redis, the model stand-in, API, one worker) twice, with
ASSISTANT_COALESCE_MS=0 (publish every delta) and with the default window, and streams the same
long replies through each: chunks and bytes that reach the client, and wall time per turn.

    .venv/bin/python -m benchmarks.stream_coalescing [--words 3000] [--turns 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="assistant-bench-"))
os.environ["ASSISTANT_DATABASE_URL"] = f"sqlite:///{_TMP / 'bench.db'}"

from shared.devtools.demo_model import DemoModelServer  # noqa: E402
from shared.devtools.redis_server import RedisServer  # noqa: E402
from shared.migrate import upgrade  # noqa: E402
from tests.support.client import WsClient, text_of, turn_frames  # noqa: E402
from tests.support.data import make_account, make_project  # noqa: E402
from tests.support.processes import StackFactory  # noqa: E402


def run(
    coalesce_ms: str, words: int, turns: int, model_url: str, project_dir: Path
) -> dict[str, float]:
    with RedisServer(data_dir=_TMP / f"redis-{coalesce_ms}") as redis:
        factory = StackFactory(_TMP, os.environ["ASSISTANT_DATABASE_URL"], redis.url, model_url)
        try:
            stack = factory.stack({"ASSISTANT_COALESCE_MS": coalesce_ms})
            acct, project = make_account(), make_project(project_dir)
            chunks, sizes, times = [], [], []
            with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
                ws.start()
                for _ in range(turns):
                    started = time.perf_counter()
                    frames = ws.ask(f"[[text:{words}]]", timeout=300)
                    times.append(time.perf_counter() - started)
                    turn = turn_frames(frames)
                    assert text_of(turn).endswith(f"word{words}")
                    chunks.append(len(turn))
                    sizes.append(sum(len(json.dumps(f)) for f in turn))
        finally:
            factory.stop_all()
    return {
        "chunks": statistics.mean(chunks),
        "bytes": statistics.mean(sizes),
        "seconds": statistics.median(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--words", type=int, default=3000)
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    upgrade(os.environ["ASSISTANT_DATABASE_URL"])
    project_dir = _TMP / "project"
    project_dir.mkdir()
    (project_dir / "README.md").write_text("# bench\n")
    with DemoModelServer() as model:
        per_delta = run("0", args.words, args.turns, model.url, project_dir)
        coalesced = run("40", args.words, args.turns, model.url, project_dir)
    print(f"reply of {args.words} words, {args.turns} turns each")
    for name, result in (("per delta", per_delta), ("coalesced 40 ms", coalesced)):
        print(
            f"  {name:16} chunks {result['chunks']:8.0f}  bytes {result['bytes']:9.0f}  "
            f"median turn {result['seconds']:.3f} s"
        )
    chunk_ratio = per_delta["chunks"] / coalesced["chunks"]
    time_ratio = per_delta["seconds"] / coalesced["seconds"]
    print(f"  ratio (per delta / coalesced): chunks {chunk_ratio:.1f}x, time {time_ratio:.2f}x")


if __name__ == "__main__":
    main()
