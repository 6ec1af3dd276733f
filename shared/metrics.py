"""Prometheus metrics that API and worker processes both record (prometheus-client).

Each process keeps its own counters: the API serves them at /metrics (api/metrics.py), each
worker from its own small HTTP server (worker/metrics.py); Prometheus sums across processes.
Everything here is a counter increment in memory: nothing costs a Redis or database round trip.
"""

from __future__ import annotations

from prometheus_client import Counter

TURNS = Counter(
    "assistant_turns",
    "Turns by outcome (complete, cancelled, failed, restarted) and how it came about "
    "(the ending, or why a turn was restarted), counted by the process that made it happen.",
    ["outcome", "how"],
)
CHUNKS_PUBLISHED = Counter(
    "assistant_chunks_published", "Chunks written to Redis by this process, by type.", ["type"]
)
CHUNK_BYTES_PUBLISHED = Counter(
    "assistant_chunk_bytes_published", "Bytes of chunks written to Redis by this process."
)
REDIS_ERRORS = Counter(
    "assistant_redis_errors",
    "Redis commands that failed (connection lost, time-out), by the component that noticed.",
    ["component"],
)
DATABASE_ERRORS = Counter(
    "assistant_database_errors",
    "Database statements or connections that failed, by error class (IntegrityError also "
    "counts races the code resolves, such as a duplicate client_message_id).",
    ["error"],
)


def redis_error(component: str) -> None:
    REDIS_ERRORS.labels(component).inc()


def turn_outcome(outcome: str, how: str) -> None:
    TURNS.labels(outcome, how).inc()
