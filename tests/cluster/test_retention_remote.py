"""Retention, reclaim and Range with a remote agent: a real controller and a `podcap agent` that
dialled it over mutual TLS (the agent runs here, on the Docker engine).

What crosses the wire: the Range offset (``Download.offset``, applied by the agent that holds
the files), the ids a start reclaimed (``Capture.reclaimed``, audited by the controller), and
the retention sweep's deletes. An agent that is away keeps its old captures until it is back.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from tests.cluster.cluster_support import AgentProc, running_cluster
from tests.support import Server, WebPair, wait_for, web_pair

DAY = 86_400
MB = 1_000_000


def stopped_capture(srv: Server, pair: WebPair) -> dict:
    cid = srv.sniff(pair.web.id, file_number=1, file_size_mb=1)
    wait_for(lambda: srv.sniffer(cid)["stats"]["captured"] >= 3, what="packets")
    srv.stop_sniffer(cid)
    return srv.sniffer(cid)


def events(srv: Server, event: str) -> list[dict]:
    with srv.client() as c:
        return c.get("/api/audit", params={"event": event}).json()["events"]


def listed(srv: Server, cid: str) -> dict | None:
    with srv.client() as c:
        found = [o for o in c.get("/api/captures").json()["captures"] if o["id"] == cid]
    return found[0] if found else None


def test_remote_agent_range_retention_and_reclaim(tmp_path: Path) -> None:
    env = {"PODCAP_RETENTION_DAYS": "2", "PODCAP_RETENTION_SWEEP_S": "0.3"}
    with running_cluster(tmp_path, env=env) as cluster, web_pair("remote-ret") as pair:
        srv = cluster.server
        agent = AgentProc(cluster, socket.gethostname(), tmp_path / "agent")
        agent.start(cluster.join_token())
        try:
            with srv.client() as c:
                shown = c.get("/api/limits").json()
            assert (shown["retention_days"], shown["reclaim"]) == (2, None)
            first, second, third = (stopped_capture(srv, pair) for _ in range(3))

            # Range: the offset is applied on the agent, over gRPC.
            with srv.client() as c:
                whole = c.get(f"/api/captures/{third['id']}/pcap")
                half = len(whole.content) // 2
                rest = c.get(f"/api/captures/{third['id']}/pcap", headers={
                    "Range": f"bytes={half}-", "If-Range": whole.headers["etag"]})
            assert rest.status_code == 206
            assert whole.content[:half] + rest.content == whole.content
            assert rest.headers["content-range"] == \
                f"bytes {half}-{len(whole.content) - 1}/{len(whole.content)}"
            # A bounded range: the controller cuts the agent's stream and audits what it sent.
            with srv.client() as c:
                ten = c.get(f"/api/captures/{third['id']}/pcap", headers={"Range": "bytes=0-9"})
            assert ten.status_code == 206 and ten.content == whole.content[:10]
            audited = events(srv, "download")[0]
            assert (audited["capture_id"], audited["bytes"], audited["ok"]) == \
                (third["id"], 10, True)

            # Away: its old capture stays (last known state is not enough to delete on).
            agent.stop()
            cluster.wait_connected(agent.node, connected=False)
            record = agent.data_dir / "captures" / first["id"] / "capture.json"
            data = json.loads(record.read_text())
            data["stop_time"] = time.time() - 3 * DAY
            record.write_text(json.dumps(data))
            time.sleep(1.5)  # several sweeps
            assert listed(srv, first["id"]) is not None
            assert events(srv, "capture.expired") == []

            # Back, with reclaim on and a budget that needs the 2nd capture's room.
            budget = 2 * MB + third["size"] + second["size"] // 2
            agent.runtime_args += ["--reclaim", "oldest", "--disk-budget", str(budget)]
            agent.start()
            with srv.client() as c:
                [node] = c.get("/api/limits").json()["nodes"]
            assert (node["node"], node["disk_budget"], node["reclaim"]) == \
                (agent.node, budget, "oldest"), node
            wait_for(lambda: events(srv, "capture.expired"), what="the old capture to expire")
            [expired] = events(srv, "capture.expired")
            assert expired["capture_id"] == first["id"]
            assert not (agent.data_dir / "captures" / first["id"]).exists()
            assert listed(srv, first["id"]) is None

            running = srv.sniff(pair.web.id, file_number=1, file_size_mb=1)
            with srv.client() as c:
                r = c.post("/api/captures", json={"workload_id": pair.web.id,
                                                  "file_number": 1, "file_size_mb": 1})
            assert r.status_code == 201, r.text
            [reclaimed] = events(srv, "capture.reclaimed")
            assert reclaimed["capture_id"] == second["id"]
            assert r.json()["capture"]["id"] in reclaimed["detail"]
            assert not (agent.data_dir / "captures" / second["id"]).exists()
            assert listed(srv, third["id"]) is not None
            assert srv.sniffer(running)["status"] == "running"
            for cid in (running, r.json()["capture"]["id"]):
                srv.stop_sniffer(cid)
        finally:
            agent.stop()
