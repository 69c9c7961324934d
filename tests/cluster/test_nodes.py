"""Two real nodes and a controller on one machine: node A's agent uses the Docker engine, node B's
the private containerd CRI of tests/cri; each agent runs inside its node's network namespace and
reaches the controller over a veth on a private bridge (netbed.py). The controller's database is
a private PostgreSQL. Tests run in order: they share the nodes, as a cluster's users would.

The controller carries the net bed's process mark, so a test run killed outright leaves no
controller behind either: the next bed sweeps it with the nodes' processes."""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster import netbed
from tests.cluster.cluster_support import AgentProc, Cluster, running_cluster
from tests.cri import cri_testbed
from tests.support import (
    WebPair,
    enter_bed,
    read_pcap,
    remove_container,
    run_container,
    tcp_flows,
    unique,
    wait_for,
    web_pair,
)

pytestmark = pytest.mark.cri


@dataclass
class Nodes:
    cluster: Cluster
    bed: netbed.NetBed
    a: AgentProc
    b: AgentProc
    pair: WebPair  # Docker containers: node A
    web_pod: cri_testbed.Pod  # CRI pod: node B
    tmp: Path
    cri: cri_testbed.CriTestbed

    def listed(self) -> dict[str, dict]:
        """Every workload of /api/workloads by id (stale ones included)."""
        return {w["id"]: w for w in self.v1("GET", "/api/workloads").json()["workloads"]}

    def commands(self) -> Counter[tuple[str, str]]:
        """Commands the controller sent to agents, by (node, operation), from /metrics."""
        sent: Counter[tuple[str, str]] = Counter()
        for line in self.v1("GET", "/metrics").text.splitlines():
            if line.startswith("podcap_agent_commands_total{"):
                labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
                sent[(labels["node"], labels["op"])] = int(float(line.rsplit(" ", 1)[1]))
        return sent

    def v1(self, method: str, path: str, **kwargs: object):  # type: ignore[no-untyped-def]
        with self.cluster.server.client() as c:
            return c.request(method, path, **kwargs)  # type: ignore[arg-type]

    def files_of(self, agent: AgentProc, cid: str) -> list[Path]:
        return sorted((agent.data_dir / "captures" / cid / "files").glob("capture.pcap*"))


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Nodes]:
    from tests.pg import new_database

    tmp = tmp_path_factory.mktemp("nodes")
    with enter_bed(netbed.net_bed()) as bed, enter_bed(cri_testbed.cri_testbed()) as cri, \
            web_pair("nodes") as pair, \
            running_cluster(tmp, host=bed.controller_ip, database_url=new_database(postgres_url),
                            env={netbed.ENV_MARK: f"{netbed.NETNS_PREFIX}{bed.tag}-ctl"}
                            ) as cluster:
        web = cri.run_pod("web", ["httpd", "-f", "-p", "80", "-h", "/www"])
        cri.run_pod("client", ["sh", "-c", f"while true; do wget -q -O - http://{web.ip}/; "
                                           "sleep 0.2; done"])
        node_a, node_b = bed.add_node("a"), bed.add_node("b")
        a = AgentProc(cluster, "node-a", tmp / "a", ["--runtime", "docker"],
                      launch=lambda argv, log: node_a.popen(argv, log=log))
        b = AgentProc(cluster, "node-b", tmp / "b",
                      ["--runtime", "cri", "--cri-socket", str(cri.socket)],
                      launch=lambda argv, log: node_b.popen(argv, log=log))
        token = cluster.join_token(uses=2)
        a.start(token)
        b.start(token)
        try:
            yield Nodes(cluster, bed, a, b, pair, web, tmp, cri)
        finally:
            a.stop()
            b.stop()
    assert netbed.leftovers() == []


