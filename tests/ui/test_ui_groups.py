"""Capture groups in a real Chromium against a real `podcap serve` and real containers.

A label selector starts a group of two web containers; the group is one row that expands to
its members; Stop, then the pcapng download is read back with tshark (one interface per
container, packets of both). A picked container starts a group of one; Delete removes it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.groups.group_support import run_named, tag, walk
from tests.support import Server, container_ip, remove_container, unique
from tests.ui.pages import sign_in

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def labelled() -> Iterator[tuple[str, list[str]]]:
    """Two httpd containers labelled app=<label> and a client fetching from both."""
    label = "ui-" + tag()
    made = []
    try:
        for i in (1, 2):
            made.append(run_named(unique(f"uig{i}"), ["httpd", "-f", "-p", "80", "-h", "/www"],
                                  labels={"app": label}))
        ips = [container_ip(c) for c in made]
        loop = "; ".join(f"wget -q -O /dev/null http://{ip}/" for ip in ips)
        made.append(run_named(unique("uigcli"), ["sh", "-c",
                                                  f"while true; do {loop}; sleep 0.2; done"]))
        yield label, [c.name for c in made[:2]]
    finally:
        for c in made:
            remove_container(c)


def start_group_dialog(page: Page):
    page.get_by_role("button", name="Capture group…").click()
    dialog = page.get_by_role("dialog", name="Capture group")
    expect(dialog).to_be_visible()
    return dialog


def test_label_selector_group_expands_stops_and_downloads_one_pcapng(
        page: Page, server: Server, labelled: tuple[str, list[str]], tmp_path: Path) -> None:
    label, names = labelled
    sign_in(page, server)
    dialog = start_group_dialog(page)
    dialog.get_by_label("Label selector").fill("app in (x,")
    dialog.get_by_role("button", name="Start group").click()
    expect(dialog.locator("#gf-error")).to_contain_text("at position 10")
    dialog.get_by_label("Label selector").fill(f"app={label}")
    dialog.get_by_role("button", name="Start group").click()
    expect(dialog).to_be_hidden()
    row = page.locator("#groups-body tr.group-row", has_text=f"labels app={label}")
    expect(row).to_have_count(1)
    expect(row.locator("[data-field=members]")).to_contain_text("2 running of 2")
    gid = row.get_attribute("data-group-id")
    members = page.locator(f'#groups-body tr.member-row[data-member-of="{gid}"]:not(.follow)')
    expect(members).to_have_count(2)  # a new group is shown expanded
    expect(page.locator("#groups-body [data-field=follow-command]")).to_have_text(
        f"podcap --server {server.url}/ group get {gid} --follow -o - | wireshark -k -i -")
    for name in names:
        expect(members.filter(has_text=name)).to_have_count(1)
    row.get_by_role("button", name=f"Members of group labels app={label}").click()
    expect(members).to_have_count(0)
    row.get_by_role("button", name=f"Members of group labels app={label}").click()
    expect(members).to_have_count(2)
    expect(row.locator("[data-field=packets]")).not_to_have_text("0", timeout=20_000)
    row.get_by_role("button", name="Stop").click()
    expect(row.locator("[data-field=status]")).to_contain_text("stopped")
    with page.expect_download() as info:
        row.get_by_role("button", name=f"Download group labels app={label} as pcapng").click()
    download = info.value
    assert download.suggested_filename.startswith(f"group-{gid[:8]}-")
    assert download.suggested_filename.endswith(".pcapng")
    path = tmp_path / "group.pcapng"
    download.save_as(path)
    blocks = walk(path)
    assert sorted(i["name"] for i in blocks.interfaces) == sorted(names)
    assert f"selector: labels app={label}" in blocks.shb_comments
    done = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e",
                           "frame.interface_name"], capture_output=True, text=True, check=True)
    assert set(done.stdout.split()) == set(names)


def test_picked_container_group_and_delete(page: Page, server: Server,
                                           labelled: tuple[str, list[str]]) -> None:
    _, names = labelled
    sign_in(page, server)
    page.get_by_label("Search").fill(names[0])
    page.get_by_role("checkbox", name=f"Pick {names[0]} for a capture group").check()
    dialog = start_group_dialog(page)
    expect(dialog.get_by_label(f"Only the 1 picked: {names[0]}")).to_be_checked()
    dialog.get_by_role("button", name="Start group").click()
    expect(dialog).to_be_hidden()
    member = page.locator("#groups-body tr.member-row:not(.follow)", has_text=names[0])
    expect(member).to_have_count(1)  # a new group is shown expanded
    gid = member.get_attribute("data-member-of")
    row = page.locator(f'#groups-body tr.group-row[data-group-id="{gid}"]')
    expect(row).to_contain_text("workloads ")
    expect(row.locator("[data-field=members]")).to_contain_text("1 running of 1")
    row.get_by_role("button", name="Delete").click()
    page.locator("#confirm-ok").click()
    expect(row).to_have_count(0)
    expect(page.locator("#notice")).to_contain_text("Capture group deleted")
