"""Saturation, the issue's numbers and the table, from synthetic points."""

from __future__ import annotations

from typing import Any

from benchmarks.report import markdown_table, saturation, saturation_text, targets


def point(system: str, n: int, word_p99: float, failed: int = 0, **kw: Any) -> dict[str, Any]:
    p = {
        "system": system,
        "clients": n,
        "replies": 2 * n,
        "failed": failed,
        "ttfc_p50_ms": 5.0,
        "ttfc_p99_ms": 10.0,
        "word_p50_ms": 1.0,
        "word_p99_ms": word_p99,
        "cpu_ms_per_reply": 20.0,
        "peak_mb": 100.0,
        "lost": 0,
        "duplicated": 0,
        "reordered": 0,
        "garbled": 0,
        "standin_cpu_util": 0.05,
        "loadgen_cpu_util": 0.1,
        "others_cpu_util": 0.3,
    }
    return p | kw


class TestSaturation:
    def test_the_largest_n_before_the_first_saturated_one(self) -> None:
        points = [
            point("service", 50, 20),
            point("service", 100, 60),
            point("service", 200, 150),
            point("service", 300, 90),  # luck after saturation does not count
        ]
        assert saturation(points, "service") == 100
        assert saturation_text(points, "service") == "N=100 (saturated at N=200)"

    def test_a_failed_reply_saturates_even_with_low_delay(self) -> None:
        points = [point("baseline", 50, 5), point("baseline", 100, 5, failed=1)]
        assert saturation(points, "baseline") == 50

    def test_not_reached_and_below_the_sweep(self) -> None:
        points = [point("baseline", 50, 5), point("service", 50, 500)]
        assert "not reached" in saturation_text(points, "baseline")
        assert saturation(points, "service") is None
        assert saturation_text(points, "service") == "below N=50"


class TestTargets:
    def test_met_and_missed_at_n_100(self) -> None:
        points = [
            point("baseline", 100, 3, ttfc_p50_ms=4, ttfc_p99_ms=10, cpu_ms_per_reply=28),
            point("service", 100, 47, ttfc_p50_ms=61, ttfc_p99_ms=50, cpu_ms_per_reply=62),
            point("baseline", 300, 50),
            point("baseline", 500, 215),
            point("service", 300, 789, failed=4),
        ]
        lines = targets(points, coalesce_ms=40)
        assert lines[0].endswith("met")
        assert "first chunk p50 61 ms vs at most 19 (baseline + 15 ms): MISSED" in lines[1]
        assert "first chunk p99 50 ms vs at most 60 (baseline + 50 ms): met" in lines[1]
        assert "word delay p99 47 ms vs at most 53" in lines[1]
        assert "2.21x" in lines[2] and lines[2].endswith("MISSED")
        assert "service N=100 (saturated at N=300)" in lines[3]
        assert lines[3].endswith("MISSED")

    def test_lost_words_below_saturation_miss_number_one(self) -> None:
        points = [point("service", 50, 10, duplicated=1), point("baseline", 50, 5)]
        assert targets(points, coalesce_ms=40)[0].endswith("MISSED")


def test_the_table_shows_differences_and_ratios_to_the_baseline() -> None:
    table = markdown_table([point("service", 100, 47), point("baseline", 100, 3)])
    rows = table.strip().splitlines()
    assert len(rows) == 4
    assert rows[2].startswith("| 100 | baseline |")
    assert "47 (+44, 15.7x)" in rows[3]
    assert "| 0 / 200 | 0/0/0 | 5% / 10% / 30% |" in rows[3]
