"""Capturing pods end to end: a real `podcap serve --runtime cri`, a real containerd, real pods,
real tcpdump, through NeuVector's /v1 API and the native one."""

from __future__ import annotations

import secrets
import socket

import pytest

from tests.cri.cri_testbed import Pods
from tests.recorders.rec_support import create, holds, members, snapshot
from tests.support import Server, read_pcap, tcp_flows, wait_for

pytestmark = pytest.mark.cri












def test_workloads_list_pods_and_containers(cri_server: Server, pods: Pods) -> None:
    def listed() -> bool:  # the lists read the pushed view: a new pod is there within 2 s
        with cri_server.client() as c:
            v1.update((w["id"], w) for w in c.get("/v1/workload").json()["workloads"])
            native.update((w["id"], w) for w in c.get("/api/workloads").json()["workloads"])
        return {pods.web.container_id, pods.web.sandbox_id, pods.hostnet.sandbox_id} <= \
            v1.keys() | native.keys()
    v1: dict[str, dict] = {}
    native: dict[str, dict] = {}
    wait_for(listed, timeout=5, what="the pods listed")
    ctr = v1[pods.web.container_id]
    assert (ctr["pod_name"], ctr["domain"], ctr["cap_sniff"]) == ("web", "podcap-test", True)
    pod = native[pods.web.sandbox_id]
    assert (pod["kind"], pod["runtime"], pod["node"], pod["ips"]) == (
        "pod", "cri", "cri-node", [pods.web.ip])
    host = native[pods.hostnet.sandbox_id]
    assert host["host_network"] and not host["cap_sniff"]
    assert host["cap_sniff_reason"] == "host network"


@pytest.mark.parametrize("kind", ["pod", "container"])
def test_capture_one_pod(cri_server: Server, pods: Pods, kind: str) -> None:
    """A pod and any of its containers capture the same, shared, network namespace."""
    target = pods.web.sandbox_id if kind == "pod" else pods.web.container_id
    cid = cri_server.sniff(target, filter="tcp port 80")
    wait_for(lambda: cri_server.sniffer(cid)["stats"]["captured"] > 20, what="live counters")
    with cri_server.client() as c:
        assert c.patch(f"/v1/sniffer/stop/{cid}").status_code == 200
    final = cri_server.sniffer(cid)
    assert (final["status"], final["reason"]) == ("stopped", "stopped by user")
    assert (final["pod_name"], final["domain"]) == ("web", "podcap-test")
    data = cri_server.v1_pcap(cid)
    assert data == cri_server.pcap(cid)
    linktype, packets = read_pcap(data)
    assert linktype == 276
    assert len(packets) == final["stats"]["captured"] > 20
    assert tcp_flows(packets) == {(pods.client.ip, pods.web.ip), (pods.web.ip, pods.client.ip)}


def test_host_network_pod_is_refused(cri_server: Server, pods: Pods) -> None:
    for target in (pods.hostnet.sandbox_id, pods.hostnet.container_id):
        with cri_server.client() as c:
            r = c.post("/v1/sniffer", params={"f_workload": target},
                       json={"sniffer": {"duration": 0}})
        assert r.status_code == 400, r.text
        assert "host network" in r.json()["message"]


def test_deleted_pod_stops_capture_and_keeps_files(cri_server: Server, pods: Pods) -> None:
    bed = pods.bed
    doomed = bed.run_pod("doomed", [
        "sh", "-c", f"while true; do wget -q -O /dev/null http://{pods.web.ip}/; sleep 0.1; done"])
    cid = cri_server.sniff(doomed.sandbox_id, duration=0)
    wait_for(lambda: cri_server.sniffer(cid)["stats"]["captured"] > 10, what="packets")
    bed.remove_pod(doomed.sandbox_id)
    final = wait_for(lambda: (s := cri_server.sniffer(cid))["status"] != "running" and s,
                     timeout=15, what="the capture to notice the pod is gone")
    assert (final["status"], final["reason"]) == ("stopped", "container exited")
    _, packets = read_pcap(cri_server.pcap(cid))
    assert len(packets) == final["stats"]["captured"] > 10
    assert (doomed.ip, pods.web.ip) in tcp_flows(packets)

    # A new pod under the same name (and maybe the same IP) is a different workload: the old
    # capture stays stopped and its download is still what the first pod sent.
    again = bed.run_pod("doomed", ["sleep", "3600"])
    assert again.sandbox_id != doomed.sandbox_id
    later = cri_server.sniffer(cid)
    assert (later["status"], later["container_id"]) == ("stopped", doomed.sandbox_id)
    assert later["stats"] == final["stats"]
    assert read_pcap(cri_server.pcap(cid))[1] == packets


def test_a_container_exit_freezes_its_recorder_ring(cri_server: Server, pods: Pods) -> None:
    """A recorder on the CRI (issue 21): a member container that exits non-zero freezes its
    own ring, the reason in ContainerStatus's words. The container ends when the test's TCP
    connection (the marker) closes, so the marker is the last thing before the exit."""
    bed = pods.bed
    name = f"crash-{secrets.token_hex(3)}"
    crash = bed.run_pod(name, ["sh", "-c", "nc -l -p 9 >/dev/null; exit 3"])
    try:
        with cri_server.client() as c:
            rec = create(c, name=f"cri-{name}", labels=f"app={name}", window_s=30, bytes_mb=2,
                         after_s=0, cooldown_s=0)
            ring = members(c, rec["id"], 1)[0]
            assert ring["workload_id"] == crash.container_id
            payload = f"podcap-cri-exit-{secrets.token_hex(8)}".encode()
            with socket.create_connection((crash.ip, 9), timeout=5) as conn:
                conn.sendall(payload)
            snap = snapshot(cri_server, c, ring["capture_id"], timeout=20)
            assert snap["reason"] == "triggered: container exited 3"
            assert holds(snap["pcap"], payload)
            assert c.delete(f"/api/recorders/{rec['id']}").status_code == 204
    finally:
        bed.remove_pod(crash.sandbox_id)

