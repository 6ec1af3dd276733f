"""Usage, budgets and model-written titles on the page."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import expect

from shared.db import session_scope
from shared.models import User
from tests.browser.conftest import ChatPageFactory
from tests.browser.pages import ChatPage
from tests.support.processes import StackFactory, wait_for

USAGE = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
TITLES_ON = {"ASSISTANT_TITLE_MODEL": "claude-haiku-4-5"}


def stored(chat: ChatPage) -> dict[str, Any]:
    """The open conversation's REST detail."""
    item = chat.page.locator(".history-open[aria-current=true]")
    expect(item).to_have_count(1)
    current = item.get_attribute("data-id")
    res = httpx.get(
        f"{chat.base_url}/api/assistant/conversations/{chat.project}/{current}",
        headers=chat.account.headers,
    )
    assert res.status_code == 200, res.text
    detail: dict[str, Any] = res.json()
    return detail


def tokens(usage: dict[str, int]) -> int:
    return sum(usage[field] for field in USAGE)


def test_usage_per_reply_per_conversation_and_for_the_month(chat: ChatPage) -> None:
    page = chat.page
    reply = chat.wait_done(chat.ask('[[tool:Read {"file_path": "src/app.py"}]] [[text:3]]'))
    detail = stored(chat)
    (answer,) = [m for m in detail["messages"] if m["turn_id"] is not None]
    spent = tokens(answer)
    assert spent > 0
    summary = reply.locator("details.usage summary")
    expect(summary).to_contain_text(f"{spent:,} tokens")
    expect(reply.locator(".usage-list")).to_be_hidden()  # discreet: the breakdown on demand
    summary.click()
    breakdown = reply.locator(".usage-list")
    expect(breakdown).to_be_visible()
    expect(breakdown).to_contain_text(f"Input{answer['input_tokens']:,}")
    expect(breakdown).to_contain_text(f"Output{answer['output_tokens']:,}")
    expect(breakdown).to_contain_text(f"Model{answer['model']}")
    # The conversation's total beside the composer, and the month's in the sidebar.
    expect(page.locator("#conv-usage")).to_have_text(
        re.compile(rf"^This conversation: {tokens(detail['usage']):,} tokens")
    )
    month = page.locator("#usage-month")
    expect(month).to_be_visible()
    expect(month).to_contain_text(f"{spent:,} tokens")
    expect(month).to_contain_text("no monthly limit")
    # After a reload the stored usage is shown the same way.
    chat.reload()
    expect(chat.replies.first.locator("details.usage summary")).to_contain_text(f"{spent:,} tokens")


def test_over_budget_the_page_shows_the_budget_and_the_refusal(chat: ChatPage) -> None:
    page = chat.page
    chat.wait_done(chat.ask("[[text:3]]"))
    with session_scope() as session:
        user = session.get(User, chat.account.user_id)
        assert user is not None
        user.monthly_token_budget = 10
        session.add(user)
    chat.reload()
    month = page.locator("#usage-month")
    expect(month).to_contain_text("of 10 tokens (100%)")
    expect(month).to_have_attribute("data-over", "true")
    expect(page.locator("#usage-meter")).to_be_visible()
    chat.input.fill("[[text:2]]")
    chat.input.press("Enter")
    banner = page.locator("#banner")
    expect(banner).to_contain_text("You have used your monthly token budget")
    expect(chat.replies).to_have_count(1)
    # A regeneration is refused the same way; the stored reply comes back.
    chat.replies.first.get_by_role("button", name="Regenerate this reply").click()
    expect(banner).to_contain_text("You have used your monthly token budget")
    expect(chat.replies).to_have_count(1)
    expect(chat.version(chat.replies.first)).to_have_count(0)
    expect(banner.get_by_role("button", name="Retry")).to_be_visible()


def test_the_model_title_replaces_the_first_words_shortly_after_the_first_reply(
    isolated: StackFactory, make_chat: ChatPageFactory
) -> None:
    stack = isolated.stack(TITLES_ON)
    chat = make_chat(stack.api).open()
    question = "where does the parser handle comments in this project? [[text:3]]"
    chat.wait_done(chat.ask(question))
    expect(chat.page.locator("#title")).to_have_text("Where does the parser handle comments")
    expect(chat.history.first.locator(".history-title")).to_have_text(
        "Where does the parser handle comments"
    )


def test_a_rename_before_the_model_title_stands(
    isolated: StackFactory, make_chat: ChatPageFactory
) -> None:
    stack = isolated.stack(TITLES_ON)
    chat = make_chat(stack.api).open()
    page = chat.page
    reply = chat.wait_done(chat.ask("how are tests organised here? [[text:2]] [[title-stall:5]]"))
    page.get_by_role("button", name="Rename this conversation").click()
    page.locator("#rename-dialog").get_by_label("Title").fill("My own title")
    page.locator("#rename-dialog").get_by_role("button", name="Save").click()
    expect(page.locator("#title")).to_have_text("My own title")
    turn = reply.get_attribute("data-turn-id")
    wait_for(
        lambda: f"turn {turn}: model title not stored" in stack.worker.log(),
        30,
        "the worker to give up the model's title",
    )
    chat.reload()
    expect(page.locator("#title")).to_have_text("My own title")
    expect(chat.history.first.locator(".history-title")).to_have_text("My own title")
