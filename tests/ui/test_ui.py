"""The web UI in a real Chromium against a real `podcap serve` and real containers.

login → find the busybox web container by search → capture with a filter → counters rise →
the capture ends (by its 5 s duration, or by Stop) → download → the file is a pcap with packets;
the host-network container cannot be captured and says why; a broken filter shows tcpdump's
message and starts nothing; delete (confirmed) removes the row; a capture deleted elsewhere
leaves the page quietly; narrow window and keyboard use work.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from docker.models.containers import Container
from playwright.sync_api import Locator, Page, expect

from tests.support import (
    ARTIFACTS,
    ROOT,
    Server,
    WebPair,
    read_pcap,
    remove_container,
    run_container,
    unique,
)
from tests.ui.pages import sign_in

pytestmark = pytest.mark.ui

SCREENSHOT = ROOT / "docs" / "screenshot.png"


def workload_row(page: Page, name: str) -> Locator:
    return page.locator(f'#workloads-body tr[data-name="{name}"]')


def open_capture_form(page: Page, name: str) -> Locator:
    page.get_by_label("Search").fill(name)
    row = workload_row(page, name)
    expect(row).to_have_count(1)
    row.get_by_role("button", name=f"Capture traffic of {name}").click()
    dialog = page.get_by_role("dialog", name=f"Capture {name}")
    expect(dialog).to_be_visible()
    return dialog


def newest_capture_row(page: Page, name: str) -> Locator:
    """The row of the capture just started, pinned by its id (rows are kept by id)."""
    first = page.locator("#captures-body tr[data-capture-id]", has_text=name).first
    expect(first).to_be_visible()
    cid = first.get_attribute("data-capture-id")
    return page.locator(f'#captures-body tr[data-capture-id="{cid}"]')


def packets(row: Locator) -> int:
    return int(re.sub(r"\D", "", row.locator("[data-field=packets]").inner_text()) or 0)


def watch_packets_rise(page: Page, row: Locator, timeout: float = 8.0) -> list[int]:
    """Read the packet counter as the page refreshes it until it has risen twice."""
    seen = [packets(row)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_timeout(200)
        value = packets(row)
        if value != seen[-1]:
            seen.append(value)
        if len([v for v in seen if v > 0]) >= 2:
            break
    assert seen == sorted(seen), f"packet counter went backwards: {seen}"
    assert len([v for v in seen if v > 0]) >= 2, f"packet counter did not rise: {seen}"
    return seen


def download(page: Page, row: Locator, name: str) -> bytes:
    with page.expect_download() as info:
        row.get_by_role("button", name=f"Download pcap of {name}").click()
    dl = info.value
    assert re.fullmatch(rf"{re.escape(name)}-\d{{8}}-\d{{6}}\.pcap", dl.suggested_filename), \
        dl.suggested_filename
    path = dl.path()
    assert path is not None, dl.failure()
    return path.read_bytes()


def test_login_reload_logout(page: Page, server: Server) -> None:
    page.goto(server.url + "/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")

    sign_in(page, server)
    expect(page.get_by_text("admin (admin)")).to_be_visible()
    page.reload()  # the token in localStorage keeps the session
    expect(page.get_by_role("heading", name="Containers")).to_be_visible()
    expect(page.get_by_label("Password")).to_be_hidden()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Password")).to_be_visible()
    expect(page.get_by_text("Signed out.")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Password")).to_be_visible()
    assert page.evaluate("localStorage.getItem('podcap.token')") is None

    # A token the server no longer knows: back to the sign-in form, no error storm.
    page.evaluate("localStorage.setItem('podcap.token', 'expired-or-forged')")
    page.reload()
    expect(page.get_by_label("Password")).to_be_visible()
    assert page.evaluate("localStorage.getItem('podcap.token')") is None


def test_sign_out_in_another_tab(page: Page, server: Server) -> None:
    sign_in(page, server)
    other = page.context.new_page()  # same browser profile, same localStorage
    other.goto(server.url + "/")
    expect(other.get_by_role("heading", name="Captures")).to_be_visible()
    other.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("Signed out in another window.")).to_be_visible()
    expect(page.get_by_label("Password")).to_be_visible()


def test_empty_list_and_capture_deleted_elsewhere(page: Page, server: Server,
                                                  pair: WebPair) -> None:
    sign_in(page, server)
    with server.client() as api:
        assert api.get("/api/captures").json()["captures"] == []
        expect(page.get_by_text("No captures yet.")).to_be_visible()
        r = api.post("/api/captures", json={"workload_id": pair.web.id, "duration": 60})
        assert r.status_code == 201, r.text
        cid = r.json()["capture"]["id"]
        row = page.locator(f'#captures-body tr[data-capture-id="{cid}"]')
        expect(row).to_be_visible()  # appears by polling alone
        expect(row.get_by_text("running")).to_be_visible()
        assert api.delete(f"/api/captures/{cid}").status_code == 204  # "another window"
    expect(row).to_have_count(0)
    expect(page.get_by_text("No captures yet.")).to_be_visible()
    expect(page.locator("#captures-error")).to_be_hidden()

    # Stop pressed on a capture deleted elsewhere before the page noticed (its list refresh is
    # cut off meanwhile): the row goes and the page says why.
    name = pair.web.name  # type: ignore[attr-defined]
    with server.client() as api:
        cid = api.post("/api/captures", json={"workload_id": pair.web.id}).json()["capture"]["id"]
        row = page.locator(f'#captures-body tr[data-capture-id="{cid}"]')
        expect(row).to_be_visible()
        page.route("**/api/captures", lambda route: route.abort())
        expect(page.locator("#captures-error")).to_contain_text("Could not refresh the captures")
        assert api.delete(f"/api/captures/{cid}").status_code == 204
    row.get_by_role("button", name=f"Stop capture of {name}").click()
    expect(row).to_have_count(0)
    expect(page.locator("#notice")).to_contain_text("no longer exists (deleted elsewhere)")
    page.unroute("**/api/captures")
    expect(page.locator("#captures-error")).to_be_hidden()


def test_slow_server_keeps_the_page_and_recovers(page: Page, server: Server,
                                                 pair: WebPair) -> None:
    """The server stops answering for a while (SIGSTOP): the page says how old its data is,
    keeps what it shows, and carries on when answers come back."""
    sign_in(page, server)
    expect(page.locator("#workloads-count")).to_have_text(re.compile(r"^\d+ containers?\.$"))
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        expect(page.locator("#captures-status")).to_contain_text(
            "waiting for the server", timeout=12_000)
        page.screenshot(path=str(ARTIFACTS / "ui-slow-server-waiting.png"))
        expect(page.get_by_role("heading", name="Containers")).to_be_visible()
        expect(page.get_by_label("Password")).to_be_hidden()
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    expect(page.locator("#captures-status")).to_have_text("", timeout=10_000)
    page.get_by_label("Search").fill(pair.web_ip)
    expect(workload_row(page, pair.web.name)).to_have_count(1)  # type: ignore[attr-defined]


def test_host_network_container_cannot_be_captured(page: Page, server: Server,
                                                    hostnet: Container) -> None:
    name = hostnet.name
    sign_in(page, server)
    page.get_by_label("Search").fill(name)
    row = workload_row(page, name)
    expect(row).to_have_count(1)
    button = row.get_by_role("button", name=f"Capture traffic of {name}")
    expect(button).to_be_disabled()
    expect(row).to_contain_text("Cannot capture: host network")
    expect(button).to_have_accessible_description(re.compile("host network"))
    # Grouping by namespace: plain Docker containers form one group.
    page.get_by_label("Group by").select_option("namespace")
    expect(page.locator("#workloads-body tr.group")).to_contain_text("No namespace")
    expect(page.get_by_text(re.compile(r"1 of \d+ containers match"))).to_be_visible()


def test_broken_filter_shows_tcpdump_message_and_starts_nothing(
        page: Page, server: Server, pair: WebPair) -> None:
    name = pair.web.name  # type: ignore[attr-defined]
    sign_in(page, server)
    dialog = open_capture_form(page, name)
    page.get_by_label("BPF filter").fill("tcp port")  # checked as you type
    status = dialog.locator("#cf-filter-status")
    expect(status).to_contain_text("syntax error")
    expect(page.get_by_label("BPF filter")).to_have_attribute("aria-invalid", "true")
    dialog.get_by_role("button", name="Start capture").click()
    expect(dialog.get_by_role("alert")).to_contain_text("Fix the filter first")
    expect(dialog).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "ui-broken-filter-message.png"))
    with server.client() as api:
        started = api.get("/api/captures", params={"workload": pair.web.id}).json()["captures"]
    assert started == []
    page.get_by_label("BPF filter").fill("tcp port 80")
    expect(status).to_have_text("✓ The filter compiles.")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()


def test_start_error_shows_in_the_form(page: Page, server: Server) -> None:
    """The container exits while the form is open: the server's refusal appears in the form."""
    name = unique("ui-gone")
    container = run_container(name, ["sleep", "300"])
    try:
        sign_in(page, server)
        dialog = open_capture_form(page, name)
        container.kill()
        dialog.get_by_role("button", name="Start capture").click()
        alert = dialog.get_by_role("alert")
        expect(alert).to_contain_text(f"Could not start a capture of {name}:")
        expect(alert).to_contain_text("running")
        expect(dialog).to_be_visible()
    finally:
        remove_container(container)


