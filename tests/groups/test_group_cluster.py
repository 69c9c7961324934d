"""A capture group across two nodes: a controller, node A's agent on the Docker engine and node
B's on the private containerd CRI of tests/cri (both agents dial the controller over loopback
gRPC, as in tests/cluster). One label selector matches a Docker container on A and a CRI pod's
container on B; the merged pcapng names both nodes and is in time order."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.cluster_support import AgentProc, running_cluster
from tests.cri import cri_testbed
from tests.groups.group_support import (
    client_of,
    ip_of,
    pod,
    tag,
    tcpdump_count,
    tshark_fields,
    walk,
)
from tests.support import enter_bed, read_pcap, remove_container, wait_for

pytestmark = pytest.mark.cri


def test_one_group_two_nodes_one_pcapng(tmp_path: Path) -> None:
    t = tag()
    made = []
    try:
        with enter_bed(cri_testbed.cri_testbed()) as cri, \
                running_cluster(tmp_path) as cluster:
            web_b = cri.run_pod(f"xweb-{t}", ["httpd", "-f", "-p", "80", "-h", "/www"],
                                pod_labels={"grp": t})
            cri.run_pod(f"xcli-{t}", ["sh", "-c", f"while true; do wget -q -O - "
                                                 f"http://{web_b.ip}/; sleep 0.2; done"])
            web_a = pod("xweb", {"grp": t})
            made.append(web_a)
            made.append(client_of("xcli", [ip_of(web_a)]))
            a = AgentProc(cluster, "node-a", tmp_path / "a", ["--runtime", "docker"])
            b = AgentProc(cluster, "node-b", tmp_path / "b",
                          ["--runtime", "cri", "--cri-socket", str(cri.socket)])
            token = cluster.join_token(uses=2)
            a.start(token)
            b.start(token)
            try:
                with cluster.server.client() as c:
                    r = c.post("/api/capture-groups", json={"labels": f"grp={t}"})
                    assert r.status_code == 201, r.text
                    group = r.json()["group"]
                    assert sorted(m["node"] for m in group["members"]) == ["node-a", "node-b"]
                    gid = group["id"]

                    def both_capture() -> bool:
                        g = c.get(f"/api/capture-groups/{gid}").json()["group"]
                        return all(m["capture"]["stats"]["captured"] > 5 for m in g["members"])

                    wait_for(both_capture, timeout=40, interval=0.5, what="packets on both")
                    group = c.post(f"/api/capture-groups/{gid}/stop").json()["group"]
                    path = tmp_path / "cluster.pcapng"
                    with c.stream("GET", f"/api/capture-groups/{gid}/pcapng") as resp:
                        assert resp.status_code == 200
                        with path.open("wb") as f:
                            for chunk in resp.iter_bytes():
                                f.write(chunk)
                    counts = [len(read_pcap(cluster.server.pcap(m["capture_id"]))[1])
                              for m in group["members"]]
            finally:
                a.stop()
                b.stop()
        blocks = walk(path)
        described = {i["description"].split(";")[0] for i in blocks.interfaces}
        assert described == {"k8s.node=node-a", "k8s.node=node-b"}
        cri_idb = next(i for i in blocks.interfaces if "node-b" in i["description"])
        assert cri_idb["name"] == f"podcap-test/xweb-{t}/xweb-{t}"
        assert f"k8s.namespace=podcap-test;k8s.podName=xweb-{t}" in cri_idb["description"]
        times = [float(r[0]) for r in tshark_fields(path, "frame.time_epoch")]
        assert len(times) == sum(counts) == tcpdump_count(path)
        assert times == sorted(times)
    finally:
        for m in made:
            remove_container(m)
