"""kombu's Redis transport, with one fix: a channel keeps its pool when its connection breaks.

Why (Celery 5.7.0 with kombu 5.7.0; 5.6.x did not close the connection here): when the broker
connection is lost, the consumer's `on_connection_error_after_connected` first calls
`Connection.collect()`, which detaches the transport (`transport.client = None`), and then
`Connection.close()`. Closing the channel drops its connection pools (`_disconnect_pools` sets
`_pool = None`) and only then restores the unacknowledged messages, i.e. the turns running right
now under `acks_late`. Restoring needs a client, the dropped pool is rebuilt from
`transport.client.hostname`, and the transport has no client any more:
`AttributeError: 'NoneType' object has no attribute 'hostname'`. `ignore_errors` around the
close only swallows connection errors, so the AttributeError ends the consumer ("Unrecoverable
error") and the worker exits with status 0. The running turns' late acks take the same path.

The fix: disconnect the pool's sockets as kombu does, but keep the pool object. A redis-py
pool that has been disconnected opens new connections on its next use, with the parameters it
was built with, so the restore and the late acks reach Redis again (or fail with a connection
error, which Celery handles) instead of asking the detached transport. After a fork redis-py
resets an inherited pool by itself (it checks the process id), so keeping it is safe there too.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis

# What Celery's `broker_transport` setting names for redis:// and rediss:// broker URLs.
TRANSPORT = "worker.broker_transport:Transport"
SCHEMES = ("redis", "rediss")


class Channel(kombu_redis.Channel):
    def _disconnect_pools(self) -> None:
        pool = self._pool
        super()._disconnect_pools()  # type: ignore[no-untyped-call]
        # super() disconnected it; keep it so later restores and acks can reconnect.
        self._pool = pool


class Transport(kombu_redis.Transport):
    Channel = Channel


def transport_for(broker_url: str) -> str | None:
    """Our transport for plain Redis URLs; None (kombu's choice) for sentinel and others."""
    scheme = broker_url.split("://", 1)[0].lower() if "://" in broker_url else ""
    return TRANSPORT if scheme in SCHEMES else None
