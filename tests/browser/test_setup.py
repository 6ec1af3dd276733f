"""Without a Chromium the browser tests fail with directions; they never skip silently."""

from __future__ import annotations

import pytest

from tests.browser.conftest import chromium_path


def test_a_missing_chromium_fails_with_directions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("ASSISTANT_CHROMIUM", raising=False)
    with pytest.raises(pytest.fail.Exception, match="scripts/bootstrap") as failed:
        chromium_path()
    assert "ASSISTANT_CHROMIUM" in str(failed.value)


def test_assistant_chromium_picks_the_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_CHROMIUM", "/bin/true")
    assert chromium_path() == "/bin/true"
