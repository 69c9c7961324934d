"""The tcpdump module on its own: the exact argv, and the counters read back from its log.

The argv is checked as a list (no shell ever sees it); the counters on hand-made logs in both of
tcpdump's formats, with drops, so a parser that loses one field cannot pass.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from podcap.capture import tcpdump
from podcap.model import CaptureSpec, Stats
from tests.support import read_pcap, wait_for

FILES = Path("/data/captures/c0ffee/files")


def test_capture_argv_is_exact_and_the_filter_comes_after_double_dash() -> None:
    spec = CaptureSpec(filter="-1 = -1 and tcp port 80", file_number=3, file_size_mb=4,
                       buffer_kib=1024, snaplen=96)
    assert tcpdump.capture_argv(7, spec, FILES) == [
        "/usr/bin/nsenter", "--net=/proc/self/fd/7", "--",
        "/usr/bin/tcpdump", "-s", "96", "-i", "any", "-n", "-Z", "root", "-B", "1024",
        "-C", "4", "-W", "3", "-w", "/data/captures/c0ffee/files/capture.pcap",
        "--", "-1 = -1 and tcp port 80",
    ]


def test_filter_that_looks_like_an_option_stays_one_argument_after_double_dash() -> None:
    for hostile in ("-w /etc/x", "-z /bin/sh", "--help", "-r /etc/shadow"):
        argv = tcpdump.tcpdump_args(CaptureSpec(filter=hostile), FILES)
        assert argv[-2:] == ["--", hostile]
        assert argv.count("--") == 1 and argv.count("-w") == 1
    # No filter: nothing after the options, not even "--".
    assert tcpdump.tcpdump_args(CaptureSpec(), FILES)[-2:] == ["-w", str(FILES / "capture.pcap")]


def test_real_tcpdump_runs_a_filter_that_starts_with_a_dash(tmp_path: Path) -> None:
    """The argv the agent builds, run by the real tcpdump in this namespace: a filter starting
    with ``-`` must be taken as the filter, not as options (without ``--`` tcpdump prints its
    usage and exits)."""
    files = tmp_path / "files"
    files.mkdir()
    log = tmp_path / "tcpdump.log"
    spec = CaptureSpec(filter="-1 = -1 and udp port 7999")
    netns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        proc = tcpdump.start(tcpdump.capture_argv(netns, spec, files), log, netns)
    finally:
        os.close(netns)
    try:
        tcpdump.wait_listening(proc, log)
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(5):
                s.sendto(b"dash", ("127.0.0.1", 7999))
                s.sendto(b"other", ("127.0.0.1", 7998))  # not matched by the filter
        tcpdump.drain(proc.pid, log)
    finally:
        tcpdump.terminate(proc.pid, grace=3, alive=lambda: proc.poll() is None)
        proc.wait(5)
    final = tcpdump.parse_stats(log)
    _, packets = read_pcap(files / "capture.pcap0")
    # Over "any", each loopback datagram is seen once (outgoing); only port 7999 matches.
    assert [buf[-4:] for _, buf in packets] == [b"dash"] * len(packets)
    assert final is not None and final.captured == len(packets) >= 5


def test_waiting_in_poll_tells_an_idle_tcpdump_from_a_busy_or_sleeping_process(
        tmp_path: Path) -> None:
    """Only a tcpdump asleep in poll() may get SIGUSR2 (``tcpdump.flush``): a busy process,
    one asleep elsewhere, or a pid that is gone never qualify."""
    netns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    spec = CaptureSpec(filter="udp port 7997")
    try:
        proc = tcpdump.start(tcpdump.capture_argv(netns, spec, tmp_path), tmp_path / "log", netns)
    finally:
        os.close(netns)
    busy = subprocess.Popen(["python3", "-c", "while True: pass"])
    asleep = subprocess.Popen(["sleep", "30"])
    try:
        tcpdump.wait_listening(proc, tmp_path / "log")
        wait_for(lambda: tcpdump.waiting_in_poll(proc.pid), timeout=5, what="tcpdump idle")
        assert not tcpdump.waiting_in_poll(busy.pid)
        assert not tcpdump.waiting_in_poll(asleep.pid)
    finally:
        for p in (busy, asleep):
            p.kill()
            p.wait(5)
        tcpdump.terminate(proc.pid, grace=3, alive=lambda: proc.poll() is None)
        proc.wait(5)
    assert not tcpdump.waiting_in_poll(proc.pid)


SIGUSR1_LOG = (
    b"tcpdump: data link type LINUX_SLL2\n"
    b"tcpdump: listening on any, link-type LINUX_SLL2 (Linux cooked v2), snapshot length "
    b"262144 bytes\n"
    b"10 packets captured, 12 packets received by filter, 2 packets dropped by kernel\n"
    b"57 packets captured, 70 packets received by filter, 13 packets dropped by kernel\n"
)
FINAL_LOG = (
    b"1234 packets captured\n"
    b"1300 packets received by filter\n"
    b"0 packets dropped by interface\n"
    b"66 packets dropped by kernel\n"
)


def test_parse_stats_sigusr1_lines_take_the_last(tmp_path: Path) -> None:
    log = tmp_path / "tcpdump.log"
    log.write_bytes(SIGUSR1_LOG)
    assert tcpdump.parse_stats(log) == Stats(captured=57, received=70, dropped=13)


def test_parse_stats_final_block_with_interface_drops(tmp_path: Path) -> None:
    log = tmp_path / "tcpdump.log"
    log.write_bytes(SIGUSR1_LOG + FINAL_LOG)
    assert tcpdump.parse_stats(log) == Stats(captured=1234, received=1300, dropped=66)
    # Singular words, and a final block without the interface line (older libpcap).
    log.write_bytes(b"1 packet captured\n1 packet received by filter\n1 packet dropped by kernel\n")
    assert tcpdump.parse_stats(log) == Stats(captured=1, received=1, dropped=1)


def test_parse_stats_after_an_offset_and_without_counters(tmp_path: Path) -> None:
    log = tmp_path / "tcpdump.log"
    log.write_bytes(SIGUSR1_LOG)
    assert tcpdump.parse_stats(log, offset=len(SIGUSR1_LOG)) is None  # nothing new yet
    log.write_bytes(SIGUSR1_LOG + FINAL_LOG)
    assert tcpdump.parse_stats(log, offset=len(SIGUSR1_LOG)) == Stats(1234, 1300, 66)
    log.write_bytes(b"tcpdump: listening on any\n")
    assert tcpdump.parse_stats(log) is None
    assert tcpdump.parse_stats(tmp_path / "missing.log") is None


def test_real_tcpdump_counters_are_parsed(tmp_path: Path) -> None:
    """The formats above are tcpdump's own: a real one, asked by SIGUSR1 and then stopped,
    prints counters that parse to the packets it wrote."""
    out, log = tmp_path / "x.pcap", tmp_path / "tcpdump.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([tcpdump.TCPDUMP, "-i", "lo", "-n", "-Z", "root", "-w", str(out),
                                 "udp port 7997"], stderr=err, start_new_session=True)
    try:
        wait_for(lambda: b"listening on" in log.read_bytes(), what="tcpdump to listen")
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(7):
                s.sendto(b"x", ("127.0.0.1", 7997))
        live = wait_for(lambda: tcpdump.fresh_stats(proc.pid, log), what="SIGUSR1 counters")
        assert live.received >= live.captured >= 0 and live.dropped == 0
        tcpdump.drain(proc.pid, log)  # the last TPACKET_V3 block, before the SIGINT
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(5)
    final = tcpdump.parse_stats(log)
    assert final is not None
    assert final.captured == len(read_pcap(out)[1]) == 7  # lo shows each datagram once
    assert final.received >= 7 and final.dropped == 0  # lo: outgoing copies are received too
