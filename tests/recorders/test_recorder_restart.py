"""The agent killed (SIGKILL of `podcap serve`, whose agent is in-process) and started again:
the recorder's ring is re-adopted, still recording, and a trigger afterwards holds the packets
sent before the kill."""

from __future__ import annotations

import signal
import time

import pytest

from tests.groups.group_support import ip_of, pod, tag
from tests.recorders.rec_support import create, holds, marker, members, snapshot
from tests.support import remove_container, running_server


def test_rings_are_readopted_after_sigkill(tmp_path_factory: pytest.TempPathFactory) -> None:
    t = tag()
    web = pod("rkill", {"app": t}, f"shop-{t}")
    try:
        ip = ip_of(web)
        with running_server(tmp_path_factory.mktemp("reckill"),
                            ["--trust-namespace-labels"]) as srv:
            with srv.client() as c:
                rec = create(c, name=f"k-{t}", labels=f"app={t}", window_s=60, bytes_mb=2,
                             after_s=1)
                ring = members(c, rec["id"], 1)[0]["capture_id"]
            before = marker(ip)
            time.sleep(0.5)
            srv.stop(signal.SIGKILL)
            between = marker(ip)  # the agent is down; tcpdump is not
            srv.start()
            with srv.client(srv.login()) as c:
                again = members(c, rec["id"], 1)
                assert again[0]["capture_id"] == ring and again[0]["status"] == "recording"
                assert "re-adopted" in srv.log()
                r = c.post(f"/api/recorders/{rec['id']}/trigger", json={})
                assert r.json()["snapshots"] == [ring], r.text
                snap = snapshot(srv, c, ring)
                assert holds(snap["pcap"], before) and holds(snap["pcap"], between)
                c.delete(f"/api/recorders/{rec['id']}")
    finally:
        remove_container(web)
