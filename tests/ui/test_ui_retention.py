"""The capture form says what the server does with old captures (--retention-days, --reclaim),
from GET /api/limits; a server with neither says nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support import Server, WebPair, running_server
from tests.ui.pages import sign_in
from tests.ui.test_ui import open_capture_form

pytestmark = pytest.mark.ui


def test_the_form_shows_retention_and_reclaim(page: Page, pair: WebPair, server: Server,
                                              tmp_path: Path) -> None:
    name = pair.web.name  # type: ignore[attr-defined]
    with running_server(tmp_path, ["--retention-days", "7", "--reclaim", "oldest"]) as keeping:
        sign_in(page, keeping)
        dialog = open_capture_form(page, name)
        note = dialog.locator("#cf-retention")
        expect(note).to_be_visible()
        expect(note).to_contain_text("Stopped captures are deleted 7 days after they stop.")
        expect(note).to_contain_text("oldest stopped captures first (never a running one)")
    sign_in(page, server)  # the shared server: defaults, nothing to say
    dialog = open_capture_form(page, name)
    expect(dialog.locator("#cf-retention")).to_be_hidden()
