"""Conversations in the browser: reload, New chat, History, delete, Stop."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.browser.pages import ChatPage, words


def test_reload_reopens_the_last_conversation(chat: ChatPage) -> None:
    reply = chat.wait_done(chat.ask("Tell me [[text:12]]"))
    assert chat.words_of(reply) == words(12)
    title = "Tell me [[text:12]]"
    expect(chat.current_title).to_have_text(title)
    chat.reload()
    expect(chat.user_messages).to_have_text(["Tell me [[text:12]]"])
    expect(chat.page.locator(".msg.assistant .body").last).to_have_text(" ".join(words(12)))
    expect(chat.page.locator("#title")).to_have_text(title)
    expect(chat.current_title).to_have_text(title)
    # And it goes on where it was: the next question lands in the same conversation.
    chat.wait_done(chat.ask("[[text:2]]"))
    expect(chat.history).to_have_count(1)
    expect(chat.history.first).to_contain_text("5 messages")


def test_new_chat_history_switch_and_delete(chat: ChatPage) -> None:
    page = chat.page
    chat.wait_done(chat.ask("First conversation [[text:3]]"))
    page.get_by_role("button", name="New chat").click()
    expect(chat.user_messages).to_have_count(0)
    expect(page.locator("#title")).to_have_text("New chat")
    expect(page.locator(".empty-state")).to_be_visible()
    expect(chat.input).to_be_focused()
    chat.wait_done(chat.ask("Second conversation [[text:4]]"))
    expect(chat.history).to_have_count(2)
    expect(chat.current_title).to_have_text("Second conversation [[text:4]]")
    expect(page.locator(".history-open[aria-current=true]")).to_have_count(1)

    # Switch back, by keyboard.
    first = page.locator(".history-open", has_text="First conversation")
    first.focus()
    page.keyboard.press("Enter")
    expect(chat.user_messages).to_have_text(["First conversation [[text:3]]"])
    expect(page.locator(".msg.assistant .body").last).to_have_text("word1 word2 word3")
    expect(chat.current_title).to_have_text("First conversation [[text:3]]")

    # Delete the other one: asked first; Cancel keeps it.
    second = chat.history_item("Second conversation [[text:4]]")
    second.get_by_role("button", name="Delete “Second conversation [[text:4]]”").click()
    dialog = page.locator("#confirm-delete")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Second conversation [[text:4]]")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(chat.history).to_have_count(2)
    second.get_by_role("button", name="Delete “Second conversation [[text:4]]”").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(chat.history).to_have_count(1)
    expect(chat.user_messages).to_have_text(["First conversation [[text:3]]"])  # still open
    # A conversation without a message yet (created over REST) has no title.
    created = httpx.post(
        f"{chat.base_url}/api/assistant/conversations/{chat.project}",
        headers=chat.account.headers,
    )
    assert created.status_code == 200, created.text
    page.get_by_role("button", name="New chat").click()
    chat.wait_done(chat.ask("[[text:1]]"))  # History is refreshed by this message
    untitled = chat.history_item("Untitled conversation")
    expect(untitled).to_contain_text("0 messages")
    untitled.get_by_role("button", name="Delete “Untitled conversation”").click()
    dialog.get_by_role("button", name="Delete").click()
    # Deleting the open conversation leaves a new chat.
    chat.history_item("[[text:1]]").get_by_role("button", name="Delete “[[text:1]]”").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(chat.history).to_have_count(1)
    expect(chat.user_messages).to_have_count(0)

    # Deleting the last one leaves an empty History.
    chat.history.first.get_by_role("button", name="Delete “First conversation [[text:3]]”").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(chat.history).to_have_count(0)
    expect(page.locator("#history-empty")).to_be_visible()
    expect(page.locator("#title")).to_have_text("New chat")
    chat.reload()  # nothing stale is reopened
    expect(chat.user_messages).to_have_count(0)
    expect(page.locator("#history-empty")).to_be_visible()


def test_stop_mid_answer_keeps_the_partial_reply(chat: ChatPage) -> None:
    reply = chat.ask("[[text:600]] [[slow:30]]")
    chat.wait_words(reply, 20)
    chat.page.get_by_role("button", name="Stop").click()
    chat.wait_done(reply, "cancelled")
    expect(reply.locator(".marker")).to_have_text("Stopped")
    shown = chat.words_of(reply)
    assert 20 <= len(shown) < 600
    assert shown == words(len(shown))
    expect(chat.page.locator("#stop")).to_be_hidden()
    expect(chat.page.locator("#send")).to_be_visible()
    # The partial reply was kept: after a reload the stored text is at least what was shown.
    chat.reload()
    stored = chat.page.locator(".msg.assistant").last
    expect(stored.locator(".marker")).to_have_text("Stopped")
    kept = stored.locator(".body").inner_text().split()
    assert kept[: len(shown)] == shown and kept == words(len(kept))
    # And the conversation still works.
    assert chat.words_of(chat.wait_done(chat.ask("[[text:2]]"))) == words(2)
