"""The page at `/`: security headers, its files served, nothing inline, everything packaged."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from api.web import STATIC_DIR, page_policy
from tests.support.processes import REPO, Stack

VENDORED = [
    "vendor/markdown-it/markdown-it.umd.min.js",
    "vendor/markdown-it/LICENSE",
    "vendor/dompurify/purify.min.js",
    "vendor/dompurify/LICENSE",
    "vendor/highlight.js/highlight.min.js",
    "vendor/highlight.js/a11y-light.min.css",
    "vendor/highlight.js/LICENSE",
    "vendor/VERSIONS",
]


def csp_directives(header: str) -> dict[str, list[str]]:
    parts = (d.strip().split() for d in header.split(";") if d.strip())
    return {p[0]: p[1:] for p in parts}


def test_page_sends_security_headers(stack: Stack) -> None:
    res = httpx.get(stack.api.base_url + "/")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/html")
    csp = csp_directives(res.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]  # no inline script, no eval
    assert csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    host = stack.api.base_url.removeprefix("http://")
    assert csp["connect-src"] == ["'self'", f"ws://{host}", f"wss://{host}"]
    assert csp["base-uri"] == ["'none'"]
    assert res.headers["x-content-type-options"] == "nosniff"
    assert res.headers["referrer-policy"] == "no-referrer"
    assert res.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    ("host", "connect"),
    [
        ("example.org:8443", "'self' ws://example.org:8443 wss://example.org:8443"),
        ("[::1]:8000", "'self' ws://[::1]:8000 wss://[::1]:8000"),
        ("evil.org; script-src *", "'self'"),
        ("a b", "'self'"),
        (None, "'self'"),
    ],
)
def test_page_policy_names_the_websocket_origin_only_for_a_plain_host(
    host: str | None, connect: str
) -> None:
    assert csp_directives(page_policy(host))["connect-src"] == connect.split()
    assert csp_directives(page_policy(host))["script-src"] == ["'self'"]


def test_static_files_and_api_answers_carry_them_too(stack: Stack) -> None:
    for path in ["/static/js/main.js", "/static/app.css", "/api/projects", "/healthz"]:
        res = httpx.get(stack.api.base_url + path)
        assert res.headers["x-content-type-options"] == "nosniff", path
        assert "frame-ancestors 'none'" in res.headers["content-security-policy"], path
    js = httpx.get(stack.api.base_url + "/static/js/main.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]  # module scripts need a JS MIME type
    assert js.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("path", VENDORED)
def test_vendored_libraries_are_served_with_their_licences(stack: Stack, path: str) -> None:
    res = httpx.get(f"{stack.api.base_url}/static/{path}")
    assert res.status_code == 200, path
    assert res.content == (STATIC_DIR / path).read_bytes()


def test_static_route_refuses_paths_outside_the_folder(stack: Stack) -> None:
    for path in ["/static/../main.py", "/static/%2e%2e/main.py", "/static/missing.js"]:
        res = httpx.get(stack.api.base_url + path)
        assert res.status_code == 404, path
        assert "create_app" not in res.text


class _Inline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            src = dict(attrs).get("src")
            if not src:
                self.problems.append("inline <script>")
            else:
                self.scripts.append(src)
        if "style" in names:
            self.problems.append(f"style attribute on <{tag}>")
        self.problems += [f"{n} handler on <{tag}>" for n in names if n.startswith("on")]


def test_page_has_nothing_inline_that_the_policy_would_block() -> None:
    parser = _Inline()
    parser.feed((STATIC_DIR / "index.html").read_text())
    assert parser.problems == []
    assert "/static/js/main.js" in parser.scripts
    for src in parser.scripts:
        assert (STATIC_DIR / src.removeprefix("/static/")).is_file(), src


def test_the_hand_written_renderer_is_gone() -> None:
    sources = "".join(p.read_text() for p in (STATIC_DIR / "js").glob("*.js"))
    assert "window.markdownit(" in sources and "DOMPurify.sanitize(" in sources
    assert "innerHTML" not in sources  # every HTML string goes through DOMPurify's DOM result


def test_wheel_ships_the_page(tmp_path: Path) -> None:
    """The image installs the package non-editable: package-data must carry every page file.

    Built as the Dockerfile builds it: from a copy of the sources without local build state (a
    stale egg-info in the checkout would list files that package-data no longer names), by
    `pip` with the declared build backend."""
    src = tmp_path / "src"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"api/static/{p.relative_to(STATIC_DIR).as_posix()}"
        for p in STATIC_DIR.rglob("*")
        if p.is_file()
    }
    assert {"api/static/index.html", "api/static/js/main.js", "api/static/app.css"} <= expected
    assert expected - names == set()
