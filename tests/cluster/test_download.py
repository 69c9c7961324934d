"""Downloads from a remote agent: ~20 MB of real TCP captured on an agent that dialled a real
controller, streamed agent → gRPC (1 MiB chunks) → controller → HTTP. The bytes are exactly the
agent's ring in order, and a reader that goes away ends the agent's read."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from podcap.capture import tcpdump
from podcap.pcap import ring
from tests.cluster.cluster_support import AgentProc, Cluster, running_cluster
from tests.support import container_ip, remove_container, run_container, unique, wait_for

MB = 1_000_000


@dataclass
class Bulk:
    cluster: Cluster
    agent: AgentProc
    capture_id: str
    files: list[Path]


@pytest.fixture(scope="module")
def bulk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bulk]:
    tmp = tmp_path_factory.mktemp("download")
    sink = run_container(unique("dl-sink"), [
        "sh", "-c", "while true; do sleep 3600 | nc -l -p 5000 > /dev/null; done"])
    source = None
    try:
        with running_cluster(tmp) as cluster:
            agent = AgentProc(cluster, socket.gethostname(), tmp / "agent")
            agent.start(cluster.join_token())
            try:
                cid = cluster.server.sniff(sink.id, file_size_mb=4, file_number=8,
                                           filter="tcp port 5000")
                # 42 MB in bursts of 1 MB 50 ms apart: one 21 MB burst at full speed overran
                # tcpdump's buffer on a quiet machine (the sender is fastest then) and the wait
                # stayed short of 16 MB; a burst fits the buffer, and twice the mark is sent
                # (the ring of 32 MB may wrap: the tests compare whatever it holds).
                source = run_container(unique("dl-src"), [
                    "sh", "-c", "for i in $(seq 1 40); do dd if=/dev/zero bs=65536 count=16 "
                                f"2>/dev/null; sleep 0.05; done | nc {container_ip(sink)} 5000; "
                                "sleep 3600"])
                wait_for(lambda: cluster.server.sniffer(cid)["size"] > 16 * MB, timeout=30,
                         what="16 MB captured")
                cluster.server.stop_sniffer(cid)
                files = ring.ring_files(agent.data_dir / "captures" / cid / "files",
                                        tcpdump.RING_PREFIX)
                yield Bulk(cluster, agent, cid, files)
            finally:
                agent.stop()
    finally:
        for container in (source, sink):
            if container is not None:
                remove_container(container)


def test_download_is_the_agents_ring_byte_for_byte(bulk: Bulk) -> None:
    assert len(bulk.files) >= 3  # the ring rotated: order matters
    expected = hashlib.sha256()
    local = ring.merged(bulk.files)
    for chunk in local:
        expected.update(chunk)
    got = hashlib.sha256()
    size = 0
    with bulk.cluster.server.client() as c, \
            c.stream("GET", f"/api/captures/{bulk.capture_id}/pcap") as r:
        assert r.status_code == 200
        assert int(r.headers["content-length"]) == local.size > 16 * MB
        for chunk in r.iter_bytes():
            got.update(chunk)
            size += len(chunk)
    assert size == local.size
    assert got.hexdigest() == expected.hexdigest()


def test_neuvectors_download_and_a_range_carry_the_same_bytes(bulk: Bulk) -> None:
    # Both read the agent's chunks on the controller's event loop (api/streaming.py): the
    # form part is the whole pcap, and a range cut inside a chunk is that slice exactly.
    whole = b"".join(ring.merged(bulk.files))
    start, end = 1_000_003, 3_500_001  # inside the second chunk, inside the fourth
    with bulk.cluster.server.client() as c:
        v1 = c.get(f"/v1/sniffer/{bulk.capture_id}/pcap", params={"limit": len(whole) + 1})
        part = c.get(f"/api/captures/{bulk.capture_id}/pcap",
                     headers={"Range": f"bytes={start}-{end}"})
    assert v1.status_code == 200
    boundary = v1.headers["content-type"].split("boundary=")[1].encode()
    body = v1.content
    assert body.startswith(b"--" + boundary) and body.endswith(b"\r\n--" + boundary + b"--\r\n")
    assert body[body.index(b"\r\n\r\n") + 4:-len(boundary) - 8] == whole
    assert int(v1.headers["content-length"]) == len(body)
    assert part.status_code == 206
    assert part.content == whole[start:end + 1]


def test_the_remote_agent_knows_whose_capture_it_is(bulk: Bulk) -> None:
    # The start carries the user over gRPC; the agent keeps it in its record and puts it on its
    # own log events (owner), so a node's logs say whose capture filled its disk.
    record = json.loads((bulk.agent.data_dir / "captures" / bulk.capture_id /
                         "capture.json").read_text())
    assert record["owner"] == "admin", record


def test_a_reader_that_goes_away_ends_the_agents_read(bulk: Bulk) -> None:
    with bulk.cluster.server.client() as c, \
            c.stream("GET", f"/api/captures/{bulk.capture_id}/pcap") as r:
        first = next(r.iter_raw(1024 * 1024))
        assert first[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
    # The HTTP client closed after ~1 MB of ~21 MB: the controller drops the download and the
    # agent's data connection ends early instead of reading the rest.
    wait_for(lambda: "ended early" in bulk.agent.log(), timeout=10,
             what="the agent to stop its read")
    assert "cancelled by its reader" in bulk.cluster.server.log()
    # The controller still serves the same capture afterwards.
    assert bulk.cluster.server.sniffer(bulk.capture_id)["status"] == "stopped"
