"""The page talks to the server that serves it, on any host name and port.

`assistant api --port N` serves the page at http://127.0.0.1:N/; the browser opens its
WebSocket with `Origin: http://127.0.0.1:N`. A request whose Origin is the server's own origin
(scheme, host and port of its Host header) is always allowed; `ASSISTANT_ALLOWED_ORIGINS` adds
others. These APIs are built from the defaults: no allow-list is set.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.origins import origin_allowed, parse_origin
from tests.support.client import WsClient
from tests.support.data import Account, make_account, make_project
from tests.support.processes import Api, Stack, StackFactory


def path(project: str) -> str:
    return f"/api/assistant/ws/{project}"


def as_host(api: Api, host: str, project: str, token: str | None, **kw: Any) -> WsClient:
    """A WebSocket to `api` whose request names `host` (with port, if any) in its Host header,
    as a browser behind a reverse proxy that forwards Host would send it."""
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    try:
        return WsClient(f"ws://{host}{path(project)}", token, sock=sock, **kw)
    except BaseException:
        sock.close()
        raise


def assert_works(ws: WsClient) -> None:
    ws.send(type="start")
    frames = ws.recv_until(lambda m: m["type"] in ("response_done", "error"))
    assert frames[0]["type"] == "conversation_created", frames
    assert frames[-1] == {"type": "response_done", "status": "complete"}


def assert_refused_4003(ws: WsClient) -> None:
    frames, code = ws.until_closed()
    assert frames == [{"type": "error", "content": "Origin not allowed"}]
    assert code == 4003


@pytest.fixture
def acct() -> Account:
    return make_account()


@pytest.fixture
def project(project_dir: Path) -> str:
    return make_project(project_dir)


class TestOwnOrigin:
    def test_the_page_served_on_a_random_port_opens_its_websocket(
        self, stack: Stack, acct: Account, project: str
    ) -> None:
        # `assistant api --port <random>`, nothing configured: the page's own origin works.
        page = httpx.get(f"{stack.api.base_url}/", timeout=10)
        assert page.status_code == 200 and "/static/js/main.js" in page.text
        # The page's socket module opens the WebSocket at the page's own host.
        socket_js = httpx.get(f"{stack.api.base_url}/static/js/socket.js", timeout=10)
        assert "${location.host}/api/assistant/ws/" in socket_js.text
        assert stack.api.port != 8000
        for host in ("127.0.0.1", "localhost"):
            origin = f"http://{host}:{stack.api.port}"
            with as_host(
                stack.api, f"{host}:{stack.api.port}", project, acct.token, origin=origin
            ) as ws:
                assert_works(ws)

    def test_a_foreign_origin_is_still_refused(
        self, stack: Stack, acct: Account, project: str
    ) -> None:
        with WsClient(
            f"{stack.api.ws_url}{path(project)}", acct.token, origin="http://evil.example"
        ) as ws:
            assert_refused_4003(ws)

    @pytest.mark.parametrize(
        "origin",
        [
            "http://127.0.0.1",  # another port: another origin
            "http://127.0.0.1:1",
            "https://127.0.0.1:{port}",  # another scheme
            "http://127.0.0.1:{port}.evil.example",
            "null",
        ],
    )
    def test_near_misses_of_the_own_origin_are_refused(
        self, stack: Stack, acct: Account, project: str, origin: str
    ) -> None:
        with WsClient(
            f"{stack.api.ws_url}{path(project)}",
            acct.token,
            origin=origin.format(port=stack.api.port),
        ) as ws:
            assert_refused_4003(ws)

    def test_behind_a_tls_proxy_that_forwards_host(
        self, stack: Stack, acct: Account, project: str
    ) -> None:
        # The proxy terminates TLS on :443 (omitted from Origin) and says so in
        # X-Forwarded-Proto; uvicorn trusts it from 127.0.0.1, as with `--proxy-headers`.
        with as_host(
            stack.api,
            "chat.example.com",
            project,
            acct.token,
            origin="https://chat.example.com",
            headers={"X-Forwarded-Proto": "https"},
        ) as ws:
            assert_works(ws)

    def test_behind_a_proxy_on_another_port(
        self, stack: Stack, acct: Account, project: str
    ) -> None:
        with as_host(
            stack.api,
            "Chat.Example.com:8443",
            project,
            acct.token,
            origin="https://chat.example.com:8443",
            headers={"X-Forwarded-Proto": "https"},
        ) as ws:
            assert_works(ws)

    def test_https_origin_over_plain_http_is_refused(
        self, stack: Stack, acct: Account, project: str
    ) -> None:
        # Without the proxy's word the connection is plain http: the scheme does not match.
        with as_host(
            stack.api, "chat.example.com", project, acct.token, origin="https://chat.example.com"
        ) as ws:
            assert_refused_4003(ws)


@pytest.fixture(scope="module")
def open_api(stack: Stack, stack_factory: StackFactory) -> Iterator[Api]:
    """An API in open mode (no tokens: loopback development), origins from the defaults."""
    api = stack_factory.api({"ASSISTANT_AUTH_MODE": "open"})
    assert stack.worker.alive()
    yield api
    api.stop()


class TestOpenMode:
    def test_own_origin_on_loopback_works(self, open_api: Api, project: str) -> None:
        host = f"127.0.0.1:{open_api.port}"
        with as_host(open_api, host, project, None, origin=f"http://{host}") as ws:
            assert_works(ws)

    def test_dns_rebinding_is_refused(self, open_api: Api, project: str) -> None:
        # A foreign page whose name now resolves to 127.0.0.1 is "same origin" with itself;
        # with no token to stop it, it must not get in.
        host = f"rebind.example:{open_api.port}"
        with as_host(open_api, host, project, None, origin=f"http://{host}") as ws:
            assert_refused_4003(ws)


# ---- the rule itself ------------------------------------------------------------------------


class TestRule:
    @pytest.mark.parametrize(
        ("value", "parsed"),
        [
            ("http://127.0.0.1:9000", ("http", "127.0.0.1", 9000)),
            ("https://Chat.Example.com", ("https", "chat.example.com", 443)),
            ("http://example.com:80", ("http", "example.com", 80)),
            ("http://example.com/", ("http", "example.com", 80)),
            ("http://[::1]:8000", ("http", "::1", 8000)),
            ("null", None),
            ("", None),
            ("file://", None),
            ("ftp://example.com", None),
            ("http://example.com/page", None),
            ("http://user@example.com", None),
            ("http://example.com:99999", None),
            ("http://example.com:80.evil.example", None),
        ],
    )
    def test_origins_are_compared_as_scheme_host_and_port(
        self, value: str, parsed: tuple[str, str, int] | None
    ) -> None:
        assert parse_origin(value) == parsed

    @pytest.mark.parametrize(
        ("origin", "scheme", "host", "allowed"),
        [
            ("http://127.0.0.1:9000", "ws", "127.0.0.1:9000", True),
            ("http://127.0.0.1:9000", "ws", "127.0.0.1:9001", False),
            ("https://chat.example.com", "wss", "chat.example.com", True),
            ("https://chat.example.com", "wss", "chat.example.com:443", True),
            ("http://chat.example.com", "wss", "chat.example.com", False),
            ("https://chat.example.com", "ws", "chat.example.com", False),
            ("http://[::1]:9000", "ws", "[::1]:9000", True),
            ("http://a.example", "ws", None, False),
            ("http://a.example", "ws", "a.example/../b", False),
        ],
    )
    def test_the_own_origin_is_the_scheme_and_host_of_the_request(
        self, origin: str, scheme: str, host: str | None, allowed: bool
    ) -> None:
        scope = {"type": "websocket", "scheme": scheme}
        assert origin_allowed(origin, scope, host, [], loopback_only=False) is allowed

    def test_configured_origins_are_allowed_from_any_host(self) -> None:
        scope = {"type": "websocket", "scheme": "ws"}
        configured = ["https://app.example.com", "http://localhost:5173/"]
        for origin in (
            "https://app.example.com",
            "https://APP.example.com:443",
            "http://localhost:5173",
        ):
            assert origin_allowed(origin, scope, "api.example.com", configured, loopback_only=True)
        assert not origin_allowed(
            "https://app.example.com:8443", scope, "api.example.com", configured, False
        )

    def test_in_open_mode_only_loopback_names_are_the_own_origin(self) -> None:
        scope = {"type": "websocket", "scheme": "ws"}
        for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000"):
            origin = f"http://{host}"
            assert origin_allowed(origin, scope, host, [], loopback_only=True), host
        assert not origin_allowed(
            "http://rebind.example:8000", scope, "rebind.example:8000", [], loopback_only=True
        )
