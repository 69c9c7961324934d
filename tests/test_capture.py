"""Capture through the REST API against a real Docker engine, real tcpdump, real traffic."""

from __future__ import annotations

import os
import signal
import time

import pytest

from podcap.capture import tcpdump
from podcap.runtime.base import proc_start_time, proc_state, process_alive
from tests.support import (
    Server,
    WebPair,
    read_pcap,
    remove_container,
    run_container,
    tcp_flows,
    unique,
    wait_for,
    web_pair,
)


def test_http_between_two_containers(server: Server, pair: WebPair) -> None:
    cid = server.sniff(pair.web.id, filter="tcp port 80")
    wait_for(lambda: server.sniffer(cid)["stats"]["captured"] > 20, what="live counters rising")
    with server.client() as c:
        r = c.patch(f"/v1/sniffer/stop/{cid}")
    assert r.status_code == 200 and r.content == b""
    final = server.sniffer(cid)
    assert final["status"] == "stopped" and final["reason"] == "stopped by user"
    assert final["stop_time"] >= final["start_time"] > 0
    linktype, packets = read_pcap(server.pcap(cid))
    assert linktype == 276  # LINUX_SLL2 from -i any
    assert len(packets) == final["stats"]["captured"] > 20
    assert final["stats"]["received"] >= final["stats"]["captured"]
    assert final["size"] > 24 and final["file_number"] == 1
    flows = tcp_flows(packets)
    assert (pair.client_ip, pair.web_ip) in flows and (pair.web_ip, pair.client_ip) in flows


def test_duration_stops_by_itself(server: Server, pair: WebPair) -> None:
    began = time.time()
    cid = server.sniff(pair.web.id, duration=2)
    final = server.ended(cid)
    assert final["status"] == "stopped" and final["reason"] == "duration reached"
    with server.client() as c:  # the native API keeps sub-second times (v1's are whole seconds)
        native = c.get(f"/api/captures/{cid}").json()["capture"]
    assert 2.0 <= native["stop_time"] - native["start_time"] <= 2.0 + 0.5 + 1.5 + 0.5
    assert began <= native["start_time"]
    _, packets = read_pcap(server.pcap(cid))
    assert len(packets) == final["stats"]["captured"] > 0


def test_ring_wraps_and_downloads_in_order(server: Server) -> None:
    with web_pair("ring") as p:
        p.client.exec_run(["sh", "-c", f"while true; do wget -q -O /dev/null "
                           f"http://{p.web_ip}/big.txt; done"], detach=True)
        cid = server.sniff(p.web.id, file_size_mb=1, file_number=3)
        wait_for(lambda: server.sniffer(cid)["stats"]["bytes"] > 2_500_000 and
                 server.sniffer(cid)["stats"]["captured"] > 8000, timeout=30,
                 what="the ring to wrap")
        time.sleep(1)
        server.stop_sniffer(cid)
        final = server.sniffer(cid)
    assert final["file_number"] == 3
    assert (final["status"], final["reason"]) == ("stopped", "stopped by user")
    data = server.pcap(cid)
    _, packets = read_pcap(data)
    # The download is the ring's files, oldest first, each file's records exactly once.
    files = sorted((server.data_dir / "captures" / cid / "files").iterdir(),
                   key=lambda f: read_pcap(f)[1][0][0])
    ring = [read_pcap(f)[1] for f in files]
    assert len(ring) == 3 and all(ring)
    assert packets == [p for records in ring for p in records]
    # Oldest first, known apart from timestamps: tcpdump -C -W 3 writes capture.pcap0, 1, 2, 0,
    # ... so the files in time order are a rotation of 0, 1, 2. (Not every packet's stamp is
    # checked: `-i any` writes packets as the kernel delivers them, and their stamps, taken per
    # CPU, can step back by microseconds: seen once under load.)
    order = [int(f.name.removeprefix(tcpdump.RING_PREFIX)) for f in files]
    assert order in ([0, 1, 2], [1, 2, 0], [2, 0, 1]), order
    # The ring dropped the oldest files: fewer packets on disk than tcpdump captured.
    assert 0 < len(packets) < final["stats"]["captured"]
    assert len(data) == final["size"] - 24 * (final["file_number"] - 1)


def test_container_killed_mid_capture(server: Server) -> None:
    with web_pair("kill") as p:
        cid = server.sniff(p.web.id)
        wait_for(lambda: server.sniffer(cid)["stats"]["captured"] > 5, what="packets")
        p.web.kill()
        final = server.ended(cid)
    assert final["reason"] == "container exited" and final["status"] == "stopped"
    _, packets = read_pcap(server.pcap(cid))
    assert len(packets) == final["stats"]["captured"] > 5


