"""Browser fixtures: Debian's chromium driven by Playwright, against the real API and worker.

The browser is the system's `chromium` (scripts/bootstrap installs it with apt-get); Playwright's
own browser downloads are never used. Without a chromium these tests fail and say how to get
one: they are never skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, sync_playwright

from tests.browser.pages import ChatPage
from tests.support.data import make_account, make_project
from tests.support.processes import Api, Stack, StackFactory

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium_path() -> str:
    for candidate in (os.environ.get("ASSISTANT_CHROMIUM"), "chromium", "chromium-browser"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    pytest.fail(
        "no chromium found for the browser tests: run scripts/bootstrap as root on a machine "
        "with apt-get (it installs Debian's chromium package), or install Chromium yourself "
        "and set ASSISTANT_CHROMIUM to its path",
        pytrace=False,
    )


# Package scope, not session: Playwright's sync API keeps an event loop running on the main
# thread while it is started, which would break later tests that call asyncio.run().
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def web_api(stack_factory: StackFactory, stack: Stack) -> Iterator[Api]:
    """An API process serving the page, beside the session stack (its worker runs the turns).

    Default settings, on a random port: the page's own origin needs no configuration."""
    assert stack.worker.alive()
    api = stack_factory.api()
    try:
        yield api
    finally:
        api.stop()


class PageProblems:
    """Uncaught page errors and Content-Security-Policy refusals: a test fails on any."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def console(self, msg: ConsoleMessage) -> None:
        if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text:
            self.found.append(f"CSP: {msg.text}")

    def page_error(self, exc: Exception) -> None:
        self.found.append(f"page error: {exc}")


def new_context(browser: Browser, **options: object) -> tuple[BrowserContext, PageProblems]:
    options = {"viewport": {"width": 1280, "height": 860}, **options}
    context = browser.new_context(**options)  # type: ignore[arg-type]
    problems = PageProblems()
    context.on("console", problems.console)
    context.on("weberror", lambda err: problems.page_error(err.error))
    return context, problems


class ChatPageFactory(Protocol):
    def __call__(self, api: Api, signed_in: bool = True, **options: object) -> ChatPage: ...


@pytest.fixture
def make_chat(browser: Browser, project_dir: Path) -> Iterator[ChatPageFactory]:
    contexts: list[tuple[BrowserContext, PageProblems]] = []

    def factory(api: Api, signed_in: bool = True, **options: object) -> ChatPage:
        acct, project = make_account(), make_project(project_dir)
        context, problems = new_context(browser, **options)
        contexts.append((context, problems))
        if signed_in:
            context.add_init_script(ChatPage.sign_in_script(acct.token, project))
        return ChatPage(context.new_page(), api.base_url, project, acct)

    yield factory
    for context, _ in contexts:
        context.close()
    problems = [p for _, ps in contexts for p in ps.found]
    assert problems == [], problems


@pytest.fixture
def chat(make_chat: ChatPageFactory, web_api: Api) -> ChatPage:
    """A signed-in page on the shared web API, opened and connected."""
    page = make_chat(web_api)
    page.open()
    return page


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
