"""The web page at `/`: its static files, and the security headers every response carries.

The page is plain files (api/static/): markup, a stylesheet, ES modules and the vendored
libraries in api/static/vendor/ (see scripts/vendor-web). Nothing is inlined, so the
Content-Security-Policy can forbid inline script and style altogether: model output that slips
past the sanitiser still cannot run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).resolve().parent / "static"

# No 'unsafe-inline' anywhere: the page has no inline script, style element or style attribute.
_DIRECTIVES = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)
CONTENT_SECURITY_POLICY = "; ".join(_DIRECTIVES)
# A host name or IP literal with an optional port, nothing else (it goes into a header).
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


def page_policy(host: str | None) -> str:
    """The page's policy: CSP Level 3 lets 'self' cover the same host's ws:/wss:, but older
    browsers need the WebSocket origin spelled out, so it is added for a well-formed Host."""
    if not host or not _HOST.fullmatch(host):
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace(
        "connect-src 'self'", f"connect-src 'self' ws://{host} wss://{host}"
    )


SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # For browsers that predate frame-ancestors.
    (b"x-frame-options", b"DENY"),
)


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response (a restrictive CSP costs a JSON answer
    nothing, and covers an error page or a file served as HTML by mistake)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [h for h in SECURITY_HEADERS if h[0] not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


class _RevalidatedStaticFiles(StaticFiles):
    """Static files that browsers revalidate (cheaply, by ETag) before reuse, so an upgraded
    server never runs with yesterday's script."""

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        return response


def install_web(app: FastAPI) -> None:
    """Serve the page at `/` and its files under `/static/`."""
    app.mount("/static", _RevalidatedStaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> FileResponse:
        headers = {
            "Cache-Control": "no-cache",
            "Content-Security-Policy": page_policy(request.headers.get("host")),
        }
        return FileResponse(STATIC_DIR / "index.html", headers=headers)
