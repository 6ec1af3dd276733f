"""The page when the connection breaks: every word of a running reply arrives exactly once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import WebSocketRoute, expect

from shared.db import session_scope
from shared.models import Turn
from tests.browser.conftest import ChatPageFactory
from tests.browser.pages import words
from tests.support.processes import Api, Stack, StackFactory

LONG = "[[text:300]] [[slow:30]]"  # about 9 s of streaming


class SocketTap:
    """Routes the page's WebSockets through Playwright to the real server, so a test can cut
    the connection under the page as a network failure would."""

    def __init__(self) -> None:
        self.routes: list[tuple[WebSocketRoute, WebSocketRoute]] = []

    def __call__(self, ws: WebSocketRoute) -> None:
        self.routes.append((ws, ws.connect_to_server()))

    def cut(self) -> None:
        page_side, server_side = self.routes[-1]
        server_side.close()
        page_side.close(code=4999, reason="network drop")


def test_socket_dropped_mid_answer_resumes_without_losing_or_repeating(
    make_chat: ChatPageFactory, web_api: Api
) -> None:
    chat = make_chat(web_api)
    tap = SocketTap()
    chat.page.route_web_socket("**/api/assistant/ws/**", tap)
    chat.open()
    reply = chat.ask(LONG)
    chat.wait_words(reply, 30)
    tap.cut()
    expect(chat.page.locator("#conn")).not_to_have_attribute("data-state", "open")
    chat.wait_done(reply)
    assert chat.words_of(reply) == words(300)
    assert len(tap.routes) == 2  # one reconnect, no more
    expect(chat.page.locator("#conn")).to_have_attribute("data-state", "open")


@pytest.fixture
def own_api(stack_factory: StackFactory, stack: Stack) -> Iterator[list[Api]]:
    """API processes of this test's own, one after the other on one port (the session stack's
    worker runs the turns)."""
    assert stack.worker.alive()
    apis = [stack_factory.api()]
    try:
        yield apis
    finally:
        apis[-1].stop()


def test_api_restart_mid_answer_resumes_without_losing_or_repeating(
    make_chat: ChatPageFactory, own_api: list[Api], stack_factory: StackFactory
) -> None:
    chat = make_chat(own_api[0]).open()
    reply = chat.ask("[[text:400]] [[slow:30]]")
    chat.wait_words(reply, 30)
    own_api[0].stop()
    # While the server is away the page says so and does not take input.
    expect(chat.page.locator("#conn")).to_contain_text("Connection lost")
    expect(chat.input).to_be_disabled()
    partial = len(chat.words_of(reply))
    own_api.append(stack_factory.restart_api(own_api[0]))
    chat.wait_connected()
    chat.wait_done(reply)
    assert partial < 400
    assert chat.words_of(reply) == words(400)
    expect(chat.page.locator("#banner")).to_be_hidden()


def test_a_re_run_reply_replaces_the_partial_text(
    isolated: StackFactory, make_chat: ChatPageFactory
) -> None:
    """A worker dies mid-reply; the watchdog re-runs the turn (`turn_restarted`)."""
    api = isolated.api()
    first = isolated.worker()
    chat = make_chat(api).open()
    reply = chat.ask("[[text:200]] [[slow:30]]")
    chat.wait_words(reply, 20)
    first.kill9()
    isolated.worker()
    chat.wait_done(reply)
    assert chat.words_of(reply) == words(200)
    turn_id = int(reply.get_attribute("data-turn-id") or 0)
    with session_scope() as session:
        turn = session.get(Turn, turn_id)
        assert turn is not None and turn.attempt == 2  # it really was run twice


def test_the_page_under_another_host_name_talks_to_its_own_server(
    make_chat: ChatPageFactory, web_api: Api
) -> None:
    """Every browser test runs the API on a random port with default settings; here the page is
    also reached as http://localhost:PORT, an origin no setting names."""
    chat = make_chat(web_api)
    chat.base_url = web_api.base_url.replace("127.0.0.1", "localhost")
    chat.open()
    assert chat.page.evaluate("location.host") == f"localhost:{web_api.port}"
    assert chat.words_of(chat.wait_done(chat.ask("[[text:5]]"))) == words(5)
