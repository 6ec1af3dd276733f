"""Benchmark: what prompt caching saves on a conversation, in input tokens per question.

Runs the real processes (Redis, the model stand-in, API, one worker) with prompt caching on and
with ASSISTANT_PROMPT_CACHE=off, and asks the same questions in one conversation, each a
tool-use turn (the model reads a file, then answers). The stand-in simulates the cache as the
Messages API documents it and reports the usage of every request; tokens are its estimate
(a quarter of the JSON length), the same in both runs, so the ratios are what matters.

    .venv/bin/python -m benchmarks.prompt_cache [--turns 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

_TMP = Path(tempfile.mkdtemp(prefix="assistant-bench-"))
os.environ["ASSISTANT_DATABASE_URL"] = f"sqlite:///{_TMP / 'bench.db'}"

from shared.devtools.demo_model import DemoModelServer  # noqa: E402
from shared.devtools.redis_server import RedisServer  # noqa: E402
from shared.migrate import upgrade  # noqa: E402
from tests.support.client import WsClient  # noqa: E402
from tests.support.data import make_account, make_project  # noqa: E402
from tests.support.model_log import answered  # noqa: E402
from tests.support.processes import StackFactory  # noqa: E402

QUESTION = 'Question {i}: what does it do? [[tool:Read {{"file_path": "src/app.py"}}]] [[text:80]]'


def run(cache: str, turns: int, model_url: str, project_dir: Path) -> list[list[dict[str, Any]]]:
    """The usage of each request, grouped by question."""
    with RedisServer(data_dir=_TMP / f"redis-{cache}") as redis:
        factory = StackFactory(_TMP, os.environ["ASSISTANT_DATABASE_URL"], redis.url, model_url)
        try:
            stack = factory.stack({"ASSISTANT_PROMPT_CACHE": cache})
            acct, project = make_account(), make_project(project_dir)
            per_turn = []
            with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
                ws.start()
                for i in range(1, turns + 1):
                    seen = len(answered(model_url, project))
                    assert ws.ask(QUESTION.format(i=i), timeout=120)[-1]["type"] == "response_done"
                    per_turn.append([r["usage"] for r in answered(model_url, project)[seen:]])
        finally:
            factory.stop_all()
    return per_turn


def paid(usage: dict[str, Any]) -> float:
    """Input tokens at list-price weights: cache writes cost 1.25x, reads 0.1x."""
    return float(
        usage["input_tokens"]
        + 1.25 * usage["cache_creation_input_tokens"]
        + 0.1 * usage["cache_read_input_tokens"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    upgrade(os.environ["ASSISTANT_DATABASE_URL"])
    project_dir = _TMP / "project"
    (project_dir / "src").mkdir(parents=True)
    (project_dir / "README.md").write_text("# bench\n\n" + "A line of documentation.\n" * 160)
    (project_dir / "src" / "app.py").write_text("def main():\n    return 42\n" * 40)
    with DemoModelServer() as model:
        results = {c: run(c, args.turns, model.url, project_dir) for c in ("on", "off")}
    print(f"{args.turns} questions in one conversation, each a tool round and an answer")
    print("  question  cache  requests  uncached in  cache read  cache write  weighted")
    for cache, per_turn in results.items():
        for i, usages in enumerate(per_turn, start=1):
            fresh = sum(u["input_tokens"] for u in usages)
            read = sum(u["cache_read_input_tokens"] for u in usages)
            wrote = sum(u["cache_creation_input_tokens"] for u in usages)
            weighted = sum(paid(u) for u in usages)
            print(
                f"  {i:8}  {cache:5}  {len(usages):8}  {fresh:11}  {read:10}  {wrote:11}  "
                f"{weighted:8.0f}"
            )
    on, off = results["on"], results["off"]
    second_on = sum(paid(u) for u in on[1])
    print(
        f"  second question with caching: {second_on / sum(paid(u) for u in on[0]):.2f} of the "
        f"first, {second_on / sum(paid(u) for u in off[1]):.2f} of the same without caching"
    )
    total_on = sum(paid(u) for t in on for u in t)
    total_off = sum(paid(u) for t in off for u in t)
    print(f"  whole conversation: {total_on / total_off:.2f} of the cost without caching")


if __name__ == "__main__":
    main()
