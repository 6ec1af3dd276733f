"""Which browser origins may open the WebSocket: the server's own, and the configured ones.

A browser sends `Origin` (the page's origin) and `Host` (the server it is talking to) with
every WebSocket handshake, and a page cannot forge either. A page served by this server, on
whatever host name and port it was reached (directly or through a reverse proxy that forwards
`Host`), therefore sends an Origin equal to the request's own origin: that is always allowed.
`ASSISTANT_ALLOWED_ORIGINS` adds other sites' pages.

One exception: DNS rebinding. A foreign site whose name is made to resolve to 127.0.0.1 is
"same origin" with itself. With tokens that gets it nothing (it has none); in open mode, where
no token is asked for, only loopback host names count as our own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

Origin = tuple[str, str, int]  # scheme, lower-case host, port (the default one filled in)


def parse_origin(value: str) -> Origin | None:
    """`scheme://host[:port]` as a comparable triple; None for anything else ("null", paths)."""
    try:
        parts = urlsplit(value.strip())
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not host or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username is not None:
        return None
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme]


def own_origin(scope: Mapping[str, object], host_header: str | None) -> Origin | None:
    """The origin this request was made to: its scheme (after uvicorn's proxy-header handling,
    so X-Forwarded-Proto counts when it comes from a trusted proxy) and its Host header."""
    if not host_header:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(str(scope.get("scheme")), str(scope.get("scheme")))
    return parse_origin(f"{scheme}://{host_header}")


def origin_allowed(
    origin: str,
    scope: Mapping[str, object],
    host_header: str | None,
    allowed: Iterable[str],
    loopback_only: bool,
) -> bool:
    claimed = parse_origin(origin)
    if claimed is None:
        return False
    if claimed in {parse_origin(a) for a in allowed}:
        return True
    own = own_origin(scope, host_header)
    if own is None or claimed != own:
        return False
    return not loopback_only or own[1] in LOOPBACK_HOSTS
