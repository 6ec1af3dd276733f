"""`assistant status`: the service on one screen, from Redis and the database.

Workers alive (and the turns each holds), the broker's queue depth, the turns queued or running
now with their age, and the turns failed or restarted in the last hour with their reasons.
`--json` gives the same as one JSON object for scripts. What cannot be read (Redis or the
database away) is listed under `problems`, and the command then exits 1.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select

from shared.config import Settings
from shared.db import read_scope
from shared.models import ACTIVE_TURN_STATUSES, Turn, TurnStatus, utcnow
from shared.redis_client import REDIS_ERRORS, create_redis
from shared.turns.restart import recent_restarts
from shared.workers import QUEUE, alive_workers, queue_depth

WINDOW_S = 3600
LISTED = 50  # at most this many turns per list


def collect(settings: Settings) -> dict[str, Any]:
    report: dict[str, Any] = {
        "workers": [],
        "queue": {"name": QUEUE, "depth": None},
        "active_turns": [],
        "failed_last_hour": [],
        "restarted_last_hour": [],
        "problems": [],
    }
    try:
        _from_database(report)
    except Exception as exc:
        report["problems"].append(
            f"database: {_first_line(exc)} (check ASSISTANT_DATABASE_URL; `assistant db upgrade`)"
        )
    try:
        asyncio.run(_from_redis(settings, report))
    except REDIS_ERRORS as exc:
        report["problems"].append(f"redis: {_first_line(exc)}")
    return report


def _from_database(report: dict[str, Any]) -> None:
    now = utcnow()
    since = now - timedelta(seconds=WINDOW_S)
    with read_scope() as session:
        active = session.exec(
            select(Turn).where(col(Turn.status).in_(ACTIVE_TURN_STATUSES)).order_by(col(Turn.id))
        ).all()
        failed = session.exec(
            select(Turn)
            .where(Turn.status == TurnStatus.failed, col(Turn.finished_at) >= since)
            .order_by(col(Turn.finished_at).desc())
            .limit(LISTED)
        ).all()
    report["active_turns"] = [
        {
            **_ids(t),
            "status": t.status,
            "attempt": t.attempt,
            "worker": t.worker,
            "age_s": _seconds(now, t.created_at),
            "running_s": _seconds(now, t.started_at) if t.status == TurnStatus.running else None,
        }
        for t in active
    ]
    report["failed_last_hour"] = [
        {
            **_ids(t),
            "attempt": t.attempt,
            "ago_s": _seconds(now, t.finished_at),
            "reason": t.error or "",
        }
        for t in failed
    ]


async def _from_redis(settings: Settings, report: dict[str, Any]) -> None:
    redis = create_redis(settings)
    try:
        report["queue"]["depth"] = await queue_depth(redis)
        workers = await alive_workers(redis)
        restarts = (await recent_restarts(redis, WINDOW_S))[:LISTED]
    finally:
        await redis.aclose()
    held: dict[str, int] = {}
    for turn in report["active_turns"]:
        if turn["status"] == TurnStatus.running and turn["worker"]:
            held[turn["worker"]] = held.get(turn["worker"], 0) + 1
    now = time.time()
    report["workers"] = [
        {
            "name": w.name,
            "node": w.node,
            "host": w.host,
            "pid": w.pid,
            "state": "draining" if w.draining else "taking turns",
            "turns": held.get(w.name, 0),
            "up_s": round(max(0.0, now - w.started_at)),
            "metrics": w.metrics_url,
        }
        for w in workers
    ]
    report["restarted_last_hour"] = [
        {
            "turn_id": r.turn_id,
            "attempt": r.attempt,
            "ago_s": round(max(0.0, now - r.at)),
            "reason": "worker lost" if r.reason == "worker_lost" else "worker shut down",
            "worker": r.worker or None,
        }
        for r in restarts
    ]


def _ids(turn: Turn) -> dict[str, Any]:
    return {"turn_id": turn.id, "conversation_id": turn.conversation_id, "user_id": turn.user_id}


def _seconds(now: datetime, then: datetime | None) -> int | None:
    return None if then is None else round(max(0.0, (now - then).total_seconds()))


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# ---- rendering -------------------------------------------------------------------------------


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str)


def as_text(report: dict[str, Any]) -> str:
    out: list[str] = []
    workers = report["workers"]
    out.append(f"workers: {len(workers)} alive")
    for w in workers:
        node = f" ({w['node']})" if w["node"] else ""
        metrics = f"  metrics {w['metrics']}" if w["metrics"] else ""
        out.append(
            f"  {w['name']}{node}  {w['state']}  {w['turns']} turn(s)  "
            f"up {_dur(w['up_s'])}{metrics}"
        )
    depth = report["queue"]["depth"]
    out.append(f"queue '{report['queue']['name']}': {'?' if depth is None else depth} waiting")
    active = report["active_turns"]
    out.append(f"active turns: {len(active)}")
    for t in active:
        where = f" on {t['worker']}" if t["worker"] else ""
        out.append(
            f"  turn {t['turn_id']:<7} {t['status']:<8} age {_dur(t['age_s']):>7}  "
            f"attempt {t['attempt']}{where}  conversation {t['conversation_id']} "
            f"user {t['user_id']}"
        )
    failed, restarted = report["failed_last_hour"], report["restarted_last_hour"]
    out.append(f"last hour: {len(failed)} failed, {len(restarted)} restarted")
    for t in failed:
        out.append(f"  turn {t['turn_id']:<7} failed    {_dur(t['ago_s']):>7} ago  {t['reason']}")
    for r in restarted:
        who = f" ({r['worker']})" if r["worker"] else ""
        out.append(
            f"  turn {r['turn_id']:<7} restarted {_dur(r['ago_s']):>7} ago  {r['reason']}{who}, "
            f"re-run as attempt {r['attempt']}"
        )
    for problem in report["problems"]:
        out.append(f"problem: {problem}")
    return "\n".join(out)


def _dur(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
