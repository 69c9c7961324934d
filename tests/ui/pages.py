"""What every UI test does to the page: sign in through the form, as a person would."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support import Server


def sign_in(page: Page, server: Server, user: str = "admin", password: str | None = None,
            heading: str = "Captures") -> None:
    """Sign in, then wait for ``heading`` of the main page."""
    page.goto(server.url + "/")
    # the form shows once the app's modules loaded and its first request answered. A page that
    # stayed blank was Chromium aborting its module loads with net::ERR_NETWORK_CHANGED when
    # the host's interfaces changed; Chromium now has a network namespace of its own
    # (browser_netns.py), and a blank page says which of its requests never ended
    try:
        expect(page.get_by_label("Username")).to_be_visible(timeout=30_000)
    except AssertionError as blank:  # say which of the page's requests never ended
        raise AssertionError(f"{blank}\nstill open: {open_requests(page)}; errors: "
                             f"{getattr(page, 'podcap_refused', [])}") from blank
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password", exact=True).fill(password or server.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=heading)).to_be_visible()


def open_requests(page: Page) -> list[str]:
    """The page's requests that neither finished nor failed (recorded by the ``page``
    fixture, tests/ui/conftest.py)."""
    return sorted(r.url for r in getattr(page, "podcap_open_requests", set()))
