"""NeuVector's /v1 shapes, as its clients read them: from `podcap serve`, and from a
`podcap controller` whose one agent dialled in over gRPC (the same answers, one system)."""

from __future__ import annotations

import email.parser
import email.policy
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from podcap.transport.grpc.join import Identity  # noqa: E402
from tests.cluster.cluster_support import AgentProc, running_cluster
from tests.support import Server, WebPair, read_pcap, running_server, wait_for


@pytest.fixture(scope="module", params=["serve", "cluster"])
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server a client talks to, with ``agent_id``: the one agent's id."""
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "serve":
        with running_server(tmp) as srv:
            srv.agent_id = (srv.data_dir / "agent-id").read_text().strip()  # type: ignore[attr-defined]
            yield srv
        return
    with running_cluster(tmp) as cluster:
        agent = AgentProc(cluster, socket.gethostname(), tmp / "agent")
        agent.start(cluster.join_token())
        try:
            identity = Identity.load(agent.data_dir)
            assert identity is not None
            cluster.server.agent_id = identity.agent_id  # type: ignore[attr-defined]
            yield cluster.server
        finally:
            agent.stop()


def _steady_lists(c: httpx.Client) -> tuple[list, list, list]:
    """The full, brief and paged lists read while the machine's containers stayed the same
    (the other workers start and remove theirs between any two requests)."""
    for _ in range(20):
        everything = c.get("/v1/workload").json()["workloads"]
        brief = c.get("/v1/workload", params={"brief": "true"}).json()["workloads"]
        paged = c.get("/v1/workload", params={"start": 1, "limit": 1}).json()["workloads"]
        again = c.get("/v1/workload").json()["workloads"]
        if [w["id"] for w in again] == [w["id"] for w in everything]:
            return everything, brief, paged
        time.sleep(0.2)
    raise AssertionError("the workload list never stayed the same for four requests")


def test_workload_list_filters_and_paging(server: Server, pair: WebPair) -> None:
    with server.client() as c:
        everything, brief, paged = _steady_lists(c)
        web = pair.web.name
        by_name = c.get("/v1/workload", params={"f_name": web}).json()["workloads"]
        by_prefix = c.get("/v1/workload",
                          params={"f_id": f"prefix,{pair.web.id[:10]}"}).json()["workloads"]
        one = c.get(f"/v1/workload/{pair.web.id}").json()["workload"]
        missing = c.get("/v1/workload/" + "e" * 64)
        bad_op = c.get("/v1/workload", params={"f_name": "regex,.*"})
    assert [w["id"] for w in by_name] == [pair.web.id]
    assert [w["id"] for w in by_prefix] == [pair.web.id]
    assert len(everything) >= 2 and len(brief) == len(everything)
    assert "image" in everything[0] and "image" not in brief[0]
    assert paged == everything[1:2]
    for key in ("id", "name", "display_name", "pod_name", "domain", "host_name", "enforcer_id",
                "image", "state", "network_mode", "cap_sniff"):
        assert key in one, key
    assert one["cap_sniff"] is True and one["state"] == "running"
    assert one["interfaces"]["eth0"][0]["ip"] == pair.web_ip
    assert missing.status_code == 404 and missing.json()["code"] == 7
    assert bad_op.status_code == 400 and "unknown operator" in bad_op.json()["message"]


def test_enforcer_list(server: Server) -> None:
    import socket

    import podcap
    with server.client() as c:
        enforcers = c.get("/v1/enforcer").json()["enforcers"]
    (one,) = enforcers
    agent_id = server.agent_id  # type: ignore[attr-defined]
    node = socket.gethostname()  # --node-name defaults to the host name
    assert len(agent_id) >= 8 and one["id"] == agent_id
    assert (one["name"], one["display_name"], one["host_name"], one["host_id"]) == (node,) * 4
    assert one["version"] == podcap.__version__ and one["connection_state"] == "connected"
    assert one["runtimes"] == ["docker"]


