"""Versions in the browser: edit a question, regenerate a reply, "< 2/3 >" between them."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, expect

from tests.browser.pages import ChatPage, words


def stored_id(message: Locator) -> str:
    """The message's id, once the page knows it (response_done, or the stored path)."""
    expect(message).to_have_attribute("data-message-id", re.compile(r"^\d+$"))
    return message.get_attribute("data-message-id") or ""


def test_an_edited_question_is_a_new_branch_and_the_switcher_flips_between_them(
    chat: ChatPage,
) -> None:
    page = chat.page
    chat.wait_done(chat.ask("First question [[text:3]]"))
    chat.wait_done(chat.ask("Second question [[text:2]]"))
    first = chat.user_messages.first
    expect(chat.version(first)).to_have_count(0)  # one version: no switcher

    reply = chat.wait_done(chat.edit(first, "Edited question [[echo]]"))
    # The new branch replaces what followed, and the model got only its path: the question.
    expect(chat.user_messages.locator(".body")).to_have_text(["Edited question [[echo]]"])
    expect(chat.body(reply)).to_contain_text('echo: {"messages":1,')
    expect(chat.version(chat.user_messages.first)).to_have_text("2/2")

    chat.switch(chat.user_messages.first, "Previous")
    expect(chat.user_messages.locator(".body")).to_have_text(
        ["First question [[text:3]]", "Second question [[text:2]]"]
    )
    expect(chat.version(chat.user_messages.first)).to_have_text("1/2")
    expect(chat.replies.locator(".body")).to_have_text([" ".join(words(3)), " ".join(words(2))])
    # The arrow pressed is at its end now: the keyboard focus moved to the other one.
    expect(
        chat.user_messages.first.get_by_role("button", name="Previous version of this question")
    ).to_be_disabled()
    expect(page.get_by_role("button", name="Next version of this question")).to_be_focused()

    # A question asked now continues the branch shown, and only it reaches the model.
    third = chat.wait_done(chat.ask("Third question [[echo]]"))
    expect(chat.body(third)).to_contain_text('echo: {"messages":5,')

    chat.reload()  # the branch shown is the one stored
    expect(chat.user_messages.locator(".body")).to_have_text(
        ["First question [[text:3]]", "Second question [[text:2]]", "Third question [[echo]]"]
    )
    next_button = chat.user_messages.first.get_by_role(
        "button", name="Next version of this question"
    )
    next_button.focus()
    page.keyboard.press("Enter")  # by keyboard
    expect(chat.user_messages.locator(".body")).to_have_text(["Edited question [[echo]]"])
    expect(chat.version(chat.user_messages.first)).to_have_text("2/2")


def test_cancelling_an_edit_keeps_the_question(chat: ChatPage) -> None:
    chat.wait_done(chat.ask("Keep me [[text:2]]"))
    question = chat.user_messages.first
    question.get_by_role("button", name="Edit this question").click()
    box = question.get_by_role("textbox", name="Edit your question")
    expect(box).to_have_value("Keep me [[text:2]]")
    box.fill("Something else")
    box.press("Escape")
    expect(box).to_have_count(0)
    expect(question.locator(".body")).to_have_text("Keep me [[text:2]]")
    expect(question.get_by_role("button", name="Edit this question")).to_be_focused()
    expect(chat.replies).to_have_count(1)


def test_regenerating_twice_gives_three_versions_of_the_reply(chat: ChatPage) -> None:
    first = chat.wait_done(chat.ask("Explain [[text:4]]"))
    expect(chat.version(first)).to_have_count(0)
    ids = [stored_id(first)]
    for n in (2, 3):
        reply = chat.wait_done(chat.regenerate(chat.replies.last))
        expect(chat.version(reply)).to_have_text(f"{n}/{n}")
        ids.append(stored_id(reply))
    assert len(set(ids)) == 3, ids
    expect(chat.user_messages).to_have_count(1)  # one question, answered three times
    expect(chat.replies).to_have_count(1)
    expect(chat.body(chat.replies.first)).to_have_text(" ".join(words(4)))

    chat.switch(chat.replies.first, "Previous")
    expect(chat.version(chat.replies.first)).to_have_text("2/3")
    expect(chat.replies.first).to_have_attribute("data-message-id", ids[1])
    chat.switch(chat.replies.first, "Previous")
    expect(chat.version(chat.replies.first)).to_have_text("1/3")
    expect(chat.replies.first).to_have_attribute("data-message-id", ids[0])
    chat.reload()
    expect(chat.version(chat.replies.first)).to_have_text("1/3")
    expect(chat.replies.first).to_have_attribute("data-message-id", ids[0])


def test_a_regenerated_reply_can_be_stopped_and_is_kept(chat: ChatPage) -> None:
    chat.wait_done(chat.ask("Long one [[text:600]] [[slow:30]]"))
    reply = chat.regenerate(chat.replies.last)
    chat.wait_words(reply, 20)
    edit = chat.user_messages.first.get_by_role("button", name="Edit this question")
    expect(edit).to_be_disabled()  # while it runs, versions cannot change
    chat.page.get_by_role("button", name="Stop").click()
    chat.wait_done(reply, "cancelled")
    expect(reply.locator(".marker")).to_have_text("Stopped")
    expect(chat.version(reply)).to_have_text("2/2")
    expect(edit).to_be_enabled()
    shown = chat.words_of(reply)
    assert 20 <= len(shown) < 600 and shown == words(len(shown))
    chat.reload()
    stored = chat.replies.first
    expect(stored.locator(".marker")).to_have_text("Stopped")
    expect(chat.version(stored)).to_have_text("2/2")
