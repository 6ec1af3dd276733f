"""A worker process's Prometheus metrics, and the small HTTP server that exposes them.

Each worker process serves its own registry (no multiprocess mode: one worker process holds
hundreds of turns on one event loop, so there is one registry per process and nothing to
merge). It listens on ASSISTANT_WORKER_METRICS_PORT, or the next free port when several
workers share a host; the port it got is announced with its presence (`assistant status`
lists it). The server has no login: it binds ASSISTANT_WORKER_METRICS_ADDRESS, loopback unless
a deployment puts it on a private network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from shared.config import Settings

log = logging.getLogger(__name__)

PORTS_TRIED = 32

FIRST_CHUNK = Histogram(
    "assistant_turn_first_chunk_seconds",
    "From a worker starting a turn (claimed and loaded) to its first chunk: model latency.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60),
)
TURN_DURATION = Histogram(
    "assistant_turn_duration_seconds",
    "One attempt of a turn in a worker, from claim to its end, by how it ended.",
    ["outcome"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
MODEL_ERRORS = Counter(
    "assistant_model_errors",
    "Turns failed by the model service (after the SDK's own retries), by kind.",
    ["kind"],
)
TOOL_CALLS = Counter(
    "assistant_tool_calls",
    "Tool calls run for the model, by tool and outcome.",
    ["tool", "outcome"],
)
ACTIVE_TURNS = Gauge("assistant_worker_turns_active", "Turns this worker process is running.")
DRAINING = Gauge("assistant_worker_draining", "1 while this worker process is shutting down.")


def track(active: Callable[[], float], draining: Callable[[], float]) -> None:
    """Gauges read at scrape time from the worker's own state (no bookkeeping per turn)."""
    ACTIVE_TURNS.set_function(active)
    DRAINING.set_function(draining)


def serve(settings: Settings) -> int | None:
    """Start the metrics server; the port it listens on, None when off or no port was free."""
    first = settings.worker_metrics_port
    if first <= 0:
        return None
    address = settings.worker_metrics_address
    for port in range(first, first + PORTS_TRIED):
        try:
            start_http_server(port, addr=address)
        except OSError:
            continue
        log.info("metrics on http://%s:%s/metrics", address, port)
        return port
    log.warning(
        "no free port for metrics in %s-%s on %s; serving none",
        first,
        first + PORTS_TRIED - 1,
        address,
    )
    return None
