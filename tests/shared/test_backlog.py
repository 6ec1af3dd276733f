"""autocoder's backlog tools over a features.db made with autocoder's schema."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from shared.backlog import WRITES_DISABLED, has_backlog, run_backlog_tool
from shared.config import Settings
from shared.tools import DENY_GLOBS, ToolError, ToolLimits, limits_from_settings, run_tool
from tests.support.backlog import make_features_db, rows
from tests.support.db import race

NEW = {
    "category": "UI",
    "name": "Dark mode",
    "description": "A dark colour scheme, following the system setting.",
    "steps": ["Add a theme switch", "Respect prefers-color-scheme"],
}


def run(root: Path, name: str, args: dict[str, Any] | None = None, writes: bool = True) -> Any:
    return json.loads(run_backlog_tool(root, name, args or {}, writes=writes))


@pytest.fixture
def backlog(project_dir: Path) -> Path:
    make_features_db(project_dir)
    return project_dir


class TestReading:
    def test_stats(self, backlog: Path) -> None:
        assert run(backlog, "feature_get_stats") == {
            "passing": 2,
            "in_progress": 1,
            "total": 5,
            "percentage": 40.0,
        }

    def test_next_is_the_lowest_priority_not_passing(self, backlog: Path) -> None:
        nxt = run(backlog, "feature_get_next")
        assert (nxt["name"], nxt["priority"], nxt["passes"], nxt["in_progress"]) == (
            "Settings page",
            3,
            False,
            True,
        )
        assert nxt["steps"] == ["Build Settings page", "Check it works"]

    def test_nothing_left(self, project_dir: Path) -> None:
        make_features_db(project_dir, [{"priority": 1, "category": "c", "name": "n", "passes": 1}])
        assert "nothing left" in run(project_dir, "feature_get_next")["message"]

    def test_regression_gives_random_passing_features_within_the_limit(self, backlog: Path) -> None:
        got = run(backlog, "feature_get_for_regression", {"limit": 10})
        assert got["count"] == 2
        assert {f["name"] for f in got["features"]} == {"Login form", "Password reset"}
        assert run(backlog, "feature_get_for_regression", {"limit": 1})["count"] == 1
        assert run(backlog, "feature_get_for_regression")["count"] == 2  # default 3
        for bad in (0, 11, "3", True):
            with pytest.raises(ToolError, match="limit"):
                run(backlog, "feature_get_for_regression", {"limit": bad})

    def test_reading_changes_nothing(self, backlog: Path) -> None:
        db = backlog / "features.db"
        before = (db.read_bytes(), db.stat().st_mtime_ns)
        for name in ("feature_get_stats", "feature_get_next", "feature_get_for_regression"):
            run(backlog, name)
        assert (db.read_bytes(), db.stat().st_mtime_ns) == before
        assert sorted(os.listdir(backlog)) == ["README.md", "features.db", "src"]


class TestWriting:
    def test_create_appends_after_the_highest_priority(self, backlog: Path) -> None:
        created = run(backlog, "feature_create", NEW)
        assert created["success"] is True
        assert (created["priority"], created["passes"], created["in_progress"]) == (6, False, False)
        stored = rows(backlog / "features.db")[-1]
        assert stored["name"] == "Dark mode" and json.loads(stored["steps"]) == NEW["steps"]

    def test_create_bulk_keeps_the_order(self, backlog: Path) -> None:
        more = [{**NEW, "name": f"Feature {i}"} for i in range(3)]
        got = run(backlog, "feature_create_bulk", {"features": more})
        assert got["created"] == 3
        assert [(f["name"], f["priority"]) for f in got["features"]] == [
            ("Feature 0", 6),
            ("Feature 1", 7),
            ("Feature 2", 8),
        ]

    def test_bad_input_is_refused_before_anything_is_written(self, backlog: Path) -> None:
        before = rows(backlog / "features.db")
        bad_inputs: list[tuple[str, dict[str, Any]]] = [
            ("feature_create", {**NEW, "name": ""}),
            ("feature_create", {**NEW, "steps": []}),
            ("feature_create", {**NEW, "steps": "one step"}),
            ("feature_create", {k: v for k, v in NEW.items() if k != "category"}),
            ("feature_create", {**NEW, "category": "x" * 101}),
            ("feature_create_bulk", {"features": [NEW, {**NEW, "description": 3}]}),
            ("feature_create_bulk", {"features": []}),
            ("feature_skip", {"feature_id": "4"}),
        ]
        for name, args in bad_inputs:
            with pytest.raises(ToolError):
                run(backlog, name, args)
        assert rows(backlog / "features.db") == before

    def test_skip_moves_to_the_end_and_clears_in_progress(self, backlog: Path) -> None:
        got = run(backlog, "feature_skip", {"feature_id": 3})
        assert (got["old_priority"], got["new_priority"]) == (3, 6)
        stored = {r["id"]: r for r in rows(backlog / "features.db")}
        assert (stored[3]["priority"], stored[3]["in_progress"]) == (6, 0)
        assert run(backlog, "feature_get_next")["name"] == "Export as CSV"

    def test_skip_refuses_a_passing_or_missing_feature(self, backlog: Path) -> None:
        with pytest.raises(ToolError, match="already passes"):
            run(backlog, "feature_skip", {"feature_id": 1})
        with pytest.raises(ToolError, match="does not exist"):
            run(backlog, "feature_skip", {"feature_id": 99})
        assert rows(backlog / "features.db")[0]["priority"] == 1

    def test_writes_are_refused_without_the_admin_switch(self, backlog: Path) -> None:
        db = backlog / "features.db"
        before = (db.read_bytes(), db.stat().st_mtime_ns)
        for name, args in (
            ("feature_create", NEW),
            ("feature_create_bulk", {"features": [NEW]}),
            ("feature_skip", {"feature_id": 4}),
        ):
            with pytest.raises(ToolError) as err:
                run(backlog, name, args, writes=False)
            assert str(err.value) == WRITES_DISABLED
        assert (db.read_bytes(), db.stat().st_mtime_ns) == before


def _create_many(root: str, n: int) -> list[int]:
    return [
        json.loads(
            run_backlog_tool(
                Path(root), "feature_create", {**NEW, "name": f"p{os.getpid()}-{i}"}, writes=True
            )
        )["priority"]
        for i in range(n)
    ]


def _racer(root: str, n: int, start: Any, out: Any) -> None:
    """A worker process: wait for the other one, then add `n` features."""
    start.wait(60)
    out.put(_create_many(root, n))


class TestRaces:
    def test_two_worker_processes_get_distinct_priorities(self, backlog: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        start, out = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_racer, args=(str(backlog), 40, start, out)) for _ in range(2)]
        for p in procs:
            p.start()
        try:
            priorities = [p for _ in procs for p in out.get(timeout=120)]
        finally:
            for p in procs:
                p.join(30)
        assert sorted(priorities) == list(range(6, 86))
        stored = rows(backlog / "features.db")
        assert len({r["priority"] for r in stored}) == len(stored) == 85

    def test_threads_get_distinct_priorities(self, backlog: Path) -> None:
        priorities = [p for got in race(6, lambda: _create_many(str(backlog), 8)) for p in got]
        assert sorted(priorities) == list(range(6, 54))


class TestConfinement:
    def test_no_database_no_backlog(self, project_dir: Path) -> None:
        assert not has_backlog(project_dir)
        with pytest.raises(ToolError, match=r"no features\.db"):
            run(project_dir, "feature_get_stats")
        # Asking never creates one.
        assert not (project_dir / "features.db").exists()

    def test_a_database_without_the_features_table_is_not_a_backlog(
        self, project_dir: Path
    ) -> None:
        import sqlite3

        sqlite3.connect(project_dir / "features.db").close()
        assert not has_backlog(project_dir)

    def test_symlinked_database_is_refused_even_inside(self, backlog: Path, tmp_path: Path) -> None:
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        shutil.move(backlog / "features.db", outside / "features.db")
        os.symlink(outside / "features.db", backlog / "features.db")
        assert not has_backlog(backlog)
        with pytest.raises(ToolError, match="symbolic link"):
            run(backlog, "feature_create", NEW)
        assert len(rows(outside / "features.db")) == 5
        (backlog / "features.db").unlink()
        make_features_db(backlog / "src")
        os.symlink("src/features.db", backlog / "features.db")
        with pytest.raises(ToolError, match="symbolic link"):
            run(backlog, "feature_get_stats")

    def test_hard_linked_database_follows_the_project_setting(
        self, backlog: Path, tmp_path: Path
    ) -> None:
        os.link(backlog / "features.db", tmp_path / "twin.db")
        assert not has_backlog(backlog)
        with pytest.raises(ToolError, match="hard links"):
            run(backlog, "feature_create", NEW)
        assert has_backlog(backlog, ToolLimits(allow_hardlinks=True))

    def test_the_default_deny_list_allows_it_and_a_configured_one_wins(self, backlog: Path) -> None:
        assert has_backlog(backlog, limits_from_settings(Settings()))
        denied = limits_from_settings(Settings(tool_deny_globs=["features.db"]))
        assert "features.db" not in DENY_GLOBS
        assert not has_backlog(backlog, denied)
        with pytest.raises(ToolError, match="not allowed"):
            run_backlog_tool(backlog, "feature_get_stats", {}, writes=True, limits=denied)

    def test_read_only_tools_still_write_nothing(self, backlog: Path) -> None:
        db = backlog / "features.db"
        before = (db.read_bytes(), db.stat().st_mtime_ns)
        with pytest.raises(ToolError, match="binary"):
            run_tool(backlog, "Read", {"file_path": "features.db"})
        assert "features.db" in run_tool(backlog, "Glob", {"pattern": "*"})
        run_tool(backlog, "Grep", {"pattern": "Dark", "output_mode": "content"})
        assert (db.read_bytes(), db.stat().st_mtime_ns) == before
        assert sorted(os.listdir(backlog)) == ["README.md", "features.db", "src"]

    def test_unknown_tool(self, backlog: Path) -> None:
        with pytest.raises(ToolError, match="unknown"):
            run_backlog_tool(backlog, "feature_mark_passing", {}, writes=True)