def test_join_lists_both_nodes_with_their_workloads(nodes: Nodes) -> None:
    enforcers = {e["name"]: e for e in nodes.v1("GET", "/v1/enforcer").json()["enforcers"]}
    assert set(enforcers) == {"node-a", "node-b"}
    assert enforcers["node-a"]["runtimes"] == ["docker"]
    assert enforcers["node-b"]["runtimes"] == ["cri"]
    assert all(e["connection_state"] == "connected" for e in enforcers.values())
    workloads = nodes.v1("GET", "/v1/workload").json()["workloads"]
    by_id = {w["id"]: w for w in workloads}
    assert by_id[nodes.pair.web.id]["host_name"] == "node-a"
    assert by_id[nodes.pair.web.id]["enforcer_id"] == enforcers["node-a"]["id"]
    assert by_id[nodes.web_pod.container_id]["host_name"] == "node-b"
    assert by_id[nodes.web_pod.container_id]["enforcer_id"] == enforcers["node-b"]["id"]
    assert nodes.v1("GET", "/api/workloads").json()["unreachable"] == []


def test_a_container_on_each_node_is_listed_and_gone_within_2_s_asking_no_agent(
        nodes: Nodes) -> None:
    """The inventory (issue 19): each agent pushes what its runtime reports (Docker's events on
    node A, containerd relisted on node B), and every list is answered from the views: the
    controller sends no command to any agent while dozens of lists run."""
    before = nodes.commands()
    box = run_container(unique("nodes-inv"), ["sleep", "300"])
    began = time.monotonic()
    pod = nodes.cri.run_pod("inventory", ["sleep", "300"])
    took: dict[str, float] = {}
    try:
        for wid, what in ((box.id, "a"), (pod.container_id, "b")):
            wait_for(lambda wid=wid: wid in nodes.listed(), timeout=2.0,
                     interval=0.05, what=f"node {what}'s new container listed")
            took[what] = time.monotonic() - began
    finally:
        remove_container(box)
        gone_at = time.monotonic()
        nodes.cri.remove_pod(pod.sandbox_id)
    for wid, what in ((box.id, "a"), (pod.container_id, "b")):
        wait_for(lambda wid=wid: wid not in nodes.listed(), timeout=2.0, interval=0.05,
                 what=f"node {what}'s removed container gone")
        took[f"{what} gone"] = time.monotonic() - gone_at
    for path in ("/v1/workload", "/v1/sniffer", "/api/captures"):
        assert nodes.v1("GET", path).status_code == 200
    assert nodes.commands() == before  # not one command reached an agent
    print("inventory: " + ", ".join(f"{k} {v:.2f} s" for k, v in took.items()))


def test_capture_on_each_node_and_download_through_the_controller(nodes: Nodes) -> None:
    enforcers = {e["name"]: e["id"] for e in nodes.v1("GET", "/v1/enforcer").json()["enforcers"]}
    r = nodes.v1("POST", "/v1/sniffer", params={"f_workload": nodes.web_pod.container_id,
                                                 "f_enforcer": enforcers["node-a"]},
                 json={"sniffer": {}})
    assert r.status_code == 400 and "is not the node of workload" in r.json()["message"]

    server = nodes.cluster.server
    on_a = server.sniff(nodes.pair.web.id, filter="tcp port 80")
    on_b = server.sniff(nodes.web_pod.container_id, filter="tcp port 80")
    time.sleep(3)
    server.stop_sniffer(on_a)
    server.stop_sniffer(on_b)
    for cid, agent, node in ((on_a, nodes.a, "node-a"), (on_b, nodes.b, "node-b")):
        sniffer = server.sniffer(cid)
        assert sniffer["status"] == "stopped" and sniffer["enforcer_id"] == enforcers[node]
        files = nodes.files_of(agent, cid)
        assert len(files) == 1
        native, v1 = server.pcap(cid), server.v1_pcap(cid)
        assert native == v1 == files[0].read_bytes()  # byte-identical to the node's file
        linktype, packets = read_pcap(native)
        assert linktype == 276 and len(packets) == sniffer["stats"]["captured"] > 10
        assert tcp_flows(packets)


