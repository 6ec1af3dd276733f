"""The web page in a real browser: asking, streaming, rendering, and what the model may not do."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import ChatPageFactory
from tests.browser.pages import ChatPage, say, words
from tests.support.processes import Api

MARKDOWN = """Here is a summary.

- first item
- second item with `code`

| name | value |
|:-----|------:|
| alpha | 1 |
| beta | 2 |

```python
def main():
    return 42
```

See src/app.py:1-2 for the entry point.
"""


def test_a_new_user_signs_in_picks_the_project_and_sees_the_answer_stream(
    make_chat: ChatPageFactory, web_api: Api
) -> None:
    chat = make_chat(web_api, signed_in=False)
    page = chat.page
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(web_api.base_url + "/")
    # No token yet: said plainly, with the way out.
    expect(page.locator("#banner")).to_contain_text("needs an API token")
    expect(page.get_by_label("API token")).to_be_focused()
    page.get_by_label("API token").fill(chat.account.token)
    page.get_by_label("API token").press("Enter")
    page.get_by_label("Project", exact=True).select_option(chat.project)
    chat.wait_connected()
    expect(page.locator("#banner")).to_be_hidden()
    expect(page.locator("#conn")).to_contain_text("Connected")

    # The barrier holds the model 1.5 s before its first byte: the thinking indicator shows.
    question = "What does this project do, in short? [[barrier:2:1.5]] [[text:60]] [[slow:25]]"
    reply = chat.ask(question)
    expect(reply.locator(".thinking")).to_be_visible()
    expect(page.locator("#stop")).to_be_visible()
    expect(chat.input).to_be_enabled()  # typing stays possible while the reply streams
    expect(page.locator("#send")).to_be_hidden()
    chat.wait_words(reply, 5)
    expect(reply.locator(".thinking")).to_have_count(0)
    expect(reply).to_have_attribute("aria-busy", "true")
    chat.wait_done(reply)
    assert chat.words_of(reply) == ["barrier", "timed", "out:", "1", "concurrent", *words(60)]
    expect(reply).to_have_attribute("aria-busy", "false")
    expect(page.locator("#stop")).to_be_hidden()
    # The greeting came first, and History now lists the conversation under its question.
    expect(page.locator(".msg.assistant").first).to_contain_text("project assistant")
    expect(chat.history).to_have_count(1)
    expect(chat.current_title).to_have_text(question[:50] + "...")  # autocoder's titles
    expect(chat.history.first).to_contain_text("3 messages")
    # Enter in the token field, leaving it, and picking the project already shown did not
    # reload and reconnect: a second load landing after the question used to reset the chat
    # and drop the question. (Another project may have been shown first when others exist.)
    mine = [url for url in sockets if url.endswith("/" + chat.project)]
    assert len(mine) == 1, sockets


def test_markdown_list_table_and_highlighted_code_render(chat: ChatPage, artifacts: Path) -> None:
    reply = chat.wait_done(chat.ask(say(MARKDOWN)))
    body = chat.body(reply)
    expect(body.locator("ul > li")).to_have_text(["first item", "second item with code"])
    expect(body.locator("ul code")).to_have_text("code")
    expect(body.locator("table th")).to_have_text(["name", "value"])
    expect(body.locator("table td")).to_have_text(["alpha", "1", "beta", "2"])
    expect(body.locator("table td.align-right").first).to_have_text("1")
    code = body.locator(".code-block pre code")
    expect(code).to_have_text("def main():\n    return 42")
    expect(code.locator(".hljs-keyword").first).to_have_text("def")
    expect(body.locator(".code-lang")).to_have_text("python")
    assert "- first" not in body.inner_text()

    chat.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    body.get_by_role("button", name="Copy python code").click()
    expect(body.locator(".copy-label")).to_have_text("Copied")
    assert chat.page.evaluate("navigator.clipboard.readText()") == "def main():\n    return 42"

    shot = artifacts / "finished-answer.png"
    chat.page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_file_references_open_the_read_only_viewer(chat: ChatPage) -> None:
    reply = chat.wait_done(chat.ask(say("Entry: `src/app.py:2` and README.md:1-3; secret .env:1")))
    ref = reply.get_by_role("button", name="src/app.py:2")
    ref.click()
    viewer = chat.page.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(viewer.locator("#viewer-title")).to_have_text("src/app.py:2")
    expect(viewer.locator("#viewer-title")).to_be_focused()
    expect(viewer.locator(".line")).to_have_count(2)
    expect(viewer.locator(".line.cited")).to_have_text(["2    return 42"])
    expect(viewer.locator("#viewer-meta")).to_contain_text("2 lines")
    chat.page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(ref).to_be_focused()  # focus goes back where it was

    reply.get_by_role("button", name=".env:1").click()
    expect(viewer.locator(".viewer-error")).to_contain_text("not allowed")
    expect(viewer.locator(".line")).to_have_count(0)


def test_script_and_event_handlers_in_a_reply_are_shown_as_text_never_run(
    chat: ChatPage,
) -> None:
    hostile = (
        "<script>window.__pwned = 'script'</script>\n\n"
        "<img src=x onerror=\"window.__pwned = 'img'\">\n\n"
        "[click me](javascript:window.__pwned='link') and "
        '<a href="#" onclick="window.__pwned=\'a\'">raw link</a>\n\n'
        "![pixel](http://127.0.0.1:9/tracker.png)"
    )
    reply = chat.wait_done(chat.ask(say(hostile)))
    body = chat.body(reply)
    expect(body).to_contain_text("<script>window.__pwned = 'script'</script>")
    expect(body).to_contain_text("<img src=x onerror=\"window.__pwned = 'img'\">")
    assert body.locator("script, img, [onerror], [onclick], iframe").count() == 0
    link = body.get_by_text("click me")
    assert link.get_attribute("href") is None  # javascript: links lose their target
    link.click()
    assert chat.page.evaluate("window.__pwned") is None


def test_tool_calls_have_friendly_lines_and_icons_and_come_back_on_reload(
    chat: ChatPage,
) -> None:
    question = (
        '[[tool:read_file {"path": "src/app.py"}]] [[tool:list_files {"pattern": "*.md"}]] '
        '[[tool:search_files {"pattern": "TODO"}]] [[tool:mcp__features__feature_get_stats {}]]'
    )
    reply = chat.wait_done(chat.ask(question))
    expected = [
        "Reading file: src/app.py",
        "Searching files: *.md",
        "Searching content: TODO",
        "Getting feature statistics",
    ]
    expect(reply.locator(".tool-call")).to_have_text(expected)
    # Icons are inline SVG with a drawn path: nothing depends on a font having a glyph.
    icons = reply.locator(".tool-call svg path")
    expect(icons).to_have_count(4)
    assert all(len(p.get_attribute("d") or "") > 10 for p in icons.all())

    # Today's names (and any other tool) get the same treatment.
    renamed = (
        '[[tool:Read {"file_path": "src/app.py"}]] [[tool:Glob {"pattern": "**/*.py"}]] '
        '[[tool:Grep {"pattern": "def main"}]] [[tool:feature_create {"name": "Login"}]] '
        "[[tool:make_coffee {}]]"
    )
    second = chat.wait_done(chat.ask(renamed))
    expect(second.locator(".tool-call")).to_have_text(
        [
            "Reading file: src/app.py",
            "Searching files: **/*.py",
            "Searching content: def main",
            "Creating feature: Login",
            "Using tool: make_coffee",
        ]
    )

    chat.reload()  # the last conversation opens again, with its tool calls
    reopened = chat.page.locator(".msg.assistant")
    expect(reopened.nth(1).locator(".tool-call")).to_have_text(expected)
    expect(reopened.nth(2).locator(".tool-call")).to_have_count(5)
    expect(chat.user_messages).to_have_text([question, renamed])


def test_enter_sends_and_shift_enter_adds_a_line(chat: ChatPage) -> None:
    chat.input.fill("[[text:3]]")
    chat.input.press("Shift+Enter")
    chat.input.press_sequentially("more")
    assert chat.input.input_value() == "[[text:3]]\nmore"
    expect(chat.user_messages).to_have_count(0)
    chat.input.press("Enter")
    reply = chat.wait_done(chat.replies.first)
    expect(chat.user_messages).to_have_text(["[[text:3]]\nmore"])
    assert chat.words_of(reply) == words(3)
    assert chat.input.input_value() == ""


def test_a_failed_reply_is_said_plainly_and_retry_asks_again(chat: ChatPage) -> None:
    reply = chat.wait_done(chat.ask("[[error:400]]"), "failed")
    marker = reply.locator(".marker.error")
    expect(marker).to_be_visible()
    # The server's message, as text (what it says is the server's business: issue 8).
    expect(marker).to_contain_text("400")
    marker.get_by_role("button", name="Retry").click()
    expect(chat.user_messages).to_have_text(["[[error:400]]", "[[error:400]]"])
    chat.wait_done(chat.replies.nth(1), "failed")