def test_agent_killed_and_restarted_loses_nothing(tmp_path, pair: WebPair) -> None:
    from tests.support import running_server
    with running_server(tmp_path) as srv:
        cid = srv.sniff(pair.web.id, filter="tcp port 80")
        wait_for(lambda: srv.sniffer(cid)["stats"]["captured"] > 5, what="packets")
        gone = srv.sniff(pair.web.id)  # this one's tcpdump dies while the agent is down
        # the record says "running" before the reply; its pid follows in the background
        wait_for(lambda: srv_record(srv, gone).get("pid"), what="the pid in the record")
        pid = srv_pid(srv, cid)
        pid_gone = srv_pid(srv, gone)
        starts = {p: proc_start_time(p) for p in (pid, pid_gone)}  # never kill a reused pid
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(5)
        try:
            assert not ended(pid), "tcpdump must outlive the agent"
            os.kill(pid_gone, signal.SIGKILL)
            time.sleep(0.5)
            # The last counters tcpdump printed, with kernel drops: the record must keep them.
            with open(srv.data_dir / "captures" / gone / "tcpdump.log", "ab") as log:
                log.write(b"31 packets captured, 45 packets received by filter, "
                          b"14 packets dropped by kernel\n")
            srv.start()
            again = srv.sniffer(cid)
            assert again["status"] == "running" and srv_pid(srv, cid) == pid
            assert srv_record(srv, cid)["pid_start"] == starts[pid]  # re-adopted by pid + start
            lost = srv.sniffer(gone)
            assert lost["status"] == "stopped"
            assert lost["reason"] == "tcpdump ended while the agent was down"
            counters = {"captured": 31, "received": 45, "dropped": 14, "bytes": lost["size"]}
            assert lost["stats"] == counters
            with srv.client() as c:
                native = c.get(f"/api/captures/{gone}").json()["capture"]
            assert native["stats"] == counters
            with srv.client() as c:
                assert c.patch(f"/v1/sniffer/stop/{cid}").status_code == 200
            final = srv.sniffer(cid)
            assert final["reason"] == "stopped by user" and ended(pid)
            _, packets = read_pcap(srv.pcap(cid))
            assert len(packets) == final["stats"]["captured"] > 5
        finally:  # a failure above must not leave the orphaned tcpdump processes running
            for orphan, start in starts.items():
                if process_alive(orphan, start):
                    os.kill(orphan, signal.SIGKILL)


def ended(pid: int) -> bool:
    """Gone, or a zombie waiting for a parent that is not us (an orphan after kill -9)."""
    return proc_state(pid) in (None, "Z", "X")


def srv_pid(server: Server, cid: str) -> int:
    return srv_record(server, cid)["pid"]


def srv_record(server: Server, cid: str) -> dict:
    import json
    return json.loads((server.data_dir / "captures" / cid / "capture.json").read_text())


def test_filter_starting_with_a_dash_is_a_filter(server: Server, pair: WebPair) -> None:
    """tcpdump gets the filter after ``--``: one that starts with ``-`` is still a filter
    (without the ``--`` tcpdump would read it as options and refuse to start)."""
    cid = server.sniff(pair.web.id, filter="-1 = -1 and tcp port 80")
    wait_for(lambda: server.sniffer(cid)["stats"]["captured"] > 5, what="packets")
    server.stop_sniffer(cid)
    final = server.sniffer(cid)
    assert (final["status"], final["reason"]) == ("stopped", "stopped by user")
    assert final["args"].endswith("-- 'link[10] != 3 and (-1 = -1 and tcp port 80)'")
    _, packets = read_pcap(server.pcap(cid))
    assert len(packets) == final["stats"]["captured"] > 5
    assert tcp_flows(packets) == {(pair.client_ip, pair.web_ip), (pair.web_ip, pair.client_ip)}


def test_graceful_shutdown_stops_captures(tmp_path, pair: WebPair) -> None:
    from tests.support import running_server
    with running_server(tmp_path) as srv:
        cid = srv.sniff(pair.web.id)
        pid = srv_pid(srv, cid)

        def series() -> list:
            with srv.client() as c:
                return c.get(f"/api/captures/{cid}/series").json()["points"]

        before = wait_for(lambda: len(p := series()) >= 2 and p, what="two rate points")
        srv.stop(signal.SIGTERM)
        assert ended(pid)
        srv.start()
        final = srv.sniffer(cid)
        assert final["status"] == "stopped" and final["reason"] == "agent shut down"
        # the rate chart of the ended capture outlives the agent (kept beside the capture)
        assert series()[:len(before)] == before


