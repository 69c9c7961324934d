"""Insight on real traffic: busybox containers talk HTTP, DNS and TLS while podcap captures;
the summary must agree with tshark on the same file, and a conversation's download must hold
exactly that conversation's packets."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from podcap.insight.conversation import Conversation
from tests.insight import tshark
from tests.support import (
    Server,
    container_ip,
    read_pcap,
    remove_container,
    run_container,
    unique,
    wait_for,
)

HERE = Path(__file__).resolve().parent
NAMES = ["alpha.insight.test", "beta.insight.test", "gamma.example.org"]
TLS_NAME = "tls.insight.test"


@dataclass
class Scene:
    server: Server
    cid: str
    pcap: Path
    summary: dict


def _workload_id(server: Server, name: str) -> str:
    with server.client() as c:
        listing = c.get("/api/workloads").json()["workloads"]
    return next(w["id"] for w in listing if w["name"] == name)


@pytest.fixture(scope="module")
def scene(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    srv = run_container(unique("ins-srv"), ["httpd", "-f", "-p", "80", "-h", "/www"])
    cli = responder = None
    try:
        srv_ip = container_ip(srv)
        srv.reload()
        pid = srv.attrs["State"]["Pid"]
        responder = subprocess.Popen(
            ["nsenter", f"--net=/proc/{pid}/ns/net", "--", sys.executable,
             str(HERE / "responder.py")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert responder.stdout is not None and responder.stdout.readline().strip() == b"ready"
        with server.client() as c:
            r = c.post("/api/captures", json={"workload_id": _workload_id(server, srv.name)})
            assert r.status_code == 201, r.text
            cid = r.json()["capture"]["id"]
        lookups = "; ".join(f"nslookup {n} {srv_ip}" for n in NAMES)
        script = (f"{lookups}; timeout 3 wget -q -O /dev/null https://{TLS_NAME}/; "
                  f"for i in 1 2 3 4 5 6 7 8; do wget -q -O /dev/null http://{srv_ip}/; done; "
                  "echo finished; sleep 300")
        cli = run_container(unique("ins-cli"), ["sh", "-c", script],
                            extra_hosts={TLS_NAME: srv_ip})
        wait_for(lambda: b"finished" in cli.logs(), timeout=30, what="the client's traffic")
        time.sleep(1.0)
        wait_for(lambda: len(_series(server, cid)) >= 3, timeout=15, what="3 series points")
        with server.client() as c:
            assert c.post(f"/api/captures/{cid}/stop").status_code == 200
        pcap = tmp_path_factory.mktemp("insight") / "full.pcap"
        pcap.write_bytes(server.pcap(cid))
        summary = wait_for(lambda: (s := _summary(server, cid))["pending"] == 0 and s,
                           timeout=30, what="the summary")
        yield Scene(server, cid, pcap, summary)
    finally:
        if responder is not None:
            responder.kill()
            responder.wait()
        for c in (cli, srv):
            if c is not None:
                remove_container(c)


def _summary(server: Server, cid: str) -> dict:
    with server.client() as c:
        r = c.get(f"/api/captures/{cid}/summary", params={"top": 10000})
    assert r.status_code == 200, r.text
    return r.json()


def _series(server: Server, cid: str) -> list:
    with server.client() as c:
        return c.get(f"/api/captures/{cid}/series").json()["points"]


def _ours(summary: dict, proto: str) -> tshark.Conv:
    table: tshark.Conv = {}
    for conv in summary["conversations"]:
        if conv["proto"] != proto:
            continue
        a, b = (conv["a"], conv["a_port"]), (conv["b"], conv["b_port"])
        ab = (conv["packets_ab"], conv["bytes_ab"], conv["packets_ba"], conv["bytes_ba"])
        if b < a:
            a, b = b, a
            ab = (ab[2], ab[3], ab[0], ab[1])
        table[(proto, a, b)] = {"frames_ab": ab[0], "bytes_ab": ab[1], "frames_ba": ab[2],
                                "bytes_ba": ab[3]}
    return table


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_conversations_equal_tshark(scene: Scene, proto: str) -> None:
    theirs = tshark.conversations(scene.pcap, proto)
    ours = _ours(scene.summary, proto)
    assert theirs, f"tshark saw no {proto} conversation: the traffic did not happen"
    assert set(ours) == set(theirs)
    for key, row in theirs.items():
        mine = ours[key]
        assert (mine["frames_ab"], mine["frames_ba"]) == (row["frames_ab"], row["frames_ba"]), key
        if row["exact"]:
            assert (mine["bytes_ab"], mine["bytes_ba"]) == (row["bytes_ab"], row["bytes_ba"]), key


def test_timeline_total_is_the_packet_count(scene: Scene) -> None:
    _, packets = read_pcap(scene.pcap)
    points = scene.summary["timeline"]["points"]
    assert sum(p for _, p, _ in points) == len(packets) == scene.summary["packets"]
    assert sum(b for _, _, b in points) == scene.summary["bytes"]
    assert tshark.count(scene.pcap) == len(packets)
    assert not scene.summary["wrapped"] and scene.summary["complete"]


def test_dns_names_match_tshark(scene: Scene) -> None:
    ours = {row["name"] for row in scene.summary["dns"]}
    assert ours == tshark.dns_names(scene.pcap)
    assert set(NAMES) <= ours
    assert all(row["queries"] > 0 and row["responses"] > 0 for row in scene.summary["dns"])


def test_tls_server_names_match_tshark(scene: Scene) -> None:
    ours = {row["name"] for row in scene.summary["tls"]}
    assert ours == tshark.tls_names(scene.pcap) == {TLS_NAME}


def test_protocol_mix(scene: Scene) -> None:
    protos = scene.summary["protocols"]
    assert {"IPv4"} <= {row["name"] for row in protos["link"]}
    assert {"tcp", "udp"} <= {row["name"] for row in protos["ip"]}
    ports = {(row["proto"], row["port"], row["name"]) for row in protos["ports"]}
    assert {("tcp", 80, "http"), ("udp", 53, "dns"), ("tcp", 443, "https")} <= ports
    assert sum(row["packets"] for row in protos["link"]) == scene.summary["packets"]


@pytest.mark.parametrize("proto,port", [("tcp", 80), ("udp", 53), ("tcp", 443)])
def test_conversation_download_holds_exactly_it(scene: Scene, tmp_path: Path, proto: str,
                                                port: int) -> None:
    conv = next(c for c in scene.summary["conversations"]
                if c["proto"] == proto and port in (c["a_port"], c["b_port"]))
    with scene.server.client() as c:
        r = c.get(f"/api/captures/{scene.cid}/conversations/pcap",
                  params={k: conv[k] for k in ("proto", "a", "b", "a_port", "b_port")})
    assert r.status_code == 200, r.text
    assert "attachment" in r.headers["content-disposition"]
    part = tmp_path / "conversation.pcap"
    part.write_bytes(r.content)
    linktype, packets = read_pcap(part)
    assert linktype == 276
    wanted = Conversation.parse(conv["proto"], conv["a"], conv["b"], conv["a_port"],
                                conv["b_port"]).display_filter()
    assert len(packets) == conv["packets"] == tshark.count(scene.pcap, wanted) > 0
    assert tshark.count(part, wanted) == len(packets)  # nothing else in it


def test_conversation_download_by_ticket(scene: Scene) -> None:
    conv = scene.summary["conversations"][0]
    body = {k: conv[k] for k in ("proto", "a", "b", "a_port", "b_port")}
    with scene.server.client() as c:
        ticket = c.post(f"/api/captures/{scene.cid}/conversations/ticket", json=body).json()
    import httpx
    r = httpx.get(scene.server.url + ticket["url"])
    assert r.status_code == 200 and len(read_pcap(r.content)[1]) == conv["packets"]
    again = httpx.get(scene.server.url + ticket["url"])
    assert again.status_code == 401  # one use


@pytest.mark.parametrize("params,field", [
    ({"proto": "tcp", "a": "1.2.3.4; rm -rf /", "b": "10.0.0.1", "a_port": 1, "b_port": 2}, "a "),
    ({"proto": "tcp", "a": "1.2.3.4", "b": "10.0.0.1 or port 22", "a_port": 1, "b_port": 2},
     "b "),
    ({"proto": "tcp", "a": "1.2.3.4", "b": "10.0.0.1", "a_port": 70000, "b_port": 2}, "a_port"),
    ({"proto": "tcp", "a": "1.2.3.4", "b": "::1", "a_port": 1, "b_port": 2}, "must both be"),
    ({"proto": "tcp) or (udp", "a": "1.2.3.4", "b": "10.0.0.1"}, "proto"),
    ({"proto": "icmp", "a": "1.2.3.4", "b": "10.0.0.1", "a_port": 1}, "no ports"),
])
def test_conversation_fields_are_validated(scene: Scene, params: dict, field: str) -> None:
    with scene.server.client() as c:
        r = c.get(f"/api/captures/{scene.cid}/conversations/pcap", params=params)
    assert r.status_code == 400, r.text
    assert field in r.json()["message"]


def test_summary_and_series_need_a_visible_capture(scene: Scene) -> None:
    with scene.server.client() as c:
        assert c.get("/api/captures/" + "0" * 32 + "/summary").status_code == 404
        assert c.get(f"/api/captures/{scene.cid}/summary", params={"top": 0}).status_code == 400
    with scene.server.client(token="nope") as c:
        assert c.get(f"/api/captures/{scene.cid}/summary").status_code == 401
        assert c.get(f"/api/captures/{scene.cid}/series").status_code == 401


def test_series_of_a_capture(scene: Scene) -> None:
    with scene.server.client() as c:
        doc = c.get(f"/api/captures/{scene.cid}/series").json()
    points = doc["points"]
    assert doc["fields"] == ["time", "captured", "dropped", "bytes"]
    assert len(points) >= 2
    assert all(later[0] > earlier[0] and later[1] >= earlier[1] and later[3] >= earlier[3]
               for earlier, later in zip(points, points[1:], strict=False))
    assert points[-1][1] > 0
    with scene.server.client() as c:
        newer = c.get(f"/api/captures/{scene.cid}/series",
                      params={"since": points[-2][0]}).json()["points"]
    assert newer == points[-1:]


def test_cli_capture_show_summary(scene: Scene, tmp_path: Path) -> None:
    import json
    import os

    from tests.support import PODCAP
    env = {**os.environ, "PODCAP_CONFIG": str(tmp_path / "none.json"),
           "PODCAP_SERVER": scene.server.url, "PODCAP_TOKEN": scene.server.token}
    for name in ("PODCAP_USER", "PODCAP_PASSWORD"):
        env.pop(name, None)
    done = subprocess.run([PODCAP, "capture", "show", scene.cid[:10], "--summary"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert f"{scene.summary['packets']} packets" in text
    for heading in ("Conversations (", "Protocols:", "DNS names queried:", "TLS server names:",
                    "Timeline (1 s buckets):"):
        assert heading in text, text
    assert TLS_NAME in text and all(n in text for n in NAMES)
    top = scene.summary["conversations"][0]
    assert f"{top['a']}:{top['a_port']}" in text
    done = subprocess.run([PODCAP, "capture", "show", scene.cid, "--summary", "--top", "1",
                           "-o", "json"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)["summary"]
    assert len(doc["conversations"]) == 1 and doc["packets"] == scene.summary["packets"]


def test_summary_needs_the_download_right_series_does_not(scene: Scene) -> None:
    import secrets
    password = secrets.token_urlsafe(12)
    with scene.server.client() as c:
        r = c.post("/api/users", json={"username": "insight-reader", "password": password,
                                       "role": "reader", "download": False})
        assert r.status_code == 201, r.text
    token = scene.server.login("insight-reader", password)
    with scene.server.client(token=token) as c:
        r = c.get(f"/api/captures/{scene.cid}/summary")
        assert r.status_code == 403 and "download" in r.json()["message"], r.text
        assert c.get(f"/api/captures/{scene.cid}/series").status_code == 200
        conv = scene.summary["conversations"][0]
        r = c.get(f"/api/captures/{scene.cid}/conversations/pcap",
                  params={k: conv[k] for k in ("proto", "a", "b", "a_port", "b_port")})
        assert r.status_code == 403
