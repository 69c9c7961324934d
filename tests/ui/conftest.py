"""Fixtures for the web UI tests: a page of Debian's Chromium (the session's `browser`, from
tests/conftest.py), a host-network container, and one screenshot per test in test-artifacts/.

`server` (a real `podcap serve`) comes from tests/conftest.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from docker.models.containers import Container
from playwright.sync_api import Browser, Page, ViewportSize

from tests.support import (
    ARTIFACTS,
    WebPair,
    remove_container,
    run_container,
    unique,
    web_pair,
)

DESKTOP: ViewportSize = {"width": 1280, "height": 800}


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser profile per test (own localStorage); JavaScript errors fail the test."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.set_default_timeout(10_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    opened: set = set()  # for pages.open_requests: what a blank page still waits for
    pg.podcap_open_requests = opened  # type: ignore[attr-defined]
    pg.on("request", lambda r: opened.add(r))
    pg.on("requestfinished", lambda r: opened.discard(r))
    pg.on("requestfailed", lambda r: opened.discard(r))
    refused: list[str] = []  # a module answered with an error status stops the app silently
    pg.podcap_refused = refused  # type: ignore[attr-defined]
    pg.on("response", lambda r: r.status >= 400 and refused.append(f"{r.status} {r.url}"))
    pg.on("console", lambda m: m.type == "error" and refused.append(f"console: {m.text}"))
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    pg.screenshot(path=str(ARTIFACTS / f"ui-{name}.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="module")
def pair() -> Iterator[WebPair]:
    """The httpd + wget pair, named podcap-t-ui-*, so one search shows this module's containers."""
    with web_pair("ui") as p:
        yield p


@pytest.fixture(scope="module")
def hostnet() -> Iterator[Container]:
    """A running container on the host's network: podcap must refuse to capture it."""
    container = run_container(unique("ui-hostnet"), ["sleep", "300"], network_mode="host")
    try:
        yield container
    finally:
        remove_container(container)

