"""What every UI test does to the page: sign in through the form, as a person would."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from support import Server


def sign_in(page: Page, server: Server, user: str = "admin", password: str | None = None,
            heading: str = "Captures") -> None:
    """Sign in, then wait for ``heading`` of the main page."""
    page.goto(server.url + "/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password", exact=True).fill(password or server.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
