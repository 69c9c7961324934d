"""The network-state snapshot against a real container: its addresses, routes and sockets come
from the container's own namespace (not the host's), it is served at /api/captures/{id}/netstate
(and by the CLI, and from a remote agent), and it goes with the capture."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker.models.containers import Container

from podcap.agent import netstate
from podcap.controller.netstate_note import as_text
from tests.support import PODCAP, Server, container_ip, remove_container, run_container, unique

PORT = 48123  # the container listens here; the host does not


@pytest.fixture(scope="module")
def listener() -> Iterator[Container]:
    """A busybox container with a TCP listener of its own."""
    container = run_container(unique("netstate"), [
        "sh", "-c", f"nc -l -p {PORT} & exec sleep 300"])
    try:
        yield container
    finally:
        remove_container(container)


@pytest.fixture(scope="module")
def host_socket() -> Iterator[int]:
    """A listening socket in the host's namespace (the test process's): never in a snapshot."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield s.getsockname()[1]


def _start(server: Server, container: Container) -> str:
    with server.client() as c:
        r = c.post("/api/captures", json={"workload_id": container.id, "duration": 0})
    assert r.status_code == 201, r.text
    return r.json()["capture"]["id"]


def _netstate(server: Server, cid: str) -> dict:
    with server.client() as c:
        r = c.get(f"/api/captures/{cid}/netstate")
    assert r.status_code == 200, r.text
    return r.json()["netstate"]