def test_partition_of_node_b(nodes: Nodes) -> None:
    server = nodes.cluster.server
    cid = server.sniff(nodes.web_pod.container_id, duration=20, filter="tcp port 80")
    doomed = nodes.cri.run_pod("doomed", ["sleep", "300"])
    wait_for(lambda: doomed.container_id in nodes.listed(), timeout=2.0, what="doomed listed")
    node_b = nodes.bed.node("b")
    node_b.cut()
    cut_at = time.monotonic()
    try:
        nodes.cluster.wait_connected("node-b", connected=False, timeout=16)
        detected = time.monotonic() - cut_at
        assert detected <= 15
        slowest = 0.0
        for path in ("/v1/workload", "/v1/sniffer", "/api/workloads", "/api/captures"):
            began = time.monotonic()
            r = nodes.v1("GET", path)
            slowest = max(slowest, time.monotonic() - began)
            assert r.status_code == 200 and time.monotonic() - began < 2, path
        assert nodes.pair.web.id in [w["id"] for w in
                                     nodes.v1("GET", "/v1/workload").json()["workloads"]]
        native = nodes.v1("GET", "/api/workloads").json()
        assert [u["node"] for u in native["unreachable"]] == ["node-b"]
        assert native["unreachable"][0]["synced_at"] > time.time() - 60
        listed = {w["id"]: w for w in native["workloads"]}  # B's last view, marked stale
        assert listed[nodes.web_pod.container_id]["stale"] is True
        assert listed[nodes.pair.web.id]["stale"] is False
        born = nodes.cri.run_pod("born", ["sleep", "300"])  # while B's link is cut
        nodes.cri.remove_pod(doomed.sandbox_id)
        assert doomed.container_id in nodes.listed() and born.container_id not in nodes.listed()
        captures = {c["id"]: c for c in nodes.v1("GET", "/api/captures").json()["captures"]}
        assert captures[cid]["stale"] is True and captures[cid]["status"] == "running"
        r = nodes.v1("PATCH", f"/v1/sniffer/stop/{cid}")
        assert r.status_code == 503 and "node-b" in r.json()["message"]
        time.sleep(max(0.0, 30 - (time.monotonic() - cut_at)))
    finally:
        node_b.heal()
    healed_at = time.monotonic()
    nodes.cluster.wait_connected("node-b", timeout=16)
    back = time.monotonic() - healed_at
    assert back <= 15
    print(f"partition: disconnected after {detected:.1f} s, slowest list {slowest:.2f} s, "
          f"connected again {back:.1f} s after the link returned")
    listed = nodes.listed()  # B's view, resynced by the snapshot of its new session
    assert born.container_id in listed and doomed.container_id not in listed
    assert listed[born.container_id]["stale"] is False
    nodes.cri.remove_pod(born.sandbox_id)
    sniffer = server.sniffer(cid)
    assert sniffer["status"] == "stopped" and sniffer["reason"] == "duration reached"
    assert sniffer["stale"] is False and sniffer["stats"]["captured"] > 0
    data = server.pcap(cid)
    assert data == nodes.files_of(nodes.b, cid)[0].read_bytes()
    assert len(read_pcap(data)[1]) == sniffer["stats"]["captured"]


