"""Figures from one load run, ratios to the baseline, saturation, and the Markdown table.

Everything here works on plain dicts (what `--json` writes), so a report can be re-rendered
from a saved run.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from benchmarks.loadgen import LoadResult
from benchmarks.procstats import GroupStats
from benchmarks.stamps import percentile

# Saturation: the largest N whose word delay p99 stays under this, with no failed reply.
SATURATION_P99_MS = 100.0
MB = 1024 * 1024

Point = dict[str, Any]


def summarise(
    system: str,
    clients: int,
    load: LoadResult,
    service: GroupStats,
    standin_cpu_s: float,
    loadgen_cpu_s: float,
    others_cpu_s: float = 0.0,
) -> Point:
    replies = load.replies
    ok = [r for r in replies if r.ok]
    delays = [d for r in replies for d in r.delays_ms]
    ttfc = [r.ttfc_ms for r in replies if r.ttfc_ms is not None]
    failures = Counter((r.failure or "").split(":")[0] for r in replies if not r.ok)
    wall = max(load.wall_s, 1e-9)
    return {
        "system": system,
        "clients": clients,
        "replies": len(replies),
        "replies_ok": len(ok),
        "failed": len(replies) - len(ok),
        "failure_kinds": dict(failures),
        "connect_failures": load.connect_failures[:10],
        "ttfc_p50_ms": percentile(ttfc, 50),
        "ttfc_p99_ms": percentile(ttfc, 99),
        "word_p50_ms": percentile(delays, 50),
        "word_p99_ms": percentile(delays, 99),
        "words": len(delays),
        "lost": sum(r.lost for r in replies if r.ok),
        "duplicated": sum(r.duplicated for r in replies),
        "reordered": sum(r.reordered for r in replies),
        "garbled": sum(r.garbled for r in replies),
        "frames_per_reply": sum(r.frames for r in ok) / len(ok) if ok else math.nan,
        "cpu_s": service.cpu_s,
        "cpu_ms_per_reply": 1000 * service.cpu_s / len(ok) if ok else math.nan,
        "cpu_util": service.cpu_s / wall,
        "cpu_ms_per_reply_by_process": {
            k: 1000 * v / len(ok) if ok else math.nan for k, v in service.cpu_s_by_name.items()
        },
        "peak_mb": service.peak_rss / MB,
        "peak_mb_by_process": {k: v / MB for k, v in service.peak_rss_by_name.items()},
        "wall_s": load.wall_s,
        "standin_cpu_util": standin_cpu_s / wall,
        "loadgen_cpu_util": loadgen_cpu_s / wall,
        "others_cpu_util": others_cpu_s / wall,
    }


def saturated(point: Point) -> bool:
    return bool(point["failed"] or not point["word_p99_ms"] < SATURATION_P99_MS)


def saturation(points: Sequence[Point], system: str) -> int | None:
    """The largest measured N below the limit with every smaller N below it too (a lucky
    larger N after a saturated one does not count); None when even the smallest is above."""
    best = None
    for p in sorted((p for p in points if p["system"] == system), key=lambda p: p["clients"]):
        if saturated(p):
            break
        best = p["clients"]
    return best


def saturation_text(points: Sequence[Point], system: str) -> str:
    ns = sorted(p["clients"] for p in points if p["system"] == system)
    sat = saturation(points, system)
    if not ns:
        return "not measured"
    if sat is None:
        return f"below N={ns[0]}"
    if sat == ns[-1]:
        return f"N={sat} or more (not reached in the sweep)"
    above = min(n for n in ns if n > sat)
    return f"N={sat} (saturated at N={above})"


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.1f}" if abs(value) < 10 else f"{value:.0f}"


def _ratio(value: float, base: float) -> str:
    if math.isnan(value) or math.isnan(base) or base <= 0:
        return ""
    return f"{value / base:.1f}x"


def _words_line(p: Point) -> str:
    return f"{p['lost']}/{p['duplicated']}/{p['reordered']}"


def markdown_table(points: Sequence[Point]) -> str:
    head = (
        "| N | system | added time to first chunk p50 / p99 (ms) | word delay p50 / p99 (ms) "
        "| CPU per reply (ms) | peak memory (MB) | failed / replies | lost/dup/reordered words "
        "| stand-in / load gen / others' CPU |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    by_key = {(p["clients"], p["system"]): p for p in points}
    for p in sorted(points, key=lambda p: (p["clients"], p["system"] != "baseline")):
        base = by_key.get((p["clients"], "baseline"))
        rel = base is not None and p["system"] != "baseline"

        def fig(key: str, p: Point = p, base: Point | None = base, rel: bool = rel) -> str:
            text = _ms(p[key])
            if rel and base is not None:
                diff = p[key] - base[key]
                signed = ("+" if diff >= 0 else "-") + _ms(abs(diff))
                notes = [signed] if key.startswith(("ttfc", "word")) else []
                notes += [_ratio(p[key], base[key])] if _ratio(p[key], base[key]) else []
                text += f" ({', '.join(notes)})" if notes else ""
            return text

        rows.append(
            f"| {p['clients']} | {p['system']} | {fig('ttfc_p50_ms')} / {fig('ttfc_p99_ms')} "
            f"| {fig('word_p50_ms')} / {fig('word_p99_ms')} | {fig('cpu_ms_per_reply')} "
            f"| {fig('peak_mb')} | {p['failed']} / {p['replies']} | {_words_line(p)} "
            f"| {100 * p['standin_cpu_util']:.0f}% / {100 * p['loadgen_cpu_util']:.0f}% / "
            f"{100 * p.get('others_cpu_util', 0):.0f}% |"
        )
    return head + "\n".join(rows) + "\n"


def targets(points: Sequence[Point], coalesce_ms: float, at: int = 100) -> list[str]:
    """The issue's numbers 1-4, each met or missed, from this run."""
    lines = []
    service = [p for p in points if p["system"] == "service"]
    clean = all(
        p["failed"] == 0 and p["lost"] + p["duplicated"] + p["reordered"] + p["garbled"] == 0
        for p in service
        if not saturated(p)
    )
    lines.append(
        f"1. no lost/duplicated/reordered words and no failed reply up to saturation: "
        f"{'met' if clean else 'MISSED'}"
    )
    pair = {p["system"]: p for p in points if p["clients"] == at}
    if {"service", "baseline"} <= pair.keys():
        s, b = pair["service"], pair["baseline"]
        checks = [
            ("first chunk p50", s["ttfc_p50_ms"], b["ttfc_p50_ms"] + 15, "baseline + 15 ms"),
            ("first chunk p99", s["ttfc_p99_ms"], b["ttfc_p99_ms"] + 50, "baseline + 50 ms"),
            (
                "word delay p99",
                s["word_p99_ms"],
                b["word_p99_ms"] + coalesce_ms + 10,
                f"baseline + {coalesce_ms:.0f} ms window + 10 ms",
            ),
        ]
        parts = [
            f"{name} {_ms(value)} ms vs at most {_ms(limit)} ({how}): "
            f"{'met' if value <= limit else 'MISSED'}"
            for name, value, limit, how in checks
        ]
        lines.append(f"2. at N={at}: " + "; ".join(parts))
        cpu = s["cpu_ms_per_reply"] / b["cpu_ms_per_reply"]
        lines.append(
            f"3. CPU per reply at N={at}: {cpu:.2f}x the baseline's (at most 1.2x): "
            f"{'met' if cpu <= 1.2 else 'MISSED'}"
        )
    else:
        lines.append(f"2./3. not measured: N={at} was not in the sweep")
    sat_s, sat_b = saturation(points, "service"), saturation(points, "baseline")
    verdict = "not decided by this sweep"
    if sat_b is not None:

        def reached(system: str, sat: int | None) -> bool:
            top = max(p["clients"] for p in points if p["system"] == system)
            return sat is None or sat < top

        if (sat_s or 0) >= 1.5 * sat_b:
            verdict = "met" if reached("baseline", sat_b) else verdict
        elif reached("service", sat_s):
            verdict = "MISSED"
    lines.append(
        f"4. saturation (word delay p99 < {SATURATION_P99_MS:.0f} ms, no failures): service "
        f"{saturation_text(points, 'service')}, baseline {saturation_text(points, 'baseline')}"
        f"; at least 1.5x the baseline's: {verdict}"
    )
    return lines