def _netns_inode(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def _check_is_the_containers(doc: dict, container: Container, host_port: int) -> None:
    container.reload()
    pid = container.attrs["State"]["Pid"]
    assert doc["errors"] == []
    # the container's namespace, not the host's
    assert doc["netns_inode"] == _netns_inode(pid) != _netns_inode(os.getpid())
    addresses = {a["address"] for i in doc["interfaces"] for a in i["addresses"]}
    assert container_ip(container) in addresses
    assert "127.0.0.1" in addresses
    gateway = next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["Gateway"]
    assert any(r["dst"] == "default" and r["gateway"] == gateway for r in doc["routes"])
    listening = [s for s in doc["sockets"] if s["proto"] == "tcp" and s["state"] == "LISTEN"]
    mine = [s for s in listening if s["local"].endswith(f":{PORT}")]
    assert mine, doc["sockets"]
    assert [p["name"] for p in mine[0]["processes"]] == ["nc"]
    assert not [s for s in doc["sockets"] if s["local"].endswith(f":{host_port}")]


def test_snapshot_is_the_containers_namespace(server: Server, listener: Container,
                                              host_socket: int) -> None:
    cid = _start(server, listener)
    try:
        doc = _netstate(server, cid)  # right after the start: waits for the snapshot
        _check_is_the_containers(doc, listener, host_socket)
        assert (server.data_dir / "captures" / cid / netstate.FILE).is_file()
        text = as_text(doc)
        assert container_ip(listener) in text and f":{PORT}" in text
    finally:
        with server.client() as c:
            c.delete(f"/api/captures/{cid}")


def test_cli_shows_the_snapshot(server: Server, listener: Container) -> None:
    cid = _start(server, listener)
    env = {**os.environ, "PODCAP_SERVER": server.url, "PODCAP_TOKEN": server.token,
           "HOME": str(server.data_dir.parent)}
    try:
        table = subprocess.run([PODCAP, "capture", "netstate", cid[:12]], env=env,
                               capture_output=True, text=True, timeout=60)
        assert table.returncode == 0, table.stderr
        assert container_ip(listener) in table.stdout and f":{PORT}" in table.stdout
        assert "Routes:" in table.stdout and "default" in table.stdout
        as_json = subprocess.run([PODCAP, "capture", "netstate", cid, "-o", "json"], env=env,
                                 capture_output=True, text=True, timeout=60)
        assert as_json.returncode == 0, as_json.stderr
        assert json.loads(as_json.stdout)["netstate"] == _netstate(server, cid)
    finally:
        with server.client() as c:
            c.delete(f"/api/captures/{cid}")


def test_deleted_with_the_capture(server: Server, listener: Container) -> None:
    cid = _start(server, listener)
    _netstate(server, cid)
    path = server.data_dir / "captures" / cid / netstate.FILE
    assert path.is_file()
    with server.client() as c:
        assert c.delete(f"/api/captures/{cid}").status_code == 204
        r = c.get(f"/api/captures/{cid}/netstate")
    assert r.status_code == 404
    assert not path.exists() and not path.parent.exists()


def test_a_capture_without_a_snapshot_answers_404(server: Server, listener: Container) -> None:
    """A capture of an older podcap has no netstate.json: 404 that says why."""
    cid = _start(server, listener)
    try:
        _netstate(server, cid)
        (server.data_dir / "captures" / cid / netstate.FILE).unlink()
        with server.client() as c:
            r = c.get(f"/api/captures/{cid}/netstate")
        assert r.status_code == 404, r.text
        assert "no network-state snapshot" in r.json()["message"]
    finally:
        with server.client() as c:
            c.delete(f"/api/captures/{cid}")


def test_snapshot_from_a_remote_agent(tmp_path: Path, listener: Container,
                                      host_socket: int) -> None:
    """Documents travel over the agent's gRPC session: the same snapshot, same checks."""
    from tests.cluster.cluster_support import AgentProc, running_cluster

    with running_cluster(tmp_path) as cluster:
        agent = AgentProc(cluster, socket.gethostname(), tmp_path / "agent")
        agent.start(cluster.join_token())
        try:
            cid = cluster.server.sniff(listener.id, duration=120)
            doc = _netstate(cluster.server, cid)
            _check_is_the_containers(doc, listener, host_socket)
            assert (agent.data_dir / "captures" / cid / netstate.FILE).is_file()
            with cluster.server.client() as c:
                assert c.delete(f"/api/captures/{cid}").status_code == 204
                assert c.get(f"/api/captures/{cid}/netstate").status_code == 404
            assert not (agent.data_dir / "captures" / cid).exists()
        finally:
            agent.stop()


# ---- parsing and text, no container needed -------------------------------------------------

SS = """\
tcp LISTEN 0 128 0.0.0.0:80 0.0.0.0:* users:(("httpd",pid=10,fd=3),("httpd",pid=11,fd=3))
tcp   ESTAB  0      36      172.17.0.2:80      172.17.0.3:51234
udp   UNCONN 0      0      0.0.0.0%eth0:68           0.0.0.0:*    users:(("a \\"b\\" c",pid=7,fd=5))
"""


def test_ss_lines_parse() -> None:
    rows = netstate.sockets(SS)
    assert [(r["proto"], r["state"], r["local"], r["peer"]) for r in rows] == [
        ("tcp", "LISTEN", "0.0.0.0:80", "0.0.0.0:*"),
        ("tcp", "ESTAB", "172.17.0.2:80", "172.17.0.3:51234"),
        ("udp", "UNCONN", "0.0.0.0%eth0:68", "0.0.0.0:*")]
    assert rows[0]["processes"] == [{"name": "httpd", "pid": 10, "fd": 3},
                                    {"name": "httpd", "pid": 11, "fd": 3}]
    assert rows[1]["processes"] == [] and rows[1]["send_q"] == 36
    assert rows[2]["processes"][0]["pid"] == 7


def test_text_rendering_is_short_and_says_what_is_left_out() -> None:
    doc = {"taken_at": 0, "netns_inode": 1,
           "interfaces": [{"ifname": "eth0", "state": "UP", "mac": "02:42:ac:11:00:02",
                           "addresses": [{"address": "172.17.0.2", "prefixlen": 16}]}],
           "routes": [{"dst": "default", "gateway": "172.17.0.1", "dev": "eth0"}],
           "neighbours": [],
           "sockets": netstate.sockets(SS * 30), "truncated": {"sockets": 5}, "errors": ["x"]}
    text = as_text(doc, max_rows=10)
    assert "eth0 UP 02:42:ac:11:00:02 172.17.0.2/16" in text
    assert "default via 172.17.0.1 dev eth0" in text
    assert "Neighbours: none" in text
    assert "… and 85 more" in text  # 80 not shown + 5 left out of the snapshot
    assert text.count("\n") < 30


def test_followed_pcapng_carries_the_snapshot_on_its_interface(
        server: Server, listener: Container, tmp_path: Path) -> None:
    from tests.groups.group_support import walk

    with server.client() as c:
        r = c.post("/api/captures", json={"workload_id": listener.id, "duration": 2})
        assert r.status_code == 201, r.text
        cid = r.json()["capture"]["id"]
        _netstate(server, cid)  # the snapshot is taken in the background after the start
        r = c.get(f"/api/captures/{cid}/pcap", params={"follow": "true", "format": "pcapng"},
                  timeout=30)  # ends with the capture
    assert r.status_code == 200, r.text
    path = tmp_path / "followed.pcapng"
    path.write_bytes(r.content)
    [idb] = walk(path).interfaces
    [note] = idb["comments"]
    assert note.startswith("Network state at capture start")
    assert container_ip(listener) in note
