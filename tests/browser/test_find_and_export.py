"""Search, rename and export in the browser."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import ChatPageFactory
from tests.browser.pages import ChatPage, say, words
from tests.support.processes import Api


def unique_word() -> str:
    return f"zebra{uuid.uuid4().hex[:8]}"


def test_search_finds_a_word_in_an_answer_marks_it_and_opens_the_message(
    make_chat: ChatPageFactory, web_api: Api
) -> None:
    chat = make_chat(web_api).open()
    someone = make_chat(web_api).open()  # another user
    word = unique_word()
    someone.wait_done(someone.ask(say(f"Theirs: {word} belongs to someone else.")))
    # Markup in the answer next to the word: the snippet shows it as text.
    hostile = f'The {word} <img src=x onerror="window.__pwned=1"> swims fast.'
    chat.wait_done(chat.ask(say(hostile)))
    chat.page.get_by_role("button", name="New chat").click()
    chat.wait_done(chat.ask("Something else [[text:3]]"))

    results = chat.search(word)
    expect(results).to_have_count(1)  # never the other user's
    expect(chat.page.locator("#search-status")).to_have_text("1 result")
    expect(chat.page.locator("#history-section")).to_be_hidden()
    hit = results.first
    expect(hit.locator("mark")).to_have_text([word])
    expect(hit.locator(".hit-snippet")).to_contain_text('<img src=x onerror="window.__pwned=1">')
    expect(hit.locator(".history-meta")).to_contain_text("Reply")
    assert hit.locator("img, [onerror]").count() == 0
    hit.get_by_role("button").click()
    found = chat.page.locator(".msg.found")
    expect(found).to_have_count(1)
    expect(found.locator(".body")).to_contain_text(f"The {word} <img")
    expect(found).to_be_focused()
    expect(found).to_be_in_viewport()
    expect(chat.user_messages).to_have_count(1)
    assert chat.page.evaluate("window.__pwned") is None

    theirs = someone.search(word)
    expect(theirs).to_have_count(1)
    expect(theirs.first).to_contain_text("belongs to someone else")
    # Escape empties the search and History comes back.
    someone.page.get_by_role("searchbox").press("Escape")
    expect(someone.page.locator("#history-section")).to_be_visible()
    expect(someone.search_results).to_have_count(0)


def test_a_search_result_on_another_branch_opens_that_branch(chat: ChatPage) -> None:
    word = unique_word()
    chat.wait_done(chat.ask(say(f"The old answer mentions {word}.")))
    chat.wait_done(chat.edit(chat.user_messages.first, "Something else [[text:2]]"))
    expect(chat.page.locator(".msg.assistant .body").last).to_have_text(" ".join(words(2)))
    results = chat.search(word)
    expect(results).to_have_count(1)
    results.first.get_by_role("button").click()
    found = chat.page.locator(".msg.found")
    expect(found.locator(".body")).to_contain_text(word)
    expect(chat.version(chat.user_messages.first)).to_have_text("1/2")


def test_rename_from_the_title_and_from_history_stands_and_is_found(chat: ChatPage) -> None:
    page = chat.page
    chat.wait_done(chat.ask("Original question [[text:2]]"))
    page.get_by_role("button", name="Rename this conversation").click()
    dialog = page.locator("#rename-dialog")
    expect(dialog).to_be_visible()
    field = dialog.get_by_label("Title")
    expect(field).to_have_value("Original question [[text:2]]")
    field.fill("   ")
    field.press("Enter")
    expect(dialog.locator("#rename-error")).to_contain_text("at least one character")
    expect(dialog).to_be_visible()
    field.fill("  Budget planning  ")
    field.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator("#title")).to_have_text("Budget planning")
    expect(chat.history.first.locator(".history-title")).to_have_text("Budget planning")
    chat.reload()
    expect(page.locator("#title")).to_have_text("Budget planning")

    # From History; Escape (or Cancel) changes nothing.
    item = chat.history_item("Budget planning")
    item.get_by_role("button", name="Rename “Budget planning”").click()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#title")).to_have_text("Budget planning")
    item.get_by_role("button", name="Rename “Budget planning”").click()
    field.fill("Quarterly forecast")
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("#title")).to_have_text("Quarterly forecast")
    expect(chat.history.first.locator(".history-title")).to_have_text("Quarterly forecast")
    # And search finds it by its new title.
    results = chat.search("quarterly")
    expect(results).to_have_count(1)
    expect(results.first.locator(".history-meta")).to_contain_text("Title")
    expect(results.first.locator("mark")).to_have_text(["Quarterly"])


def test_export_downloads_markdown_and_json_with_every_branch(chat: ChatPage) -> None:
    page = chat.page
    chat.wait_done(chat.ask("Export me [[text:3]]"))
    chat.wait_done(chat.regenerate(chat.replies.last))
    export = page.locator("#export")
    export.get_by_text("Export").click()
    with page.expect_download() as markdown_info:
        page.get_by_role("button", name="Markdown (.md)").click()
    markdown = markdown_info.value
    assert markdown.suggested_filename.endswith(".md"), markdown.suggested_filename
    text = Path(markdown.path()).read_text(encoding="utf-8")
    assert "Export me [[text:3]]" in text and "word1 word2 word3" in text
    expect(page.get_by_role("button", name="Markdown (.md)")).to_be_hidden()  # menu closed

    export.get_by_text("Export").click()
    with page.expect_download() as json_info:
        page.get_by_role("button", name="JSON (.json)").click()
    exported = json_info.value
    assert exported.suggested_filename.endswith(".json"), exported.suggested_filename
    data = json.loads(Path(exported.path()).read_text(encoding="utf-8"))
    assert data["format_version"] == 1
    roles = [m["role"] for m in data["messages"]]
    assert roles.count("user") == 1 and roles.count("assistant") == 3  # greeting + 2 versions
    shown = page.locator(".msg").evaluate_all("els => els.map(e => Number(e.dataset.messageId))")
    assert data["active_path"] == shown
