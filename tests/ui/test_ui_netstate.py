"""The capture row's "Network…" dialog (the netstate snapshot) and "Live…" dialog (the command
that follows the capture in Wireshark), in a real Chromium against a real `podcap serve`.

The network dialog must show the container's real IP address (docker inspect's); the live
dialog's command must name the capture, and running exactly that command (the part before the
pipe, as argv, no shell) must write a pcap with the capture's packets."""

from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support import ARTIFACTS, PODCAP, Server, WebPair, read_pcap, tcp_flows
from tests.ui.pages import sign_in

pytestmark = pytest.mark.ui


def _start(server: Server, workload: str, duration: int) -> str:
    with server.client() as c:
        r = c.post("/api/captures", json={"workload_id": workload, "duration": duration,
                                          "filter": "tcp port 80"})
    assert r.status_code == 201, r.text
    return r.json()["capture"]["id"]


def _row(page: Page, cid: str) -> Locator:
    row = page.locator(f'#captures-body tr[data-capture-id="{cid}"]')
    expect(row).to_be_visible()
    return row


def test_network_dialog_shows_the_containers_address(page: Page, server: Server,
                                                     pair: WebPair) -> None:
    cid = _start(server, pair.web.id, 60)
    try:
        sign_in(page, server)
        _row(page, cid).get_by_role("button", name="Network state of").click()
        dialog = page.get_by_role("dialog", name="at capture start")
        expect(dialog).to_be_visible()
        addresses = dialog.locator('details[data-section="addresses"]')
        expect(addresses).to_contain_text(pair.web_ip)
        expect(addresses).to_contain_text("eth0")
        sockets = dialog.locator('details[data-section="sockets"]')
        expect(sockets).to_contain_text("LISTEN")
        expect(sockets).to_contain_text("httpd")
        expect(dialog.locator('details[data-section="routes"]')).to_contain_text("default")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui-netstate-dialog.png"))
        sockets.locator("summary").click()  # collapsible
        expect(sockets.locator("table")).to_be_hidden()
        dialog.get_by_role("button", name="Close").click()
        expect(dialog).to_be_hidden()
    finally:
        with server.client() as c:
            c.delete(f"/api/captures/{cid}")


def test_network_dialog_says_when_there_is_no_snapshot(page: Page, server: Server,
                                                       pair: WebPair) -> None:
    cid = _start(server, pair.web.id, 60)
    try:
        with server.client() as c:
            assert c.get(f"/api/captures/{cid}/netstate").status_code == 200
        (server.data_dir / "captures" / cid / "netstate.json").unlink()  # an older capture
        sign_in(page, server)
        _row(page, cid).get_by_role("button", name="Network state of").click()
        dialog = page.get_by_role("dialog", name="at capture start")
        expect(dialog.get_by_role("alert")).to_contain_text("no network-state snapshot")
    finally:
        with server.client() as c:
            c.delete(f"/api/captures/{cid}")


def test_live_dialog_command_streams_the_capture(page: Page, server: Server,
                                                 pair: WebPair) -> None:
    cid = _start(server, pair.web.id, 4)  # ends by itself: the followed stream then ends too
    try:
        sign_in(page, server)
        _row(page, cid).get_by_role("button", name="Follow capture of").click()
        dialog = page.get_by_role("dialog", name="live")
        expect(dialog).to_be_visible()
        command = dialog.get_by_label("Run in a terminal").input_value()
        assert cid in command
        assert command.endswith("| wireshark -k -i -")
        assert f"--server {server.url} " in command
        dialog.get_by_role("button", name="Copy the command").click()
        expect(dialog.get_by_role("status")).to_contain_text(re.compile("Copied|Selected"))

        argv = shlex.split(command.split("|")[0])
        assert argv[0] == "podcap"
        env = {**os.environ, "PODCAP_TOKEN": server.token,
               "HOME": str(server.data_dir.parent), "XDG_CONFIG_HOME": str(server.data_dir.parent)}
        done = subprocess.run([PODCAP, *argv[1:]], env=env, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        linktype, packets = read_pcap(done.stdout)
        assert linktype == 276 and packets
        assert (pair.client_ip, pair.web_ip) in tcp_flows(packets)
    finally:
        with server.client() as c:
            c.delete(f"/api/captures/{cid}")
