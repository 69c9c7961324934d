"""Flight recorders in a real Chromium against a real `podcap serve` and a real container: a
recorder made with the page's form records the container, Trigger freezes it, the snapshot is
listed with its reason and downloads as a pcap holding a marker sent before the trigger."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.groups.group_support import run_named, tag
from tests.recorders.rec_support import holds, marker
from tests.support import ARTIFACTS, Server, container_ip, remove_container, unique
from tests.ui.pages import sign_in

pytestmark = pytest.mark.ui


def test_recorder_page_records_triggers_and_downloads_a_snapshot(
        page: Page, server: Server, tmp_path: Path) -> None:
    label = "uir-" + tag()
    web = run_named(unique("uirec"), ["httpd", "-f", "-p", "80", "-h", "/www"],
                    labels={"app": label})
    try:
        sign_in(page, server)
        expect(page.locator("#recorders-empty")).to_be_visible()
        page.locator("#rf-name").fill(label)
        page.locator("#rf-labels").fill(f"app={label}")
        page.locator("#rf-window").fill("30")
        page.locator("#rf-after").fill("1")
        page.locator("#rf-bytes").fill("2")
        page.get_by_role("button", name="New recorder").click()
        row = page.locator("#recorders-body tr.recorder-row", has_text=label)
        # The ring starts on the watcher's next round (1 s) and answers once tcpdump listens;
        # the page polls: on a busy machine that took longer than Playwright's 5 s default.
        expect(row.locator("[data-field=members]")).to_contain_text("1 recording",
                                                                    timeout=15_000)
        rid = row.get_attribute("data-recorder-id")
        member = page.locator(f'#recorders-body tr.member-row[data-member-of="{rid}"]')
        expect(member.locator(".badge")).to_have_text("recording")
        sent = marker(container_ip(web))
        time.sleep(0.3)
        row.get_by_role("button", name="Trigger").click()
        snap = page.locator(f'#recorders-body tr.snapshot[data-snapshot-of="{rid}"]')
        expect(snap).to_contain_text("triggered by admin", timeout=15_000)
        expect(row.locator("[data-field=last-trigger]")).to_contain_text("admin: frozen")
        page.screenshot(path=str(ARTIFACTS / "ui-recorders.png"), full_page=True)
        with page.expect_download() as info:
            snap.get_by_role("button", name="Download the snapshot of").click()
        path = tmp_path / "snapshot.pcap"
        info.value.save_as(path)
        assert holds(path.read_bytes(), sent)
        page.once("dialog", lambda d: d.accept())
        row.get_by_role("button", name="Delete").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        expect(row).to_have_count(0)
    finally:
        remove_container(web)
