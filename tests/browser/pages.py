"""The page as a test sees it: what a person would click, type and read."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from tests.support.data import Account

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
TIMEOUT_MS = 30_000


def say(text: str) -> str:
    """A message that makes the demo model answer exactly `text`."""
    return f"[[say64:{base64.urlsafe_b64encode(text.encode()).decode()}]]"


def words(n: int) -> list[str]:
    return [f"word{i}" for i in range(1, n + 1)]


class ChatPage:
    def __init__(self, page: Page, base_url: str, project: str, account: Account) -> None:
        self.page = page
        self.base_url = base_url
        self.project = project
        self.account = account
        page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)

    @staticmethod
    def sign_in_script(token: str, project: str) -> str:
        """Runs before the page's own code on every load: the token and project a returning
        user would have stored."""
        return (
            "if (location.protocol.startsWith('http')) {"  # not on about:blank
            f"localStorage.setItem('pa.token', {json.dumps(token)});"
            f"if (!localStorage.getItem('pa.project')) "
            f"localStorage.setItem('pa.project', {json.dumps(project)});"
            "}"
        )

    # ---- navigation ----
    def open(self) -> ChatPage:
        self.page.goto(self.base_url + "/")
        self.wait_connected()
        return self

    def reload(self) -> None:
        self.page.reload()
        self.wait_connected()

    def wait_connected(self) -> None:
        expect(self.page.locator("#conn")).to_have_attribute("data-state", "open")
        expect(self.page.locator("#input")).to_be_enabled()

    # ---- the conversation ----
    @property
    def input(self) -> Locator:
        return self.page.locator("#input")

    @property
    def replies(self) -> Locator:
        """Assistant messages that answer a question (not the greeting)."""
        return self.page.locator(".msg.assistant[data-turn-id]")

    @property
    def user_messages(self) -> Locator:
        return self.page.locator(".msg.user")

    def ask(self, text: str) -> Locator:
        """Type and press Enter; the new reply's message."""
        before = self.replies.count()
        self.input.fill(text)
        self.input.press("Enter")
        expect(self.replies).to_have_count(before + 1)
        return self.replies.nth(before)

    def wait_done(self, reply: Locator, status: str = "complete") -> Locator:
        expect(reply).to_have_attribute("data-status", status)
        return reply

    def body(self, reply: Locator) -> Locator:
        return reply.locator(".body")

    def words_of(self, reply: Locator) -> list[str]:
        return self.body(reply).inner_text().split()

    def wait_words(self, reply: Locator, at_least: int) -> None:
        self.page.wait_for_function(
            "([el, n]) => el.querySelector('.body').innerText.split(/\\s+/).filter(Boolean)"
            ".length >= n",
            arg=[reply.element_handle(), at_least],
        )

    def reply_to_last_question(self) -> Locator:
        """The reply right after the last question shown (a new version's, after an edit or a
        regeneration took the old one off the log)."""
        return self.user_messages.last.locator(
            "xpath=following-sibling::article[contains(@class, 'assistant')][1]"
        )

    # ---- versions: edit, regenerate, switch ----
    def version(self, message: Locator) -> Locator:
        """The "2/3" of a message's switcher (absent with one version)."""
        return message.locator(".switch-pos")

    def edit(self, question: Locator, text: str) -> Locator:
        """Edit a question in place and send it; the reply to the new version."""
        question.get_by_role("button", name="Edit this question").click()
        box = question.get_by_role("textbox", name="Edit your question")
        expect(box).to_be_focused()
        box.fill(text)
        box.press("Enter")
        expect(self.user_messages.last.locator(".body")).to_have_text(text)
        reply = self.reply_to_last_question()
        expect(reply).to_have_count(1)
        return reply

    def regenerate(self, reply: Locator) -> Locator:
        """Regenerate a reply (it must be the last one shown); the new version's message."""
        old = reply.get_attribute("data-message-id")
        reply.get_by_role("button", name="Regenerate this reply").click()
        new = self.reply_to_last_question()
        expect(new).not_to_have_attribute("data-message-id", old or "")
        expect(new).to_have_count(1)
        return new

    def switch(self, message: Locator, direction: str) -> None:
        """direction: "Previous" or "Next"."""
        message.get_by_role("button", name=f"{direction} version of", exact=False).click()

    # ---- search ----
    @property
    def search_results(self) -> Locator:
        return self.page.locator("#search-list li")

    def search(self, query: str) -> Locator:
        box = self.page.get_by_role("searchbox", name="Search your conversations")
        box.fill(query)
        box.press("Enter")
        expect(self.page.locator("#search-status")).not_to_have_text("Searching…")
        return self.search_results

    # ---- History ----
    @property
    def history(self) -> Locator:
        return self.page.locator("#history li")

    def history_item(self, title: str) -> Locator:
        return self.page.locator("#history li", has=self.page.get_by_text(title, exact=True))

    @property
    def current_title(self) -> Locator:
        """The open conversation's title in History (expect() waits for a History reload)."""
        return self.page.locator(".history-open[aria-current=true] .history-title")

    # ---- accessibility ----
    def axe_violations(self) -> list[dict[str, object]]:
        """axe-core's violations of impact serious or critical on the page as it is now."""
        if not self.page.evaluate("() => typeof window.axe !== 'undefined'"):
            # Evaluated through the DevTools protocol: the page's CSP (rightly) forbids
            # injecting a script element.
            self.page.evaluate(AXE.read_text())
        result = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
        )
        return [v for v in result if v["impact"] in ("serious", "critical")]
