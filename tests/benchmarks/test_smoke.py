"""A tiny run of the load benchmark, as `scripts/bench` runs it, on both systems.

The real processes (stand-in, baseline, Redis, `cli api`, `cli worker`) with 3 people, 2 turns,
20 fast words: the report has its shape, and no word is lost, repeated or out of order.
Speed itself is not asserted here (benchmarks, not timed tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.systems import REPO

TINY = ["--turns", "2", "--words", "20", "--rate", "200", "--delay-ms", "20"]
TINY += ["--think-max", "0.3", "--ramp", "0.3", "--reply-timeout", "20"]


def run_bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "PYTEST"))}
    outputs = ["--out", str(tmp_path / "b.md"), "--json", str(tmp_path / "b.json")]
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.load", *TINY, *outputs, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )


def test_a_tiny_sweep_reports_both_systems_without_losing_a_word(tmp_path: Path) -> None:
    plot = tmp_path / "b.png"
    done = run_bench(
        tmp_path, "--clients", "3", "--profile-at", "0", "--standin-check", "0", "--plot", str(plot)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "b.json").read_text())
    points: list[dict[str, Any]] = result["points"]
    assert [(p["system"], p["clients"]) for p in points] == [("baseline", 3), ("service", 3)]
    for p in points:
        assert p["replies"] == 6 and p["failed"] == 0, p
        assert (p["lost"], p["duplicated"], p["reordered"], p["garbled"]) == (0, 0, 0, 0), p
        assert p["words"] == 6 * 20
        for key in ("ttfc_p50_ms", "ttfc_p99_ms", "word_p50_ms", "word_p99_ms"):
            assert -50 < p[key] < 20_000, (key, p[key])
        assert p["cpu_s"] > 0 and p["peak_mb"] > 10
    service = points[1]
    assert set(service["peak_mb_by_process"]) == {"api", "worker", "redis"}
    assert set(service["cpu_ms_per_reply_by_process"]) == {"api", "worker", "redis"}
    # The service coalesces deltas; the baseline sends one frame per word.
    assert points[0]["frames_per_reply"] == 20
    assert service["frames_per_reply"] < 20
    doc = (tmp_path / "b.md").read_text()
    assert "| 3 | baseline |" in doc and "| 3 | service |" in doc
    assert "## The issue's numbers, from this run" in doc
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_open_conversations_mode_reports_the_memory_they_take(tmp_path: Path) -> None:
    done = run_bench(
        tmp_path, "--systems", "service", "--open", "8", "--streaming", "2", "--hold", "1"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = json.loads((tmp_path / "b.json").read_text())["open"]
    assert run["system"] == "service"
    assert (run["open"], run["failed_to_open"], run["streaming"]) == (8, 0, 2)
    assert run["replies_ok"] >= 2 and run["replies_failed"] == 0 and run["words_lost"] == 0
    assert run["mb_open"] >= run["mb_before"] > 10
    assert "| service | 8 | 0 | 2 |" in (tmp_path / "b.md").read_text()
