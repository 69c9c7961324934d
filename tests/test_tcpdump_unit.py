"""The tcpdump module on its own: the exact argv, and the counters read back from its log.

The argv is checked as a list (no shell ever sees it); the counters on hand-made logs in both of
tcpdump's formats, with drops, so a parser that loses one field cannot pass.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from podcap.capture import command, runner, signals, tcpdump, tcpdump_log
from podcap.model import CaptureSpec, Stats
from podcap.pcap.repair import repair_tail
from tests.support import read_pcap, wait_for

FILES = Path("/data/captures/c0ffee/files")


def test_capture_argv_is_exact_and_the_filter_comes_after_double_dash() -> None:
    spec = CaptureSpec(filter="-1 = -1 and tcp port 80", file_number=3, file_size_mb=4,
                       buffer_kib=1024, snaplen=96)
    assert command.tcpdump_args(spec, FILES) == [
        "/usr/bin/tcpdump", "-s", "96", "-i", "any", "-n", "-Z", "root", "-B", "1024",
        "-C", "4", "-W", "3", "-w", "/data/captures/c0ffee/files/capture.pcap",
        "--", "link[10] != 3 and (-1 = -1 and tcp port 80)",
    ]


def test_filter_that_looks_like_an_option_stays_one_argument_after_double_dash() -> None:
    for hostile in ("-w /etc/x", "-z /bin/sh", "--help", "-r /etc/shadow"):
        args = command.tcpdump_args(CaptureSpec(filter=hostile), FILES)
        assert args[-2:] == ["--", f"link[10] != 3 and ({hostile})"]
        assert args.count("--") == 1 and args.count("-w") == 1
    # No filter: only the refusal of frames addressed to another host.
    assert command.tcpdump_args(CaptureSpec(), FILES)[-2:] == ["--", "link[10] != 3"]


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
        proc = runner.start(command.tcpdump_args(spec, files), log, netns)
    finally:
        os.close(netns)
    try:
        runner.wait_listening(proc, log)
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(5):
                s.sendto(b"dash", ("127.0.0.1", 7999))
                s.sendto(b"other", ("127.0.0.1", 7998))  # not matched by the filter
        signals.drain(proc.pid, log)
    finally:
        signals.terminate(proc.pid, grace=3, alive=lambda: proc.poll() is None)
        proc.wait(5)
    final = tcpdump_log.parse_stats(log)
    _, packets = read_pcap(files / "capture.pcap0")
    # Over "any", each loopback datagram is seen once (outgoing); only port 7999 matches.
    assert [buf[-4:] for _, buf in packets] == [b"dash"] * len(packets)
    assert final is not None and final.captured == len(packets) >= 5


def test_waiting_in_poll_tells_an_idle_tcpdump_from_a_busy_or_sleeping_process(
        tmp_path: Path) -> None:
    """Only a tcpdump asleep in poll() may get SIGUSR2 (``signals.flush``): a busy process,
    one asleep elsewhere, or a pid that is gone never qualify."""
    netns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    spec = CaptureSpec(filter="udp port 7997")
    try:
        proc = runner.start(command.tcpdump_args(spec, tmp_path), tmp_path / "log", netns)
    finally:
        os.close(netns)
    busy = subprocess.Popen(["python3", "-c", "while True: pass"])
    asleep = subprocess.Popen(["sleep", "30"])
    try:
        runner.wait_listening(proc, tmp_path / "log")
        wait_for(lambda: signals.waiting_in_poll(proc.pid), timeout=5, what="tcpdump idle")
        assert not signals.waiting_in_poll(busy.pid)
        assert not signals.waiting_in_poll(asleep.pid)
    finally:
        for p in (busy, asleep):
            p.kill()
            p.wait(5)
        signals.terminate(proc.pid, grace=3, alive=lambda: proc.poll() is None)
        proc.wait(5)
    assert not signals.waiting_in_poll(proc.pid)


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
    assert tcpdump_log.parse_stats(log) == Stats(captured=57, received=70, dropped=13)


def test_parse_stats_final_block_with_interface_drops(tmp_path: Path) -> None:
    log = tmp_path / "tcpdump.log"
    log.write_bytes(SIGUSR1_LOG + FINAL_LOG)
    assert tcpdump_log.parse_stats(log) == Stats(captured=1234, received=1300, dropped=66)
    # Singular words, and a final block without the interface line (older libpcap).
    log.write_bytes(b"1 packet captured\n1 packet received by filter\n1 packet dropped by kernel\n")
    assert tcpdump_log.parse_stats(log) == Stats(captured=1, received=1, dropped=1)


def test_parse_stats_after_an_offset_and_without_counters(tmp_path: Path) -> None:
    log = tmp_path / "tcpdump.log"
    log.write_bytes(SIGUSR1_LOG)
    assert tcpdump_log.parse_stats(log, offset=len(SIGUSR1_LOG)) is None  # nothing new yet
    log.write_bytes(SIGUSR1_LOG + FINAL_LOG)
    assert tcpdump_log.parse_stats(log, offset=len(SIGUSR1_LOG)) == Stats(1234, 1300, 66)
    log.write_bytes(b"tcpdump: listening on any\n")
    assert tcpdump_log.parse_stats(log) is None
    assert tcpdump_log.parse_stats(tmp_path / "missing.log") is None


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
        live = wait_for(lambda: signals.fresh_stats(proc.pid, log), what="SIGUSR1 counters")
        assert live.received >= live.captured >= 0 and live.dropped == 0
        signals.drain(proc.pid, log)  # the last TPACKET_V3 block, before the SIGINT
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(5)
    final = tcpdump_log.parse_stats(log)
    assert final is not None
    assert final.captured == len(read_pcap(out)[1]) == 7  # lo shows each datagram once
    assert final.received >= 7 and final.dropped == 0  # lo: outgoing copies are received too


# ---- the pcap file's parts this module writes or mends, and why a tcpdump ended

def test_write_empty_pcap_is_a_header_for_the_link_type_and_never_overwrites(
        tmp_path: Path) -> None:
    path = tcpdump.write_empty_pcap(tmp_path / "empty.pcap")
    assert path == tmp_path / "empty.pcap"
    data = path.read_bytes()
    assert data == (b"\xd4\xc3\xb2\xa1" + b"\x02\x00\x04\x00" + bytes(8) +
                    (262144).to_bytes(4, "little") + (276).to_bytes(4, "little"))
    path.write_bytes(b"kept")
    assert tcpdump.write_empty_pcap(path).read_bytes() == b"kept"
    other = tcpdump.write_empty_pcap(tmp_path / "eth.pcap", linktype=1)
    assert other.read_bytes()[20:] == (1).to_bytes(4, "little")


def pcap_bytes(lengths: list[int], order: str = "<", magic: int = 0xA1B2C3D4) -> bytes:
    import struct
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, 276)
    for i, n in enumerate(lengths):
        out += struct.pack(order + "IIII", 1000 + i, 0, n, n) + bytes([i % 256]) * n
    return out


def test_repair_tail_cuts_after_the_last_whole_record(tmp_path: Path) -> None:
    whole = pcap_bytes([10, 0, 70, 3])
    for cut in (1, 5, 16, 17, 30):  # inside a record header, at its end, inside its data
        path = tmp_path / f"cut{cut}.pcap"
        path.write_bytes(whole + pcap_bytes([40])[24:24 + cut])
        for chunk in (1 << 20, 7, 16, 1):  # records across every read boundary
            path.write_bytes(whole + pcap_bytes([40])[24:24 + cut])
            assert repair_tail(path, chunk=chunk) == cut, (cut, chunk)
            assert path.read_bytes() == whole


def test_repair_tail_leaves_a_whole_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "whole.pcap"
    for data in (pcap_bytes([]), pcap_bytes([5, 6]), pcap_bytes([5, 0]),
                 pcap_bytes([5, 6], order=">"), pcap_bytes([9], magic=0xA1B23C4D)):
        path.write_bytes(data)
        assert repair_tail(path, chunk=4) == 0
        assert path.read_bytes() == data


def test_repair_tail_reads_big_endian_and_nanosecond_files(tmp_path: Path) -> None:
    path = tmp_path / "be.pcap"
    whole = pcap_bytes([300, 2], order=">")
    path.write_bytes(whole + b"\xff" * 20)  # a header that announces 4 GiB of data
    assert repair_tail(path, chunk=64) == 20
    assert path.read_bytes() == whole
    whole = pcap_bytes([3], magic=0xA1B23C4D)
    path.write_bytes(whole + b"\x01" * 3)
    assert repair_tail(path) == 3
    assert path.read_bytes() == whole


def test_repair_tail_leaves_what_is_not_a_pcap(tmp_path: Path) -> None:
    path = tmp_path / "x"
    for data in (b"", b"\xd4\xc3\xb2\xa1" + bytes(10), b"not a pcap at all, longer than 24 b"):
        path.write_bytes(data)
        assert repair_tail(path) == 0
        assert path.read_bytes() == data
    assert repair_tail(tmp_path / "missing") == 0


def test_parse_stats_reads_the_last_4_kib_only(tmp_path: Path) -> None:
    """A log is read from its end, so a long one costs no more than a short one: counters
    further back than that are not the latest anyway."""
    log = tmp_path / "tcpdump.log"
    log.write_bytes(FINAL_LOG + b"tcpdump: noise\n" * 300)
    assert tcpdump_log.parse_stats(log) is None
    log.write_bytes(FINAL_LOG + b"tcpdump: noise\n" * 200)
    assert tcpdump_log.parse_stats(log) == Stats(captured=1234, received=1300, dropped=66)


def test_exit_reasons(tmp_path: Path) -> None:
    log = tmp_path / "tcpdump.log"
    log.write_bytes(b"tcpdump: listening on any, link-type LINUX_SLL2\n"
                    b"12 packets captured\n")
    assert tcpdump_log.exit_reason(0, log) == ("tcpdump exited", False)
    assert tcpdump_log.exit_reason(-9, log) == ("tcpdump killed by signal 9 (SIGKILL)", True)
    assert tcpdump_log.exit_reason(-15, log) == ("tcpdump killed by signal 15 (SIGTERM)", True)
    assert tcpdump_log.exit_reason(-99, log) == ("tcpdump killed by signal 99 (unknown signal)",
                                             True)
    assert tcpdump_log.exit_reason(None, log) == ("tcpdump ended without a message (killed?)", True)
    assert tcpdump_log.exit_reason(1, log) == ("error: tcpdump failed without a message", True)
    log.write_bytes(b"tcpdump: listening on any\ntcpdump: pcap_loop: The interface went down\n")
    assert tcpdump_log.exit_reason(1, log) == ("error: pcap_loop: The interface went down", True)
    assert tcpdump_log.exit_reason(None, log) == ("error: pcap_loop: The interface went down", True)
    log.write_bytes(b"tcpdump: capture.pcap1: No space left on device\n")
    assert tcpdump_log.exit_reason(1, log) == ("disk full", False)
    assert tcpdump_log.exit_reason(-9, log) == ("disk full", False)
    assert tcpdump_log.exit_reason(1, tmp_path / "gone.log") == ("error: tcpdump log is missing",
                                                             True)
