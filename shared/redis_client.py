"""The one way every process builds its Redis client, and the errors that mean "Redis is away".

Responses are decoded (str, never bytes), so no caller has to guess what it got back. The
time-outs are chosen once: a connect that hangs, or a command that never answers, is an error
within seconds instead of a stalled turn or relay.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.config import Settings

# What a lost or restarting Redis raises; callers retry, degrade or report, never crash.
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)

CONNECT_TIMEOUT_S = 3.0
COMMAND_TIMEOUT_S = 5.0
HEALTH_CHECK_INTERVAL_S = 15
# A pooled connection may have died with a Redis restart; a command (or MULTI) on it fails once
# and succeeds on a fresh connection. `from_url` builds connections without retries, so ask.
RETRIES = 3


def create_redis(settings: Settings) -> Redis:
    """An asyncio client for the configured Redis; one per process, shared by all its tasks.

    Its pool waits for a free connection when all are busy (up to the command time-out) rather
    than failing: hundreds of conversations starting at once each need one for a moment, and
    redis-py's default pool refuses the 101st outright."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_dsn,
        max_connections=settings.redis_max_connections,
        timeout=COMMAND_TIMEOUT_S,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=COMMAND_TIMEOUT_S,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES),
    )
    return Redis.from_pool(pool)  # closing the client closes its pool
