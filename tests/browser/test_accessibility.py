"""axe-core's automated checks, light and dark, wide and phone-sized; keyboard and focus."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ChatPageFactory
from tests.browser.pages import ChatPage, say
from tests.support.processes import Api

RICH = say(
    "A list:\n\n- `src/app.py:1-2` holds `main`\n- README.md:1\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    "```python\ndef main():\n    return 42  # a long comment line that has to scroll sideways "
    "in a narrow window .................................................\n```\n"
)


def show_sidebar(chat: ChatPage) -> None:
    """On a phone the sidebar is a drawer behind the menu button."""
    menu = chat.page.get_by_role("button", name="Show projects and history")
    if menu.is_visible() and menu.get_attribute("aria-expanded") == "false":
        menu.click()


def fill_page(chat: ChatPage) -> None:
    """Every kind of content and control the page has: messages, tool lines, code, a table,
    History entries, the viewer."""
    chat.wait_done(chat.ask('[[tool:Read {"file_path": "src/app.py"}]]'))
    chat.wait_done(chat.ask(RICH))
    show_sidebar(chat)
    chat.page.get_by_role("button", name="New chat").click()
    chat.wait_done(chat.ask("[[text:5]]"))
    show_sidebar(chat)
    chat.page.locator(".history-open").last.click()
    expect(chat.page.locator(".code-block")).to_be_visible()


@pytest.mark.parametrize(
    ("scheme", "viewport"),
    [("light", (1280, 860)), ("dark", (1280, 860)), ("dark", (390, 844))],
)
def test_no_serious_axe_violations(
    make_chat: ChatPageFactory, web_api: Api, scheme: str, viewport: tuple[int, int]
) -> None:
    chat = make_chat(
        web_api, color_scheme=scheme, viewport={"width": viewport[0], "height": viewport[1]}
    ).open()
    fill_page(chat)
    assert chat.axe_violations() == []
    chat.page.locator(".file-ref").first.click()
    expect(chat.page.locator("#viewer .line.cited")).to_have_count(2)
    assert chat.axe_violations() == []
    chat.page.keyboard.press("Escape")
    expect(chat.page.locator("#viewer")).to_be_hidden()
    show_sidebar(chat)
    assert chat.axe_violations() == []  # the drawer open, on a phone
    chat.history.first.get_by_role("button", name="Delete", exact=False).click()
    expect(chat.page.locator("#confirm-delete")).to_be_visible()
    assert chat.axe_violations() == []


def test_phone_layout_keeps_history_one_tap_away(make_chat: ChatPageFactory, web_api: Api) -> None:
    chat = make_chat(web_api, viewport={"width": 390, "height": 844}, has_touch=True).open()
    chat.wait_done(chat.ask("[[text:3]]"))
    page = chat.page
    sidebar = page.locator("#sidebar")
    expect(sidebar).not_to_be_in_viewport()
    menu = page.get_by_role("button", name="Show projects and history")
    expect(menu).to_have_attribute("aria-expanded", "false")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(sidebar).to_be_in_viewport()
    expect(chat.history).to_have_count(1)
    page.keyboard.press("Escape")
    expect(sidebar).not_to_be_in_viewport()
    # Nothing overflows sideways on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_keyboard_reaches_every_control_with_a_visible_focus(chat: ChatPage) -> None:
    chat.wait_done(chat.ask(RICH))
    page = chat.page
    page.locator("body").focus()
    seen: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        info = page.evaluate(
            "() => { const e = document.activeElement; const s = getComputedStyle(e);"
            " return [e.id || e.className || e.tagName, s.outlineStyle, s.outlineWidth] }"
        )
        if info[0] == "BODY":
            continue  # past the last control the focus leaves the page, then comes back
        seen.append(info[0])
        assert info[1] != "none" and info[2] != "0px", f"no visible focus on {info[0]}"
    for expected in [
        "project",
        "new-chat",
        "search",
        "history-open",
        "history-rename",
        "rename-title",
        "input",
        "copy-btn",
        "file-ref",
    ]:
        assert any(expected in name for name in seen), (expected, seen)


def test_streamed_text_is_announced_by_sentences_not_tokens(chat: ChatPage) -> None:
    page = chat.page
    # The log itself is not a live region: a screen reader would read every delta.
    assert page.locator("#log").get_attribute("aria-live") is None
    announcer = page.locator("#announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    seen: list[str] = []

    def note(text: str) -> None:
        seen.append(text)

    page.expose_function("noteAnnouncement", note)
    page.evaluate(
        "() => new MutationObserver(() => window.noteAnnouncement("
        "document.getElementById('announcer').textContent))"
        ".observe(document.getElementById('announcer'), {childList: true, characterData: true,"
        " subtree: true})"
    )
    reply = chat.ask("[[text:150]] [[slow:20]]")  # about 3 s of deltas
    chat.wait_done(reply)
    expect(announcer).to_contain_text("word150")
    spoken = [s for s in seen if "word" in s]
    assert 1 <= len(spoken) <= 4  # a few batches, not one per delta (there were about 100)
    assert " ".join(spoken).split() == [f"word{i}" for i in range(1, 151)]


@pytest.mark.parametrize(
    ("scheme", "viewport"),
    [("light", (1280, 860)), ("dark", (1280, 860)), ("dark", (390, 844))],
)
def test_versions_usage_search_export_and_rename_pass_axe(
    make_chat: ChatPageFactory, web_api: Api, scheme: str, viewport: tuple[int, int]
) -> None:
    chat = make_chat(
        web_api, color_scheme=scheme, viewport={"width": viewport[0], "height": viewport[1]}
    ).open()
    page = chat.page
    chat.wait_done(chat.ask("Tell me about tests [[text:3]]"))
    chat.wait_done(chat.regenerate(chat.replies.last))  # a reply with two versions
    chat.wait_done(chat.edit(chat.user_messages.first, "Tell me about tests again [[text:2]]"))
    expect(chat.version(chat.user_messages.first)).to_have_text("2/2")
    chat.replies.last.locator("details.usage summary").click()
    expect(chat.replies.last.locator(".usage-list")).to_be_visible()
    assert chat.axe_violations() == []
    # Nothing overflows sideways, even with the switchers and usage on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0]

    chat.user_messages.first.get_by_role("button", name="Edit this question").click()
    expect(page.get_by_role("textbox", name="Edit your question")).to_be_focused()
    assert chat.axe_violations() == []
    page.keyboard.press("Escape")

    page.locator("#export summary").click()
    expect(page.get_by_role("button", name="JSON (.json)")).to_be_visible()
    assert chat.axe_violations() == []
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="JSON (.json)")).to_be_hidden()

    page.get_by_role("button", name="Rename this conversation").click()
    expect(page.locator("#rename-dialog")).to_be_visible()
    assert chat.axe_violations() == []
    page.keyboard.press("Escape")

    show_sidebar(chat)
    expect(chat.search("tests")).not_to_have_count(0)
    expect(page.locator("#search-list mark").first).to_be_visible()
    assert chat.axe_violations() == []