def test_recorder_on_node_b_freezes_while_its_link_is_cut(nodes: Nodes) -> None:
    """A recorder on the CRI node behind its own veth (issue 21, "the same on a remote node"):
    the member's container exits while node B's link is cut, so the agent freezes the ring on
    its own; once the link is back the controller shows the snapshot, reason and packets."""
    import json
    import secrets
    import socket

    from tests.recorders.rec_support import create, holds, members, recorder, snapshot

    name = f"far-{secrets.token_hex(3)}"
    crash = nodes.cri.run_pod(name, ["sh", "-c", "nc -l -p 9 >/dev/null; exit 5"])
    server = nodes.cluster.server
    node_b = nodes.bed.node("b")
    try:
        with server.client() as c:
            rec = create(c, name=f"nb-{name}", labels=f"app={name}", window_s=30, bytes_mb=2,
                         after_s=0, cooldown_s=0)
            ring = members(c, rec["id"], 1)[0]
            assert (ring["node"], ring["workload_id"]) == ("node-b", crash.container_id)
            record = nodes.b.data_dir / "captures" / ring["capture_id"] / "capture.json"
            node_b.cut()
            try:
                payload = f"podcap-far-{secrets.token_hex(8)}".encode()
                with socket.create_connection((crash.ip, 9), timeout=5) as conn:
                    conn.sendall(payload)  # the container exits once this closes
                frozen = wait_for(lambda: (r := json.loads(record.read_text()))["status"] ==
                                  "stopped" and r, timeout=15, what="the agent's own freeze")
                assert frozen["reason"] == "triggered: container exited 5"
            finally:
                node_b.heal()
            snap = snapshot(server, c, ring["capture_id"], timeout=30)
            assert snap["reason"] == "triggered: container exited 5"
            assert holds(snap["pcap"], payload)
            wait_for(lambda: [s["source"] for s in recorder(c, rec["id"])["snapshots"]] ==
                     ["exit"], timeout=10, what="the snapshot noted")
            assert c.delete(f"/api/recorders/{rec['id']}").status_code == 204
    finally:
        nodes.cri.remove_pod(crash.sandbox_id)


def test_agent_sigkill_on_node_b_readopts_without_a_token(nodes: Nodes) -> None:
    server = nodes.cluster.server
    cid = server.sniff(nodes.web_pod.container_id, filter="tcp port 80")
    pid = _tcpdump_pid(nodes.b, cid)
    nodes.b.stop(signal.SIGKILL)
    nodes.cluster.wait_connected("node-b", connected=False)
    nodes.b.start(token=None)  # its certificate is enough
    assert "re-adopted" in nodes.b.log()
    assert server.sniffer(cid)["status"] == "running"
    assert _tcpdump_pid(nodes.b, cid) == pid
    server.stop_sniffer(cid)
    sniffer = server.sniffer(cid)
    assert sniffer["reason"] == "stopped by user"
    assert len(read_pcap(server.pcap(cid))[1]) == sniffer["stats"]["captured"] > 0


def test_controller_sigkill_and_restart(nodes: Nodes) -> None:
    server = nodes.cluster.server
    on_a = server.sniff(nodes.pair.web.id, filter="tcp port 80")
    on_b = server.sniff(nodes.web_pod.container_id, filter="tcp port 80")
    server.stop(signal.SIGKILL)
    time.sleep(2)
    server.start()
    for node in ("node-a", "node-b"):
        nodes.cluster.wait_connected(node, timeout=15)
    captures = {c["id"]: c for c in nodes.v1("GET", "/api/captures").json()["captures"]}
    for cid in (on_a, on_b):
        assert captures[cid]["status"] == "running" and captures[cid]["owner"] == "admin"
        before = captures[cid]["stats"]["captured"]
        wait_for(lambda cid=cid, before=before: server.sniffer(cid)["stats"]["captured"]
                 > before, timeout=10, what="the capture to go on counting")
        server.stop_sniffer(cid)
        sniffer = server.sniffer(cid)
        assert sniffer["reason"] == "stopped by user"
        assert len(read_pcap(server.pcap(cid))[1]) == sniffer["stats"]["captured"]


def _tcpdump_pid(agent: AgentProc, cid: str) -> int:
    """The pid in the capture's record. The agent adds it by a background write after the
    start has answered (the caller does not wait for that fsync), so it is waited for."""
    import json

    path = agent.data_dir / "captures" / cid / "capture.json"
    return int(wait_for(lambda: json.loads(path.read_text())["pid"], timeout=5,
                        what="the record's tcpdump pid"))