def test_five_second_capture_counts_and_downloads(page: Page, server: Server,
                                                  pair: WebPair) -> None:
    name = pair.web.name  # type: ignore[attr-defined]
    sign_in(page, server)
    dialog = open_capture_form(page, name)
    dialog.get_by_label("Custom", exact=True).check()
    page.get_by_label("Custom duration (seconds)").fill("5")
    expect(dialog).to_contain_text("= 5 s")
    page.get_by_label("File size (MB)").fill("3")
    page.get_by_label("File count").fill("4")
    expect(dialog.locator("#cf-disk")).to_contain_text("Maximum disk use: 12 MB (4 files × 3 MB")
    page.get_by_label("BPF filter").fill("tcp port 80")
    expect(dialog.locator("#cf-filter-status")).to_have_text("✓ The filter compiles.")
    dialog.get_by_role("button", name="Start capture").click()
    expect(dialog).to_be_hidden()

    row = newest_capture_row(page, name)
    expect(row.locator(".badge")).to_have_text("running")
    expect(row).to_contain_text("tcp port 80")
    expect(row.locator("[data-field=time]")).to_contain_text("of 0:05")
    watch_packets_rise(page, row)
    expect(row.locator(".badge")).to_have_text("stopped", timeout=12_000)
    expect(row).to_contain_text("duration reached")

    _, records = read_pcap(download(page, row, name))
    assert len(records) > 0
    assert len(records) >= packets(row) > 0