@pytest.mark.parametrize("network_mode", ["container"])
def test_shared_namespace_container_is_captured_through_it(server: Server, pair: WebPair,
                                                            network_mode: str) -> None:
    side = run_container(unique("sidecar"), ["sleep", "300"],
                         network_mode=f"container:{pair.web.id}")
    try:
        cid = server.sniff(side.id, filter="tcp port 80")
        wait_for(lambda: server.sniffer(cid)["stats"]["captured"] > 5, what="sidecar packets")
        server.stop_sniffer(cid)
        final = server.sniffer(cid)
        assert (final["status"], final["reason"]) == ("stopped", "stopped by user")
        _, packets = read_pcap(server.pcap(cid))
        assert len(packets) == final["stats"]["captured"] > 5
        assert (pair.client_ip, pair.web_ip) in tcp_flows(packets)
    finally:
        remove_container(side)


def test_low_disk_stops_captures_with_reason(tmp_path, pair: WebPair) -> None:
    from tests.support import running_server
    # A free-space floor no disk can meet: the watcher must stop the capture, keeping its files.
    with running_server(tmp_path, env={"PODCAP_MIN_FREE_BYTES": str(10**18)}) as srv:
        cid = srv.sniff(pair.web.id)
        final = srv.ended(cid)
        assert final["status"] == "stopped" and final["reason"] == "disk budget"
        assert read_pcap(srv.pcap(cid))[0] == 276


SENDER = """
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + float(sys.argv[2])
n = 0
while time.time() < end:
    s.sendto(struct.pack("!Id", n, time.time()), (sys.argv[1], 7000))
    n += 1
    time.sleep(0.002)
"""


def test_stop_keeps_the_packets_of_the_last_second(server: Server, pair: WebPair) -> None:
    """tcpdump gets packets in blocks retired up to 1 s late; a plain SIGINT loses the open
    block. Every datagram sent before the stop must be in the file."""
    import struct
    import subprocess
    import sys
    pid = pair.client.attrs["State"]["Pid"] or pair.client.reload() or \
        pair.client.attrs["State"]["Pid"]
    sender = subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c",
                               SENDER, pair.web_ip, "6"])
    try:
        cid = server.sniff(pair.web.id, filter="udp port 7000")
        time.sleep(1.7)
        stopped_at = time.time()
        with server.client() as c:
            assert c.patch(f"/v1/sniffer/stop/{cid}").status_code == 200
    finally:
        sender.kill()
        sender.wait()
    _, packets = read_pcap(server.pcap(cid))
    sent = [struct.unpack("!Id", buf[-12:]) for _, buf in packets]
    late = [t for _, t in sent if t > stopped_at - 0.2]
    assert len(packets) > 300
    # 200 ms before the stop at one datagram per ~2 ms: all of them, not a block's worth fewer.
    assert len(late) >= 60, f"only {len(late)} datagrams of the last 200 ms reached the file"
    numbers = [n for n, t in sent if t < stopped_at]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "gap before the stop"


def test_frames_flooded_for_another_host_are_not_captured(server: Server, pair: WebPair) -> None:
    """A bridge floods a frame whose destination MAC it has not learned to every port: the
    container's interface receives other hosts' traffic (PACKET_OTHERHOST), which a capture of
    this container must not hold (another namespace's pods on a shared bridge). The host sends
    to an address whose neighbour entry names a MAC no port has, and to the container itself;
    only the second is captured."""
    import socket
    import subprocess

    stray, port = "172.17.255.250", 39999  # far above what Docker hands out first
    cid = server.sniff(pair.web.id, filter=f"udp port {port}")
    neigh = ["ip", "neigh", "replace", stray, "lladdr", "02:00:00:00:00:99", "dev", "docker0",
             "nud", "permanent"]
    subprocess.run(neigh, check=True, timeout=10)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(3):
                s.sendto(b"flooded", (stray, port))
                s.sendto(b"for-web", (pair.web_ip, port))
        wait_for(lambda: server.sniffer(cid)["stats"]["captured"] >= 3, what="3 datagrams")
    finally:
        subprocess.run(["ip", "neigh", "del", stray, "dev", "docker0"], timeout=10, check=False)
    server.stop_sniffer(cid)
    _, packets = read_pcap(server.pcap(cid))
    import dpkt
    seen = [socket.inet_ntoa(dpkt.sll2.SLL2(buf).data.dst) for _, buf in packets]
    assert seen == [pair.web_ip] * 3
