"""A recorder on a remote node: a real controller and a `podcap agent` that dialled it over
mutual TLS (issue 21). The ring is started, frozen by an Alertmanager notification and by its
container's exit through the agent protocol (``record``, ``freeze``, ``Capture.recording``);
the agent killed with SIGKILL and started again re-adopts its ring."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.cluster.cluster_support import AgentProc, running_cluster
from tests.groups.group_support import ip_of, pod, tag
from tests.recorders.rec_support import create, holds, marker, members, recorder, snapshot
from tests.support import remove_container, wait_for

TOKEN = "remote-rec-token-" + "z" * 16


def test_recorder_on_a_remote_node(tmp_path: Path) -> None:
    t = tag()
    ns = f"far-{t}"
    env = {"PODCAP_ALERTMANAGER_TOKEN": TOKEN, "PODCAP_TRUST_NAMESPACE_LABELS": "true"}
    web = pod("frweb", {"app": t}, ns)
    # ends once told (/go), so its ring is up first however slow the machine
    crash = pod("frcrash", {"app": t}, ns,
                ["sh", "-c", "while [ ! -e /go ]; do sleep 0.1; done; exit 3"])
    try:
        with running_cluster(tmp_path, env=env) as cluster:
            agent = AgentProc(cluster, "far-node", tmp_path / "agent")
            agent.start(cluster.join_token())
            srv = cluster.server
            try:
                with srv.client() as c:
                    rec = create(c, name=f"far-{t}", labels=f"app={t}", window_s=30,
                                 bytes_mb=2, after_s=1, cooldown_s=0)
                    rings = {m["workload_name"]: m for m in members(c, rec["id"], 2)}
                    assert {m["node"] for m in rings.values()} == {"far-node"}
                    target = rings[web.name]
                    sent = marker(ip_of(web))
                    time.sleep(0.3)
                    agent.stop(signal.SIGKILL)  # tcpdump goes on; the ring is re-adopted
                    agent.start()
                    wait_for(lambda: [m["capture_id"] for m in recorder(c, rec["id"])[
                        "members"] if m["workload_name"] == web.name] == [
                        target["capture_id"]], timeout=20, what="the ring re-adopted")
                    r = httpx.post(srv.url + "/api/hooks/alertmanager",
                                   headers={"Authorization": f"Bearer {TOKEN}"},
                                   json={"version": "4", "status": "firing", "alerts": [{
                                       "status": "firing", "fingerprint": t,
                                       "startsAt": "2026-12-07T00:00:00Z",
                                       "labels": {"alertname": "FarAway", "namespace": ns,
                                                  "pod": target["pod_name"]}}]})
                    assert r.json()["outcomes"] == {"frozen": 1}, r.text
                    snap = snapshot(srv, c, target["capture_id"])
                    assert snap["reason"] == "triggered: alert FarAway"
                    assert holds(snap["pcap"], sent)
                    crash.exec_run(["touch", "/go"])
                    crashed = snapshot(srv, c, rings[crash.name]["capture_id"], timeout=20)
                    assert crashed["reason"] == "triggered: container exited 3"
                    members(c, rec["id"], 1)  # the web member records on, on a new ring
                    c.delete(f"/api/recorders/{rec['id']}")
            finally:
                agent.stop()
    finally:
        for x in (web, crash):
            remove_container(x)
