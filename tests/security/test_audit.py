"""The audit log: one test per event kind, through a real server on SQLite and PostgreSQL; the
admin-only, filtered, paged GET /api/audit; the JSON-lines copy in the data dir."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from podcap import limits
from tests.cluster.cluster_support import AgentProc, Cluster
from tests.support import Server, free_port, running_server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def srv(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Server]:
    env = {}
    if request.param == "postgresql":
        from tests.pg import new_database
        env["PODCAP_DATABASE_URL"] = new_database(request.getfixturevalue("postgres_url"))
    ports = (free_port(), free_port())
    with running_server(tmp_path_factory.mktemp("audit"), env=env, extra_args=[
            "--agent-listen", f"127.0.0.1:{ports[0]}",
            "--join-listen", f"127.0.0.1:{ports[1]}",
            "--data-listen", f"127.0.0.1:{free_port()}"]) as server:
        server.agent_ports = ports  # type: ignore[attr-defined]
        yield server


def events(srv: Server, **params: object) -> list[dict]:
    with srv.client() as c:
        r = c.get("/api/audit", params=params)
    assert r.status_code == 200, r.text
    return r.json()["events"]


def last(srv: Server, event: str, **params: object) -> dict:
    found = events(srv, event=event, limit=1, **params)
    assert found, f"no {event} event"
    return found[0]


def test_login_events_ok_failed_and_throttled(srv: Server) -> None:
    srv.login()
    ok = last(srv, "login", username="admin", ok=True)
    assert ok["source"] == "127.0.0.1" and ok["ok"] is True
    httpx.post(srv.url + "/v1/auth", json={"password": {"username": "admin",
                                                        "password": "wrong-password"}})
    bad = last(srv, "login", username="admin", ok=False)
    assert bad["detail"] == "wrong username or password" and bad["source"] == "127.0.0.1"
    for _ in range(limits.LOGIN_USER_FREE_FAILURES + 2):
        httpx.post(srv.url + "/api/login", json={"username": "ghost", "password": "nope-nope"})
    throttled = last(srv, "login", username="ghost")
    assert throttled["ok"] is False and "too many failed logins" in throttled["detail"]
    assert len(events(srv, event="login", username="ghost")) == limits.LOGIN_USER_FREE_FAILURES + 2


def test_logout_event(srv: Server) -> None:
    token = srv.login()
    with srv.client(token) as c:
        assert c.post("/api/logout").status_code == 204
    assert last(srv, "logout")["username"] == "admin"
    token = srv.login()
    assert httpx.delete(srv.url + "/v1/auth", headers={"X-Auth-Token": token}).status_code == 200
    assert len(events(srv, event="logout")) == 2


def test_capture_events_name_who_what_and_bytes(srv: Server, pair) -> None:
    cid = srv.sniff(pair.web.id, filter="tcp port 80")
    start = last(srv, "capture.start")
    assert (start["capture_id"], start["username"], start["workload"], start["detail"]) == \
        (cid, "admin", pair.web.name, "tcp port 80")
    srv.stop_sniffer(cid)
    assert last(srv, "capture.stop")["capture_id"] == cid
    data = srv.pcap(cid)
    download = last(srv, "download")
    assert (download["capture_id"], download["bytes"], download["ok"]) == (cid, len(data), True)
    v1 = srv.v1_pcap(cid)
    assert last(srv, "download")["bytes"] == len(v1)
    with srv.client() as c:
        assert c.delete(f"/v1/sniffer/{cid}").status_code == 200
    deleted = last(srv, "capture.delete")
    assert deleted["capture_id"] == cid and deleted["workload"] == pair.web.name
    assert [e["event"] for e in events(srv, capture_id=cid)] == [
        "capture.delete", "download", "download", "capture.stop", "capture.start"]


def test_user_events(srv: Server) -> None:
    with srv.client() as c:
        assert c.post("/api/users", json={"username": "audited", "password": "first-password",
                                          "role": "reader"}).status_code == 201
        assert c.patch("/api/users/audited", json={"download": True}).status_code == 200
        assert c.post("/api/users/audited/password",
                      json={"password": "second-password"}).status_code == 204
        assert c.post("/api/users/audited/unlock").status_code == 204
        assert c.delete("/api/users/audited").status_code == 204
    kinds = [e["event"] for e in events(srv, username="admin") if "audited" in e["detail"]]
    assert kinds == ["user.remove", "user.unlock", "user.password", "user.change", "user.add"]
    change = last(srv, "user.change")
    assert change["detail"] == "user audited: role reader, namespaces (all), download yes"
    assert "second-password" not in json.dumps(events(srv, limit=500))


def test_agent_events(srv: Server, tmp_path: Path) -> None:
    agent_port, join_port = srv.agent_ports  # type: ignore[attr-defined]
    cluster = Cluster(srv, "127.0.0.1", agent_port, join_port)
    token = cluster.join_token()
    assert "join token for 1 agent" in last(srv, "agent.token")["detail"]
    agent = AgentProc(cluster, "audit-node", tmp_path / "agent").start(token)
    try:
        aid = cluster.agent("audit-node")["id"]
        with srv.client() as c:
            assert c.delete(f"/api/agents/{aid}").status_code == 204
        revoke = last(srv, "agent.revoke")
        assert revoke["detail"] == f"agent {aid}" and revoke["username"] == "admin"
    finally:
        agent.stop()


def test_audit_is_for_admins_filtered_and_paged(srv: Server) -> None:
    with srv.client() as c:
        c.post("/api/users", json={"username": "peeker", "password": "peeker-password",
                                   "role": "operator"})
    with srv.client(srv.login("peeker", "peeker-password")) as c:
        r = c.get("/api/audit")
        assert r.status_code == 403 and "not an admin" in r.json()["message"]
    for _ in range(3):
        srv.login()
    with srv.client() as c:
        page = c.get("/api/audit", params={"event": "login", "limit": 2}).json()
        assert len(page["events"]) == 2 and page["total"] >= 5
        nxt = c.get("/api/audit", params={"event": "login", "limit": 2, "offset": 2}).json()
        assert {e["id"] for e in page["events"]}.isdisjoint(e["id"] for e in nxt["events"])
        assert page["events"][0]["id"] > page["events"][1]["id"] > nxt["events"][0]["id"]
        since = page["events"][1]["time"]
        recent = c.get("/api/audit", params={"event": "login", "since": since}).json()
        assert all(e["time"] >= since for e in recent["events"])
        for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"since": "yesterday"},
                    {"event": "x" * 40}):
            r = c.get("/api/audit", params=bad)
            assert r.status_code == 400, (bad, r.text)


def test_json_lines_mirror_the_database(srv: Server) -> None:
    srv.login()
    path = srv.data_dir / "audit.jsonl"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    newest = events(srv, limit=5)
    assert lines[-5:] == list(reversed(newest))
