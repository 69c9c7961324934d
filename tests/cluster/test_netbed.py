"""The net bed itself: nodes reach the controller's address, cut() stalls a node's connection
without a reset and heal() resumes it, and neither a normal teardown nor a SIGKILLed run
leaves a namespace, link, iptables rule or process behind."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cluster import netbed
from tests.support import ROOT, Unusable, enter_bed, fail_for

PY = sys.executable

# Connect, send the node's name, print the reply and the local address.
ONCE = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[4]))
s.sendall(sys.argv[3].encode() + b"\\n")
print(s.recv(100).decode().strip(), s.getsockname()[0], flush=True)
"""

# One connection: send a numbered line every 50 ms; log what comes back; exit 1 on any error.
STREAM = """
import socket, sys, threading, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.settimeout(None)
def reader():
    while True:
        try:
            data = s.recv(100)
        except OSError as exc:
            print("ERR recv", exc, flush=True); sys.stdout.flush(); import os; os._exit(1)
        if not data:
            print("ERR eof", flush=True); import os; os._exit(1)
        print("rx", len(data), flush=True)
threading.Thread(target=reader, daemon=True).start()
i = 0
while True:
    try:
        s.sendall(b"%d\\n" % i)
    except OSError as exc:
        print("ERR send", exc, flush=True); sys.exit(1)
    i += 1
    time.sleep(0.05)
"""


@dataclass
class Conn:
    sock: socket.socket
    peer: str
    data: bytearray = field(default_factory=bytearray)
    last: float = 0.0  # time.monotonic() of the last bytes received
    ended: str = ""  # "eof" or the error (e.g. a reset) once the connection ends


class Sink:
    """A TCP server thread on the controller's address: records each connection's bytes and
    answers a first line ``<name>`` with ``hello <name>``."""

    def __init__(self, host: str) -> None:
        self.server = socket.create_server((host, 0))
        self.port = self.server.getsockname()[1]
        self.conns: list[Conn] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, addr = self.server.accept()
            except OSError:
                return
            conn = Conn(sock, addr[0])
            self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: Conn) -> None:
        while True:
            try:
                data = conn.sock.recv(65536)
            except OSError as exc:
                conn.ended = repr(exc)
                return
            if not data:
                conn.ended = "eof"
                return
            if not conn.data and data.endswith(b"\n") and not data[:1].isdigit():
                conn.sock.sendall(b"hello " + data)
            conn.data += data
            conn.last = time.monotonic()

    def from_ip(self, ip: str) -> list[Conn]:
        return [c for c in self.conns if c.peer == ip]

    def close(self) -> None:
        self.server.close()
        for conn in self.conns:
            conn.sock.close()


@pytest.fixture
def sink(bed: netbed.NetBed) -> Iterator[Sink]:
    s = Sink(bed.controller_ip)
    yield s
    s.close()


