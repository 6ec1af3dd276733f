"""Reading py-spy's collapsed stacks, and process figures from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.procstats import ProcessGroup, cpu_seconds, descendants, rss_bytes
from benchmarks.pyspy import markdown, package_of, parse_frame, read_stacks, summarise

REPO = Path("/repo")
SITE = "/repo/.venv/lib/python3.11/site-packages"
MAIN = "<module> (/repo/cli/__main__.py:3)"
RUN = "run (/repo/worker/turn.py:10)"
STACKS = f"""\
{MAIN};{RUN};execute ({SITE}/sqlalchemy/engine/base.py:1) 60
{MAIN};{RUN};publish (/repo/shared/channels.py:5);dumps (/usr/lib/python3.11/json/__init__.py:2) 30
{MAIN};select ({SITE}/redis/asyncio/client.py:9) 10
"""


class TestPySpy:
    def test_frames_and_owners(self) -> None:
        assert parse_frame("run (/repo/worker/turn.py:10)") == ("run", "/repo/worker/turn.py")
        assert package_of(f"{SITE}/sqlalchemy/engine/base.py") == "sqlalchemy"
        assert package_of("/repo/shared/channels.py", REPO) == "shared/"
        assert package_of("/usr/lib/python3.11/json/__init__.py") == "stdlib json"

    def test_shares_by_library_self_and_inclusive(self, tmp_path: Path) -> None:
        path = tmp_path / "worker.txt"
        path.write_text(STACKS)
        summary = summarise(read_stacks(path), REPO)
        assert summary.samples == 100
        assert summary.by_activity == [
            ("database (SQLAlchemy, SQLite/psycopg)", 0.6),
            ("pydantic / JSON (chunks, messages)", 0.3),
            ("Redis client", 0.1),
        ]
        assert summary.by_package == [("sqlalchemy", 0.6), ("stdlib json", 0.3), ("redis", 0.1)]
        ours = dict(summary.our_functions)
        assert ours["run (worker/turn.py)"] == 0.9
        assert ours["publish (shared/channels.py)"] == 0.3
        assert ours["<module> (cli/__main__.py)"] == 1.0
        text = markdown("worker", summary, rate=100)
        assert "100 samples holding the GIL (~1.0 s at 100 Hz)" in text
        assert "| sqlalchemy | 60% |" in text


class TestProcStats:
    def test_cpu_and_memory_of_a_process_tree(self) -> None:
        child = subprocess.Popen(
            [sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<0.6: pass"]
        )
        try:
            assert child.pid in descendants([os.getpid()])
            group = ProcessGroup({"me": os.getpid()})
            group.begin()
            child.wait(timeout=10)
            started = time.process_time()
            while time.process_time() - started < 0.3:
                pass
            stats = group.end()
        finally:
            child.kill()
            child.wait()
        assert stats.cpu_s >= 0.2
        assert stats.peak_rss >= rss_bytes(os.getpid()) // 2 > 0
        assert set(stats.peak_rss_by_name) == {"me"}
        assert stats.cpu_s_by_name["me"] == stats.cpu_s
        assert cpu_seconds(2**22 + 12345) == 0.0  # no such process