def test_capture_stop_download_delete(page: Page, server: Server, pair: WebPair) -> None:
    name = pair.web.name  # type: ignore[attr-defined]
    sign_in(page, server)
    dialog = open_capture_form(page, name)
    dialog.get_by_label("Until stopped").check()
    page.get_by_label("BPF filter").fill(f"host {pair.web_ip} and tcp")
    dialog.get_by_role("button", name="Start capture").click()
    expect(dialog).to_be_hidden()
    row = newest_capture_row(page, name)
    expect(row.locator("[data-field=time]")).to_contain_text("until stopped")
    watch_packets_rise(page, row)

    # The main page with a capture running.
    page.get_by_label("Search").fill("podcap-t-ui")
    page.get_by_label("Search").blur()
    # The README's picture: refreshed on request only, so a test run never edits tracked files.
    shot = SCREENSHOT if os.environ.get("PODCAP_UPDATE_SCREENSHOT") == "1" else \
        ARTIFACTS / "ui-main-page-capture-running.png"
    page.screenshot(path=str(shot), animations="disabled")

    row.get_by_role("button", name=f"Stop capture of {name}").click()
    expect(row.locator(".badge")).to_have_text("stopped")
    expect(row).to_contain_text("stopped by user")
    final = packets(row)
    assert final > 0
    _, records = read_pcap(download(page, row, name))
    assert len(records) == final  # tcpdump's final "captured" count is what the file holds

    cid = row.get_attribute("data-capture-id")
    confirm = page.get_by_role("dialog", name=f"Delete the capture of {name}?")
    row.get_by_role("button", name=f"Delete capture of {name}").click()
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Cancel").click()
    expect(row).to_be_visible()
    row.get_by_role("button", name=f"Delete capture of {name}").click()
    confirm.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    with server.client() as api:
        assert api.get(f"/api/captures/{cid}").status_code == 404


def test_keyboard_and_narrow_window(page: Page, server: Server, pair: WebPair) -> None:
    name = pair.web.name  # type: ignore[attr-defined]
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in(page, server)
    # Every form control on the page has a label.
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select')]
        .filter((el) => !el.labels?.length && !el.getAttribute('aria-label'))
        .map((el) => el.id || el.name)""")
    assert unlabelled == []
    expect(page.get_by_label("Search")).to_be_focused()  # where signing in puts you
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("/")
    expect(page.get_by_label("Search")).to_be_focused()
    page.keyboard.type(pair.web_ip)  # search by IP
    expect(workload_row(page, name)).to_have_count(1)
    capture = workload_row(page, name).get_by_role("button", name=f"Capture traffic of {name}")
    for _ in range(6):  # Search → Group by → Refresh → Capture…
        page.keyboard.press("Tab")
        if capture.evaluate("el => el === document.activeElement"):
            break
    expect(capture).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name=f"Capture {name}")
    expect(dialog).to_be_visible()
    expect(page.get_by_label("BPF filter")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page is {overflow}px wider than a 390px window"
