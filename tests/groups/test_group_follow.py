"""`GET /api/capture-groups/{id}/pcapng?follow=true`: the members merged live, a member that
joins while followed, and the end of the stream once the group stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from podcap.pcap import format
from tests.groups.group_support import (
    client_of,
    ip_of,
    pod,
    run_named,
    tag,
    tcpdump_count,
    tshark_fields,
    walk,
)
from tests.support import Server, read_pcap, remove_container, unique, wait_for


def test_follow_streams_merged_packets_until_the_group_stops(gserver: Server,
                                                            tmp_path: Path) -> None:
    t = tag()
    made = []
    path = tmp_path / "live.pcapng"
    received: list[tuple[float, int]] = []  # (when, bytes so far)
    stream = bytearray()  # what the follower has read
    ended = threading.Event()
    try:
        web1 = pod("fweb1", {"app": f"live-{t}"}, f"live-{t}")
        web2 = pod("fweb2", {"app": f"live-{t}"}, f"live-{t}")
        made += [web1, web2]
        made.append(client_of("fcli1", [ip_of(web1), ip_of(web2)]))
        with gserver.client() as c:
            r = c.post("/api/capture-groups", json={"labels": f"app=live-{t}"})
            assert r.status_code == 201, r.text
            gid = r.json()["group"]["id"]

            def follow() -> None:
                total = 0
                with httpx.Client(base_url=gserver.url, timeout=httpx.Timeout(30, read=60),
                                  headers={"X-Auth-Token": gserver.token}) as fc, \
                        fc.stream("GET", f"/api/capture-groups/{gid}/pcapng",
                                  params={"follow": "true"}) as resp, path.open("wb") as f:
                    assert resp.status_code == 200
                    for chunk in resp.iter_bytes():
                        f.write(chunk)
                        stream.extend(chunk)
                        total += len(chunk)
                        received.append((time.monotonic(), total))
                ended.set()

            reader = threading.Thread(target=follow, daemon=True)
            reader.start()
            wait_for(lambda: received and received[-1][1] > 2000, timeout=30,
                     what="packets while the group runs")
            web3 = pod("fweb3", {"app": f"live-{t}"}, f"live-{t}")
            made.append(web3)
            made.append(client_of("fcli2", [ip_of(web3)]))
            def all_three_capture() -> bool:
                members = c.get(f"/api/capture-groups/{gid}").json()["group"]["members"]
                return len(members) == 3 and all(
                    m["capture"]["stats"]["captured"] > 0 for m in members)

            len_at_join = received[-1][1]
            wait_for(all_three_capture, timeout=40, interval=0.5,
                     what="the third pod to join and capture")
            # the joiner's packets reach the follower too (its interface block, then packets)
            wait_for(lambda: b"fweb3" in stream and received[-1][1] > len_at_join + 2000,
                     timeout=20, what="the joiner's packets in the followed stream")
            before_stop = received[-1][1]
            stopped_at = time.monotonic()
            group = c.post(f"/api/capture-groups/{gid}/stop").json()["group"]
            assert ended.wait(30), "the follow stream did not end after the group stopped"
            assert received[-1][0] - stopped_at < 30
            counts = [len(read_pcap(gserver.pcap(m["capture_id"]))[1])
                      for m in group["members"]]
        assert before_stop > 2000
        blocks = walk(path)
        names = [d["name"].split("/")[2] for d in blocks.interfaces]
        assert sorted(names) == ["fweb1", "fweb2", "fweb3"]
        seen = 0
        for kind, d in blocks.order:
            if kind == "idb":
                seen += 1
            elif kind == "epb":
                assert d["iface"] < seen
        rows = tshark_fields(path, "frame.time_epoch")
        assert len(rows) == sum(counts) == tcpdump_count(path)
        times = [float(r[0]) for r in rows]
        assert times == sorted(times)
    finally:
        for m in made:
            remove_container(m)


def test_from_now_sends_all_of_a_member_that_joins_later(gserver: Server,
                                                        tmp_path: Path) -> None:
    # from=now skips what the members captured before the follow began; a member that joins
    # later began after it, so all of its packets are "from now", the first ones included
    # (here a flood, so the joiner captures packets from its first millisecond).
    t = tag()
    made = []
    path = tmp_path / "now.pcapng"
    stream = bytearray()
    ended = threading.Event()
    try:
        web1 = pod("nweb1", {"app": f"now-{t}"})
        made += [web1, client_of("ncli1", [ip_of(web1)])]
        with gserver.client() as c:
            r = c.post("/api/capture-groups", json={"labels": f"app=now-{t}"})
            assert r.status_code == 201, r.text
            gid = r.json()["group"]["id"]

            def follow() -> None:
                with httpx.Client(base_url=gserver.url, timeout=httpx.Timeout(30, read=60),
                                  headers={"X-Auth-Token": gserver.token}) as fc, \
                        fc.stream("GET", f"/api/capture-groups/{gid}/pcapng",
                                  params={"follow": "true", "from": "now"}) as resp:
                    assert resp.status_code == 200
                    for chunk in resp.iter_bytes():
                        stream.extend(chunk)
                path.write_bytes(bytes(stream))
                ended.set()

            threading.Thread(target=follow, daemon=True).start()
            wait_for(lambda: len(stream) > 2000, timeout=30, what="packets while followed")
            web2 = pod("nweb2", {"app": f"now-{t}"})
            made.append(web2)
            made.append(run_named(unique("nflood"), [
                "sh", "-c", f"while true; do wget -q -O /dev/null http://{ip_of(web2)}/; done"]))
            joined = wait_for(lambda: [m for m in c.get(f"/api/capture-groups/{gid}").json()[
                "group"]["members"] if m["workload_name"] == web2.name], timeout=30,
                what="the second pod to join")
            wait_for(lambda: b"nweb2" in stream, timeout=20, what="the joiner's interface")
            time.sleep(1.0)
            assert c.post(f"/api/capture-groups/{gid}/stop").status_code == 200
            assert ended.wait(30), "the follow stream did not end after the group stopped"
            captured = len(read_pcap(gserver.pcap(joined[0]["capture_id"]))[1])
    finally:
        for m in made:
            remove_container(m)
    blocks = walk(path)
    [iface] = [i for i, d in enumerate(blocks.interfaces) if "nweb2" in d["name"]]
    sent = sum(1 for kind, d in blocks.order if kind == "epb" and d["iface"] == iface)
    assert sent == captured > 0


def test_a_quiet_follow_sends_keepalives_that_readers_skip(tmp_path: Path) -> None:
    """No packets for a while: Interface Statistics Blocks go out (a proxy sees the stream
    alive); tshark and tcpdump read the result with the packets only. close() ends it."""
    import struct

    from podcap.controller.group_pcapng import Followed, Section, Source
    from podcap.streams import PcapStream

    quiet = threading.Event()

    def member() -> Iterator[bytes]:
        yield format.global_header()
        sll2 = struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\x02" * 8)
        ip = bytes.fromhex("4500001c000000004011000a0a0000010a000002") + bytes(8)
        yield format.record(1_700_000_000, 0, sll2 + ip)
        while not quiet.wait(0.05):
            yield b""  # as the agent's follower does while nothing new is written

    source = Source("c0", "ns/pod/c", "k8s.node=n", (), initial=True)
    polled = [[(source, PcapStream(member(), None))]]
    live = Followed(Section(["selector: test"], 262144),
                    lambda: (polled.pop() if polled else [], True), keepalive=0.3)
    out = bytearray()
    started = time.monotonic()
    for chunk in live:  # keepalives every 0.3 s keep chunks coming while the member is quiet
        out += chunk
        if time.monotonic() - started > 1.2:
            break
    quiet.set()
    live.close()
    path = tmp_path / "quiet.pcapng"
    path.write_bytes(bytes(out))
    kinds = [k for k, _ in walk(path).order]
    assert kinds[:3] == ["shb", "idb", "epb"]
    assert kinds.count("isb") >= 2 and set(kinds[3:]) == {"isb"}
    assert tcpdump_count(path) == 1
    assert len(tshark_fields(path, "frame.number")) == 1