def wait_for(cond: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def connect_once(node: netbed.Node, sink: Sink, timeout: float) -> subprocess.CompletedProcess:
    return node.run([PY, "-c", ONCE, netbed.CONTROLLER_IP, str(sink.port), node.name,
                     str(timeout)], timeout=timeout + 10)


def ours_visible() -> list[str]:
    """Our names in what an operator would look at: ip netns list, ip link, iptables-save."""
    seen = []
    for argv in (["ip", "netns", "list"], ["ip", "-o", "link"], ["iptables-save"]):
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        seen += [line for line in out.splitlines()
                 if any(p in line for p in (netbed.NETNS_PREFIX, netbed.BRIDGE_PREFIX,
                                            netbed.VETH_PREFIX, netbed.RULE_COMMENT))]
    return seen


def lines(log: Path, start: str) -> int:
    """How many lines of a client's log start with ``start`` (the log's header line quotes the
    client's source, so a plain substring test would match that)."""
    return sum(line.startswith(start) for line in log.read_text().splitlines())


def running(pid: int) -> bool:
    return netbed._running(pid)


def test_two_nodes_reach_the_controller(bed: netbed.NetBed, sink: Sink) -> None:
    a, b = bed.add_node("a"), bed.add_node("b")
    assert (a.ip, b.ip) == ("10.231.0.11", "10.231.0.12")
    assert a.netns == f"podcap-tn-{bed.tag}-a" and bed.controller_ip == "10.231.0.1"
    assert all(len(n) <= 15 for n in (bed.bridge, a.veth, b.veth))
    for node in (a, b):
        done = connect_once(node, sink, timeout=5)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["hello", node.name, node.ip]
        assert sink.from_ip(node.ip), f"no connection from {node.ip}"
        # its own network: eth0 with its address, lo, and nothing of the host's
        links = node.run(["ip", "-o", "-4", "addr"]).stdout
        assert f"inet {node.ip}/24" in links and "docker0" not in links
        # ... but the host's /proc (so it can enter container namespaces) and unix sockets
        seen = node.run(["sh", "-c", f"readlink /proc/self/ns/net /proc/{os.getpid()}/ns/net; "
                         "ls /run/docker.sock /run/containerd/containerd.sock 2>/dev/null"])
        own_ns, host_ns, *sockets = seen.stdout.split()
        assert own_ns != host_ns == os.readlink("/proc/self/ns/net")
        assert sockets == [s for s in ("/run/docker.sock", "/run/containerd/containerd.sock")
                           if Path(s).exists()]
    assert [c.peer for c in sink.conns] == [a.ip, b.ip]


def test_cut_stalls_a_connection_and_heal_resumes_it(bed: netbed.NetBed, sink: Sink,
                                                     tmp_path: Path) -> None:
    a, b = bed.add_node("a"), bed.add_node("b")
    log = tmp_path / "a.log"
    client = a.popen([PY, "-c", STREAM, bed.controller_ip, str(sink.port)], log=log)
    wait_for(lambda: len(sink.from_ip(a.ip)) == 1 and sink.from_ip(a.ip)[0].data.count(b"\n")
             >= 3, 10, "the stream from a")
    conn = sink.from_ip(a.ip)[0]
    conn.sock.sendall(b"x")
    wait_for(lambda: lines(log, "rx ") > 0, 5, "controller -> node data")

    a.cut()
    a.cut()  # idempotent
    time.sleep(0.3)  # what was in flight lands
    received, rx_lines = len(conn.data), lines(log, "rx ")
    conn.sock.sendall(b"y")  # the controller's data does not arrive either
    refused = connect_once(a, sink, timeout=1.0)
    assert refused.returncode != 0 and "timed out" in refused.stderr, refused
    assert connect_once(b, sink, timeout=5).returncode == 0  # the other node is unaffected
    time.sleep(0.3)
    assert len(conn.data) == received, "data from a cut node was delivered"
    assert lines(log, "rx ") == rx_lines, "data reached a cut node"
    assert conn.ended == "", f"the stalled connection ended: {conn.ended}"  # no RST, no FIN
    assert client.poll() is None and lines(log, "ERR") == 0, log.read_text()
    assert len(sink.from_ip(a.ip)) == 1

    a.heal()
    a.heal()  # idempotent
    wait_for(lambda: len(conn.data) > received, 10, "the stalled stream to resume")
    wait_for(lambda: lines(log, "rx ") > rx_lines, 10, "controller data to arrive")
    numbers = [int(n) for n in conn.data.decode().split("\n")[:-1]]
    assert numbers == list(range(len(numbers))), "the stream lost or reordered data"
    assert conn.ended == "" and client.poll() is None
    again = connect_once(a, sink, timeout=5)
    assert again.returncode == 0, again.stderr


def test_close_ends_processes_and_removes_everything(tmp_path: Path) -> None:
    stack = contextlib.ExitStack()
    bed = stack.enter_context(enter_bed(netbed.net_bed()))
    try:
        a, b = bed.add_node("a"), bed.add_node("b")
        plain = a.popen(["sleep", "1000"], log=tmp_path / "a.log")
        stubborn = b.popen([PY, "-c", "import signal, time; "
                            "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                            "print('ignoring', flush=True); time.sleep(1000)"],
                           log=tmp_path / "b.log")
        # a grandchild that leaves the process group: found by its namespace at close
        b.popen(["sh", "-c", "setsid sleep 1001 & exec sleep 1000"], log=tmp_path / "b2.log")
        a.cut()
        wait_for(lambda: len(a.pids()) == 1 and len(b.pids()) == 3, 5, "processes to start")
        # until its handler is set, SIGTERM still ends it: the close would not need SIGKILL
        # (the log's first line, the bed's header, quotes the command, so a line of its own)
        wait_for(lambda: "ignoring" in (tmp_path / "b.log").read_text().splitlines(), 10,
                 "the stubborn process to ignore SIGTERM")
        pids = a.pids() + b.pids()
        assert ours_visible()
    finally:
        started = time.monotonic()
        stack.close()
        took = time.monotonic() - started
    assert plain.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL and 4.5 < took < 10, took
    assert not [p for p in pids if running(p)]
    assert ours_visible() == [] and netbed.leftovers() == []
    bed.close()  # idempotent
    assert netbed.leftovers() == []


CHILD = """
import ctypes, json, signal, sys, time
from pathlib import Path
ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive pytest
from tests.cluster import netbed  # run from the repository root (cwd)
with netbed.net_bed() as bed:
    a = bed.add_node("a")
    p = a.popen(["sleep", "1000"], log=Path(sys.argv[1]))
    a.cut()
    print(json.dumps({"tag": bed.tag, "netns": a.netns, "pid": p.pid}), flush=True)
    time.sleep(1000)
"""


@pytest.mark.parametrize("sweeper", ["sweep_stale", "next_bed"])
def test_a_sigkilled_run_is_swept(sweeper: str, tmp_path: Path) -> None:
    try:
        netbed.check_usable()
    except Unusable as lack:
        fail_for(lack)
    child = subprocess.Popen([PY, "-c", CHILD, str(tmp_path / "a.log")], cwd=ROOT,
                             stdout=subprocess.PIPE, start_new_session=True)
    left: dict = {}
    try:
        assert child.stdout is not None
        built = select.poll()  # not select.select: it cannot take a descriptor over 1023
        built.register(child.stdout, select.POLLIN)
        assert built.poll(20_000), "the child did not build its bed"
        left = json.loads(child.stdout.readline())
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        time.sleep(0.2)
        # what a dead run leaves: its namespace, links, rules and the process inside
        assert left["pid"] in netbed._netns_pids(left["netns"]) and running(left["pid"])
        assert any(left["tag"] in line for line in ours_visible())
        assert any("podcap-netbed" in line for line in ours_visible())
        if sweeper == "sweep_stale":
            netbed.sweep_stale()
        else:
            with netbed.net_bed() as bed:
                assert not [x for x in netbed.leftovers() if left["netns"] in x]
                if bed.tag != left["tag"]:
                    assert not [line for line in ours_visible() if left["tag"] in line]
        wait_for(lambda: not running(left["pid"]), 5, "the stale process to die")
        assert ours_visible() == [] and netbed.leftovers() == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
        if left and netbed.leftovers():
            netbed.sweep_stale()