def test_sniffer_lifecycle_and_multipart_download(server: Server, pair: WebPair) -> None:
    with server.client() as c:
        r = c.post("/v1/sniffer", params={"f_workload": pair.web.id},
                   json={"sniffer": {"file_number": 2, "duration": 0, "filter": "tcp"}})
        cid = r.json()["result"]["id"]
        enforcer = c.get("/v1/enforcer").json()["enforcers"][0]["id"]
        wait_for(lambda: c.get(f"/v1/sniffer/{cid}").json()["sniffer"]["stats"]["captured"] > 3,
                 what="packets")
        running = c.get(f"/v1/sniffer/{cid}").json()["sniffer"]
        assert running["status"] == "running" and running["stop_time"] == 0
        assert running["enforcer_id"] == enforcer and running["container_id"] == pair.web.id
        assert "-W 2" in running["args"] and "-C 2" in running["args"]
        listed = c.get("/v1/sniffer", params={"f_workload": pair.web.id}).json()["sniffers"]
        assert cid in [s["id"] for s in listed]
        assert c.get("/v1/sniffer", params={"f_workload": "nobody"}).json()["sniffers"] == []
        # Download while running: tcpdump writes through a stdio buffer, so wait for records
        # on disk; the answer must still be a valid pcap cut at a whole record.
        wait_for(lambda: c.get(f"/v1/sniffer/{cid}").json()["sniffer"]["size"] > 8192,
                 what="records on disk")
        live = c.get(f"/v1/sniffer/{cid}/pcap")
        assert c.patch(f"/v1/sniffer/stop/{cid}").status_code == 200
        final = c.get(f"/v1/sniffer/{cid}").json()["sniffer"]
        r = c.get(f"/v1/sniffer/{cid}/pcap")
        assert c.delete(f"/v1/sniffer/{cid}").status_code == 200
        gone = c.get(f"/v1/sniffer/{cid}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("multipart/form-data")
    assert int(r.headers["content-length"]) == len(r.content)  # stopped: size known up front
    msg = parse_multipart(r)
    (only,) = list(msg.iter_parts())
    assert only.get_param("name", header="content-disposition") == "pcap"
    assert only.get_filename() == f"{cid}.pcap"
    assert only.get_content_type() == "application/cap"
    data = only.get_payload(decode=True)
    packets = read_pcap(data)[1]
    assert len(packets) == final["stats"]["captured"] > 3 and len(data) == final["size"]
    # The live answer was cut at a whole record: the first records of the final file, no more.
    assert live.status_code == 200 and "content-length" not in live.headers  # chunked
    live_packets = read_pcap(part(live))[1]
    assert 0 < len(live_packets) <= len(packets) and live_packets == packets[:len(live_packets)]
    assert gone.status_code == 404 and gone.json()["code"] == 7
    assert not (server.data_dir / "captures" / cid).exists()


def parse_multipart(r):
    head = f"Content-Type: {r.headers['content-type']}\r\n\r\n".encode()
    return email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + r.content)


def part(r) -> bytes:
    (only,) = list(parse_multipart(r).iter_parts())
    return only.get_payload(decode=True)


def test_native_download_is_raw_pcap_with_a_file_name(server: Server, pair: WebPair) -> None:
    with server.client() as c:
        r = c.post("/api/captures", json={"workload_id": pair.web.id, "duration": 1})
        assert r.status_code == 201, r.text
        cid = r.json()["capture"]["id"]
        wait_for(lambda: c.get(f"/api/captures/{cid}").json()["capture"]["status"] != "running",
                 what="1 s capture to end")
        final = c.get(f"/api/captures/{cid}").json()["capture"]
        r = c.get(f"/api/captures/{cid}/pcap")
        extra = c.post("/api/captures", json={"workload_id": pair.web.id, "bogus": 1})
        limits = c.get("/api/limits").json()
    assert r.headers["content-type"] == "application/vnd.tcpdump.pcap"
    disposition = r.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="') and disposition.endswith('.pcap"')
    assert pair.web.name in disposition
    assert int(r.headers["content-length"]) == len(r.content) == final["stats"]["bytes"]
    linktype, packets = read_pcap(r.content)
    assert linktype == 276 and len(packets) == final["stats"]["captured"] > 0
    assert extra.status_code == 400 and extra.json()["code"] == 6
    assert limits["file_number_max"] == 50 and limits["file_size_mb_default"] == 2


def test_download_ticket_is_one_use_and_bound_to_its_capture(server: Server,
                                                             pair: WebPair) -> None:
    import httpx
    with server.client() as c:
        cid = c.post("/api/captures", json={"workload_id": pair.web.id,
                                            "duration": 1}).json()["capture"]["id"]
        other = c.post("/api/captures", json={"workload_id": pair.web.id,
                                              "duration": 1}).json()["capture"]["id"]
        wait_for(lambda: c.get(f"/api/captures/{cid}").json()["capture"]["status"] != "running",
                 what="capture end")
        ticket = c.post(f"/api/captures/{cid}/ticket").json()
        wrong = c.post(f"/api/captures/{cid}/ticket").json()
    assert ticket["name"].endswith(".pcap") and ticket["expires_in"] == 60
    first = httpx.get(server.url + ticket["url"])  # no header: the ticket is the credential
    assert first.status_code == 200 and first.content[:4] == b"\xd4\xc3\xb2\xa1"
    again = httpx.get(server.url + ticket["url"])
    assert again.status_code == 401 and again.json()["code"] == 3
    elsewhere = httpx.get(server.url + wrong["url"].replace(cid, other))
    assert elsewhere.status_code == 401
    assert httpx.get(server.url + f"/api/captures/{cid}/pcap?ticket=forged").status_code == 401
