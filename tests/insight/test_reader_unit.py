"""The reader, cache, worker, series and conversation filter on synthetic files (dpkt), each
checked against tshark/tcpdump where they have an answer."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import dpkt
import pytest

from podcap import limits
from podcap.errors import InvalidArgument
from podcap.insight import cache, reader, summary, worker
from podcap.insight.conversation import Conversation
from podcap.insight.filtered import filtered
from podcap.insight.partial import Partial
from podcap.insight.series import LiveSeries
from podcap.model import Stats, Status
from tests.insight import synth, tshark

T0 = 1_800_000_000.0


def mixed(n: int = 40) -> list[tuple[float, bytes]]:
    """TCP both ways, UDP DNS (v4 and v6), a TLS ClientHello, ICMP, ARP."""
    frames = []
    for i in range(n):
        t = T0 + i * 0.25
        if i % 5 == 0:
            frames.append((t, synth.ip4("10.0.0.1", "10.0.0.53", synth.udp(
                40000 + i, 53, synth.dns_query(f"host{i % 3}.example.test")), 17)))
        elif i % 5 == 1:
            frames.append((t, synth.ip6("fd00::1", "fd00::53", synth.udp(
                41000, 53, synth.dns_query("six.example.test")), 17)))
        elif i % 5 == 2:
            frames.append((t, synth.ip4("10.0.0.2", "10.0.0.1", synth.tcp(80, 5555, b"x" * i), 6)))
        else:
            frames.append((t, synth.ip4("10.0.0.1", "10.0.0.2", synth.tcp(5555, 80, b"y"), 6)))
    frames.append((T0 + 20, synth.ip4("10.0.0.1", "93.184.216.34", synth.tcp(
        50000, 443, synth.client_hello("secure.example.org"), dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK),
        6)))
    icmp = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"ping"))
    frames.append((T0 + 21, synth.ip4("10.0.0.1", "10.0.0.9", icmp, 1)))
    frames.append((T0 + 22, synth.sll2(b"\x00" * 28, 0x0806)))
    return frames


@pytest.fixture
def pcap(tmp_path: Path) -> Path:
    return synth.write(tmp_path / "mixed.pcap", mixed())


def _table(part: Partial, proto: int) -> dict:
    rows = {}
    from podcap.insight.partial import ntop
    for (p, a, ap, b, bp), row in part.conversations.items():
        if p != proto:
            continue
        ea, eb = (ntop(a), ap), (ntop(b), bp)
        ab = (row[0], row[1], row[2], row[3])
        if eb < ea:
            ea, eb, ab = eb, ea, (ab[2], ab[3], ab[0], ab[1])
        rows[("tcp" if proto == 6 else "udp", ea, eb)] = {
            "frames_ab": ab[0], "bytes_ab": ab[1], "frames_ba": ab[2], "bytes_ba": ab[3]}
    return rows


def test_counts_names_and_conversations_match_tshark(pcap: Path) -> None:
    part, offset = reader.read(pcap)
    assert offset == pcap.stat().st_size
    assert part.packets == tshark.count(pcap) == 43
    assert sum(p for p, _ in part.timeline.values()) == part.packets
    assert set(part.dns) == tshark.dns_names(pcap)
    assert set(part.tls) == tshark.tls_names(pcap) == {"secure.example.org"}
    for proto, number in (("tcp", 6), ("udp", 17)):
        theirs = tshark.conversations(pcap, proto)
        ours = _table(part, number)
        assert set(ours) == set(theirs)
        for key, row in theirs.items():
            assert {k: v for k, v in row.items() if k != "exact"} == ours[key]
    assert part.links[0x0806] == [1, 48] and part.ip_protocols[1][0] == 1
    assert part.services[(17, 53)][0] == 16 and part.services[(6, 443)][0] == 1


def test_a_later_ipv4_fragment_has_no_ports(tmp_path: Path) -> None:
    """A non-first fragment carries payload, not a UDP header: reading "ports" from it would
    invent a conversation. Offset 185 (x 8 bytes) lies all in the field's low byte."""
    import socket

    looks_like_udp = struct.pack(">HHHH", 40000, 53, 16, 0) + b"payload!"
    frag = dpkt.ip.IP(src=socket.inet_aton("10.0.0.1"), dst=socket.inet_aton("10.0.0.53"),
                      p=17, offset=185, data=looks_like_udp)  # field 0x00b9
    frag.len = len(frag)
    part, _ = reader.read(synth.write(tmp_path / "frag.pcap", [(T0, synth.sll2(bytes(frag)))]))
    assert [key[2:5:2] for key in part.conversations] == [(0, 0)]
    assert (17, 53) not in part.services


def test_resume_from_an_offset_equals_one_pass(pcap: Path, tmp_path: Path) -> None:
    data = pcap.read_bytes()
    growing = tmp_path / "growing.pcap"
    growing.write_bytes(data[:len(data) // 2])  # cut inside a record: tcpdump mid-write
    part, offset = reader.read(growing)
    assert offset < len(data) // 2
    growing.write_bytes(data)
    part, offset = reader.read(growing, part, offset)
    whole, _ = reader.read(pcap)
    assert offset == len(data)
    assert part.to_json() == whole.to_json()
    assert Partial.from_json(json.loads(json.dumps(whole.to_json()))).to_json() == whole.to_json()


def test_tables_are_bounded_and_totals_still_count(pcap: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "INSIGHT_CONVERSATIONS_MAX", 3)
    monkeypatch.setattr(limits, "INSIGHT_NAMES_MAX", 1)
    monkeypatch.setattr(limits, "INSIGHT_TIMELINE_MAX", 4)
    part, _ = reader.read(pcap)
    assert len(part.conversations) == 3 and len(part.dns) == 1
    tracked = sum(r[0] + r[2] for r in part.conversations.values())
    ip_packets = part.packets - 1  # the ARP frame has no conversation
    assert tracked + part.untracked_packets == ip_packets and part.untracked_packets > 0
    assert len(part.timeline) <= 4 and part.step > 1
    assert sum(p for p, _ in part.timeline.values()) == part.packets
    merged = Partial()
    merged.merge(part)
    merged.merge(part)
    assert len(merged.conversations) == 3 and merged.packets == 2 * part.packets


def test_not_a_pcap_and_other_link_types(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"hello")
    with pytest.raises(reader.NotPcap):
        reader.read(bad)
    eth = dpkt.ethernet.Ethernet(src=bytes(6), dst=bytes(6), type=0x0800, data=dpkt.ip.IP(
        src=b"\x01\x02\x03\x04", dst=b"\x05\x06\x07\x08", p=17, data=synth.udp(1, 53,
                                                                          synth.dns_query("e.x"))))
    path = synth.write(tmp_path / "eth.pcap", [(T0, bytes(eth))], linktype=1)
    part, _ = reader.read(path)
    assert set(part.dns) == {"e.x"} and len(part.conversations) == 1


def test_server_name_parser_refuses_what_is_not_a_hello() -> None:
    hello = synth.client_hello("a.example")
    assert reader.server_name(hello) == "a.example"
    assert reader.server_name(hello[:60]) is None  # cut before the extension
    assert reader.server_name(b"\x17" + hello[1:]) is None  # application data
    assert reader.server_name(b"\x16\x03\x01\x00\x04\x02\x00\x00\x00") is None  # ServerHello


def _capture(cid: str = "a" * 32, status: Status = Status.STOPPED, captured: int = 0):
    return SimpleNamespace(id=cid, status=status, start_time=T0, stats=Stats(captured=captured))


def test_worker_caches_per_file_and_reads_only_what_is_new(tmp_path: Path) -> None:
    files, cache_dir = tmp_path / "files", tmp_path / "insight"
    files.mkdir()
    frames = mixed()
    synth.write(files / "capture.pcap0", frames[:20])
    synth.write(files / "capture.pcap1", frames[20:30])
    assert worker.update(files, cache_dir) == 2
    assert worker.update(files, cache_dir) == 0  # nothing changed: nothing read
    first = cache.load(cache_dir, files / "capture.pcap0")
    # The newest file grows: only it is read again, from where the last pass stopped.
    synth.write(files / "capture.pcap1", frames[20:])
    assert worker.update(files, cache_dir) == 1
    assert cache.load(cache_dir, files / "capture.pcap0") == first
    doc = summary.build(_capture(captured=len(frames)), files, cache_dir)
    assert doc["packets"] == len(frames) and doc["pending"] == 0 and not doc["wrapped"]
    # A ring wrap rewrites pcap0 with other (here more) packets: the file is longer than the
    # old entry's offset, but starts differently: redone, not added to the old entry.
    hello = frames[-3][1]  # the TLS ClientHello
    synth.write(files / "capture.pcap0", [(T0 + 100 + i, hello) for i in range(25)])
    assert (files / "capture.pcap0").stat().st_size > first.offset
    assert worker.update(files, cache_dir) == 1
    doc = summary.build(_capture(captured=len(frames) + 25), files, cache_dir)
    assert doc["packets"] == len(frames) - 20 + 25
    assert doc["tls"] == [{"name": "secure.example.org", "hellos": 26}]
    assert doc["dns"] == [] or all(d["queries"] <= 8 for d in doc["dns"])
    assert doc["wrapped"] and "capture.pcap1" in doc["wrapped_reason"]
    # Files gone from the ring lose their entries.
    (files / "capture.pcap0").unlink()
    worker.update(files, cache_dir)
    assert not cache.path_of(cache_dir, files / "capture.pcap0").exists()


def test_wrap_is_also_seen_from_tcpdumps_count(tmp_path: Path) -> None:
    files, cache_dir = tmp_path / "files", tmp_path / "insight"
    files.mkdir()
    synth.write(files / "capture.pcap0", mixed()[:10])  # -W 1: one file, rewritten in place
    worker.update(files, cache_dir)
    assert not summary.build(_capture(captured=10), files, cache_dir)["wrapped"]
    doc = summary.build(_capture(captured=25), files, cache_dir)
    assert doc["wrapped"] and "captured 25" in doc["wrapped_reason"]
    running = summary.build(_capture(captured=25, status=Status.RUNNING), files, cache_dir)
    assert not running["wrapped"]  # a running capture's files lag tcpdump's count


def test_summary_parameters_are_checked(tmp_path: Path) -> None:
    store = SimpleNamespace(files_dir=lambda cid: tmp_path, dir=lambda cid: tmp_path)
    insight = summary.Insight(store)  # type: ignore[arg-type]
    for params in ({"top": "0"}, {"top": "x"}, {"wait": "9"}, {"wait": "-1"}):
        with pytest.raises(InvalidArgument):
            insight.summary(_capture(), params)  # type: ignore[arg-type]


def test_worker_runs_at_low_priority(tmp_path: Path) -> None:
    from bench.insight import synthetic_pcap
    files, cache_dir = tmp_path / "files", tmp_path / "insight"
    files.mkdir()
    synthetic_pcap(files / "capture.pcap0", 100_000)
    proc = subprocess.Popen([sys.executable, "-m", "podcap.insight.worker", str(files),
                             str(cache_dir)])
    seen = []
    try:
        while proc.poll() is None:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            seen.append(int(fields[16]))  # field 19 of stat: nice
            time.sleep(0.02)
    finally:
        proc.wait(60)
    assert proc.returncode == 0
    assert seen and seen[-1] == limits.INSIGHT_NICE
    assert cache.load(cache_dir, files / "capture.pcap0").partial.packets == 100_000
    # A second worker on the same capture leaves at once (the lock).
    lock = open(cache_dir / ".lock", "w")  # noqa: SIM115
    import fcntl
    fcntl.flock(lock, fcntl.LOCK_EX)
    (files / "capture.pcap1").write_bytes((files / "capture.pcap0").read_bytes()[:10_000])
    assert subprocess.run([sys.executable, "-m", "podcap.insight.worker", str(files),
                           str(cache_dir)], timeout=30).returncode == 0
    assert cache.load(cache_dir, files / "capture.pcap1") is None
    lock.close()


def test_series_keeps_counters_and_bytes_across_a_wrap(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "SERIES_POINTS_MAX", 3)
    series = LiveSeries()
    (tmp_path / "capture.pcap0").write_bytes(bytes(1000))
    series.record("c1", 1.0, Stats(captured=10, dropped=0), tmp_path)
    (tmp_path / "capture.pcap0").write_bytes(bytes(3000))
    series.record("c1", 2.0, Stats(captured=30, dropped=1), tmp_path)
    (tmp_path / "capture.pcap0").write_bytes(bytes(500))  # truncated by the ring: 500 new
    series.record("c1", 3.0, Stats(captured=40, dropped=1), tmp_path)
    series.record("c1", 4.0, Stats(captured=50, dropped=1), tmp_path)
    doc = series.document(_capture("c1"), {})  # type: ignore[arg-type]
    assert doc["points"] == [[2.0, 30, 1, 3000], [3.0, 40, 1, 3500], [4.0, 50, 1, 3500]]
    assert series.document(_capture("c1"), {"since": "3.0"})["points"] == [  # type: ignore
        [4.0, 50, 1, 3500]]
    with pytest.raises(InvalidArgument):
        series.document(_capture("c1"), {"since": "soon"})  # type: ignore[arg-type]
    monkeypatch.setattr(limits, "SERIES_CAPTURES_MAX", 1)
    series.record("c2", 1.0, Stats(), tmp_path)
    assert series.document(_capture("c1"), {})["points"] == []  # type: ignore[arg-type]


def test_an_ended_captures_series_is_kept_beside_it(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Written when the capture ends, read back by a new agent (a restart) or once newer
    # captures pushed it out of memory; a directory that is gone costs only the chart.
    dirs = {"c1": tmp_path / "c1", "c2": tmp_path / "c2"}
    dirs["c1"].mkdir()
    series = LiveSeries(dir_of=dirs.__getitem__)
    for n in range(3):
        series.record("c1", 1.0 + n, Stats(captured=10 * n, dropped=n), tmp_path)
    series.record("c2", 1.0, Stats(), tmp_path)
    series.keep("c1")
    series.keep("c2")  # no directory (deleted meanwhile): logged, nothing raised
    kept = series.document(_capture("c1"), {})["points"]  # type: ignore[arg-type]
    assert [p[:3] for p in kept] == [[1.0, 0, 0], [2.0, 10, 1], [3.0, 20, 2]]
    restarted = LiveSeries(dir_of=dirs.__getitem__)
    assert restarted.document(_capture("c1"), {})["points"] == kept  # type: ignore[arg-type]
    assert restarted.document(_capture("c1"), {"since": "2.0"})["points"] == kept[2:]  # type: ignore[arg-type]
    assert restarted.document(_capture("c2"), {})["points"] == []  # type: ignore[arg-type]


@pytest.mark.parametrize("args", [
    ("tcp", "10.0.0.1", "10.0.0.2", 5555, 80),
    ("udp", "fd00::1", "fd00::53", 41000, 53),
    ("icmp", "10.0.0.1", "10.0.0.9", None, None),
    ("ip-47", "10.0.0.1", "10.0.0.9", None, None),
])
def test_conversation_filter_compiles_and_selects_it(pcap: Path, tmp_path: Path,
                                                     args: tuple) -> None:
    conv = Conversation.parse(*args)
    out = tmp_path / "out.pcap"
    with open(out, "wb") as fh:
        for block in filtered([pcap, pcap], conv.bpf()):
            fh.write(block)
    expected = tshark.count(pcap, conv.display_filter())
    assert tshark.count(out, conv.display_filter()) == tshark.count(out) == 2 * expected
    assert (expected > 0) == (args[0] != "ip-47")


@pytest.mark.parametrize("args,message", [
    (("tcp", "10.0.0.1 or 1=1", "10.0.0.2", 1, 2), "a must be"),
    (("tcp", "10.0.0.1", "$(reboot)", 1, 2), "b must be"),
    (("tcp", "10.0.0.1", "10.0.0.2", "80 or 1", 2), "a_port"),
    (("tcp", "10.0.0.1", "10.0.0.2", 1, -1), "b_port"),
    (("tcp", "10.0.0.1", "10.0.0.2", None, 2), "a_port"),
    (("sctp or tcp", "10.0.0.1", "10.0.0.2"), "proto"),
    (("ip-256", "10.0.0.1", "10.0.0.2"), "proto"),
    (("\u00b3", "10.0.0.1", "10.0.0.2"), "proto"),  # "³".isdigit(), and int("³") raised: a 500
    (("ip-\u00b3", "10.0.0.1", "10.0.0.2"), "proto"),
    (("ip-6", "10.0.0.1", "10.0.0.2"), "a_port"),  # ip-6 is tcp: it built "port None"
    (("ip-17", "10.0.0.1", "10.0.0.2", 53, None), "b_port"),
    (("udp", "10.0.0.1", "fd00::2", 1, 2), "must both be"),
])
def test_conversation_fields_refused(args: tuple, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Conversation.parse(*args)


def test_a_protocol_number_with_ports_is_that_protocol() -> None:
    conv = Conversation.parse("ip-6", "10.0.0.1", "10.0.0.2", 5555, 80)
    assert conv == Conversation.parse("tcp", "10.0.0.1", "10.0.0.2", 5555, 80)
    assert "None" not in conv.bpf()


def test_filtered_stream_skips_empty_files_and_stops_its_tcpdump(pcap: Path,
                                                                 tmp_path: Path) -> None:
    empty = tmp_path / "capture.pcap9"
    empty.write_bytes(b"")
    conv = Conversation.parse("tcp", "10.0.0.1", "10.0.0.2", 5555, 80)
    stream = filtered([empty, pcap, pcap], conv.bpf(), chunk=64)
    first = next(iter(stream.chunks))
    assert first[:4] == b"\xd4\xc3\xb2\xa1" and len(first) == 24
    before = {p for p in os.listdir("/proc") if p.isdigit()}
    stream.close()  # the reader went away mid-stream: its tcpdump ends
    time.sleep(0.2)
    after = {p for p in os.listdir("/proc") if p.isdigit()}
    for pid in after - (after - before):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert str(pcap).encode() not in cmd


def test_rotated_files_are_read_once_someone_asked(tmp_path: Path) -> None:
    cid = "b" * 32
    capture_dir = tmp_path / cid
    files = capture_dir / "files"
    files.mkdir(parents=True)
    store = SimpleNamespace(files_dir=lambda _: files, dir=lambda _: capture_dir)
    insight = summary.Insight(store)  # type: ignore[arg-type]
    frames = mixed()
    synth.write(files / "capture.pcap0", frames[:10])
    synth.write(files / "capture.pcap1", frames[10:12])
    insight.keep_current(cid)  # nobody asked yet: nothing runs, nothing is cached
    time.sleep(0.3)
    assert not cache.cache_dir(capture_dir).exists()
    doc = insight.summary(_capture(cid, Status.RUNNING), {})  # type: ignore[arg-type]
    assert doc["packets"] == 12
    # tcpdump rotates: pcap1 is finished, pcap2 is new. The watcher's call reads pcap1 alone.
    synth.write(files / "capture.pcap1", frames[10:30])
    synth.write(files / "capture.pcap2", frames[30:31])
    insight.keep_current(cid)
    entry = lambda: cache.load(cache.cache_dir(capture_dir), files / "capture.pcap1")  # noqa: E731
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (entry() is None or entry().partial.packets != 20):
        time.sleep(0.05)
    assert entry().partial.packets == 20
    insight.close()


# ---- the reader byte by byte: frames built by hand, every counter exact (`make mutants`)
# Each frame is (seconds, microseconds, bytes, wire length); the wire length is what counts.

A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
A6, B6 = bytes(15) + b"\x01", bytes(15) + b"\x02"


def raw_pcap(frames: list[tuple[int, int, bytes, int]], linktype: int = 276,
             endian: str = "<", nanos: bool = False) -> bytes:
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)
    for sec, frac, data, wire in frames:
        out += struct.pack(endian + "IIII", sec, frac, len(data), wire) + data
    return out


def read_frames(tmp_path: Path, frames: list[tuple[int, int, bytes, int]],
                **kw: object) -> Partial:
    path = tmp_path / "frames.pcap"
    path.write_bytes(raw_pcap(frames, **kw))  # type: ignore[arg-type]
    part, offset = reader.read(path)
    assert offset == path.stat().st_size
    return part


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, frag: int = 0,
         options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    return struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(payload), 1,
                       frag, 64, proto, 0, src, dst) + options + payload


def ipv6(src: bytes, dst: bytes, nxt: int, payload: bytes) -> bytes:
    return struct.pack(">IHBB16s16s", 6 << 28, len(payload), nxt, 64, src, dst) + payload


def tcp_seg(sport: int, dport: int, payload: bytes = b"", words: int = 5) -> bytes:
    return (struct.pack(">HHIIBBHHH", sport, dport, 0, 0, words << 4, 0x18, 1024, 0, 0)
            + bytes(4 * (words - 5)) + payload)


def udp_dgram(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def sll2_frame(l3: bytes, ethertype: int = 0x0800) -> bytes:
    return struct.pack(">HHIHBB8s", ethertype, 0, 2, 1, 0, 6, bytes(8)) + l3


def dns_message(name: bytes, response: bool = False, questions: int = 1) -> bytes:
    return struct.pack(">HHHHHH", 7, 0x8180 if response else 0x0100, questions, 0, 0, 0) \
        + name + b"\x00\x01\x00\x01"


def test_one_tcp_conversation_both_ways(tmp_path: Path) -> None:
    frames = [(1000, 250_000, sll2_frame(ipv4(A, B, 6, tcp_seg(40000, 80))), 1500),
              (1001, 500_000, sll2_frame(ipv4(B, A, 6, tcp_seg(80, 40000, b"x"))), 700),
              (1001, 750_000, sll2_frame(ipv4(A, B, 6, tcp_seg(40000, 80))), 60)]
    part = read_frames(tmp_path, frames)
    assert (part.packets, part.bytes, part.first, part.last) == (3, 2260, 1000.25, 1001.75)
    # The key puts the lower (address, port) end first: A (10.0.0.1) whatever its port.
    assert part.conversations == {(6, A, 40000, B, 80): [2, 1560, 1, 700, 1000.25, 1001.75]}
    assert part.links == {0x0800: [3, 2260]}
    assert part.ip_protocols == {6: [3, 2260]}
    assert part.services == {(6, 80): [3, 2260]}
    assert part.timeline == {1000: [1, 1500], 1001: [2, 760]}
    assert (part.untracked_packets, part.untracked_bytes, part.dns, part.tls) == (0, 0, {}, {})


def test_a_conversation_row_keeps_its_earliest_and_latest_packet(tmp_path: Path) -> None:
    frames = [(20, 0, sll2_frame(ipv4(B, A, 17, udp_dgram(9, 8))), 10),
              (10, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(8, 9))), 10),
              (30, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(8, 9))), 10),
              (15, 0, sll2_frame(ipv4(B, A, 17, udp_dgram(9, 8))), 10)]
    part = read_frames(tmp_path, frames)
    assert part.conversations == {(17, A, 8, B, 9): [2, 20, 2, 20, 10.0, 30.0]}
    same = [(1, 0, sll2_frame(ipv4(A, A, 17, udp_dgram(8, 8))), 10)]  # equal ends: forward
    assert read_frames(tmp_path, same).conversations == {
        (17, A, 8, A, 8): [1, 10, 0, 0, 1.0, 1.0]}
    assert (part.first, part.last) == (10.0, 30.0)


def test_ports_the_lower_names_the_service_and_ephemeral_ones_count_as_zero(
        tmp_path: Path) -> None:
    frames = [(1, 0, sll2_frame(ipv4(A, B, 6, tcp_seg(49151, 50000))), 1),
              (1, 0, sll2_frame(ipv4(A, B, 6, tcp_seg(49152, 60000))), 2),
              (1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(5353, 443))), 4)]
    part = read_frames(tmp_path, frames)
    assert part.services == {(6, 49151): [1, 1], (6, 0): [1, 2], (17, 443): [1, 4]}
    # A key orders its ends by (address, port): A's end first, whatever the ports.
    assert set(part.conversations) == {(6, A, 49151, B, 50000), (6, A, 49152, B, 60000),
                                       (17, A, 5353, B, 443)}
    assert part.conversations[(17, A, 5353, B, 443)][:4] == [1, 4, 0, 0]


def test_ipv4_fragments_and_header_options(tmp_path: Path) -> None:
    frames = [
        (1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(1, 2), frag=0x2000)), 10),  # first, MF set
        (1, 0, sll2_frame(ipv4(A, B, 17, b"\x00\x03\x00\x04rest", frag=0x0001)), 20),
        (1, 0, sll2_frame(ipv4(A, B, 17, b"\x00\x05\x00\x06rest", frag=0x0100)), 40),
        (1, 0, sll2_frame(ipv4(A, B, 6, tcp_seg(7, 8), options=b"\x01\x01\x01\x00")), 80),
    ]
    part = read_frames(tmp_path, frames)
    assert part.conversations.keys() == {(17, A, 1, B, 2), (17, A, 0, B, 0), (6, A, 7, B, 8)}
    assert part.conversations[(17, A, 0, B, 0)][:2] == [2, 60]
    assert part.services == {(17, 1): [1, 10], (6, 7): [1, 80]}


def test_ipv6(tmp_path: Path) -> None:
    frames = [(5, 0, sll2_frame(ipv6(B6, A6, 17, udp_dgram(53, 3000)), 0x86DD), 90),
              (5, 0, sll2_frame(ipv6(A6, B6, 58, b"\x80\x00"), 0x86DD), 70)]
    part = read_frames(tmp_path, frames)
    assert part.links == {0x86DD: [2, 160]}
    assert part.ip_protocols == {17: [1, 90], 58: [1, 70]}
    assert part.conversations == {(17, A6, 3000, B6, 53): [0, 0, 1, 90, 5.0, 5.0],
                                  (58, A6, 0, B6, 0): [1, 70, 0, 0, 5.0, 5.0]}


def test_frames_too_short_for_their_headers_count_as_far_as_they_go(tmp_path: Path) -> None:
    full_v4 = ipv4(A, B, 6, tcp_seg(1, 2))
    frames = [
        (1, 0, sll2_frame(b"")[:19], 1),                              # no whole SLL2 header
        (1, 0, sll2_frame(full_v4[:19]), 2),                          # no whole IPv4 header
        (1, 0, sll2_frame(ipv6(A6, B6, 6, b"")[:39], 0x86DD), 4),     # no whole IPv6 header
        (1, 0, sll2_frame(full_v4[:23]), 8),                          # ports cut: no ports
        (1, 0, sll2_frame(b"\x00" * 28, 0x0806), 16),                 # ARP: a link only
    ]
    part = read_frames(tmp_path, frames)
    assert (part.packets, part.bytes) == (5, 31)
    assert part.links == {0x0800: [2, 10], 0x86DD: [1, 4], 0x0806: [1, 16]}
    assert part.ip_protocols == {6: [1, 8]}
    assert part.conversations == {(6, A, 0, B, 0): [1, 8, 0, 0, 1.0, 1.0]}
    assert part.services == {} and part.timeline == {1: [5, 31]}


def test_every_link_type(tmp_path: Path) -> None:
    l3 = ipv4(A, B, 17, udp_dgram(1000, 2000))
    sll = struct.pack(">HHH8sH", 0, 1, 6, bytes(8), 0x0800) + l3
    eth = bytes(12) + b"\x08\x00" + l3
    vlan = bytes(12) + b"\x81\x00\x00\x05\x08\x00" + l3
    for linktype, frame in ((113, sll), (1, eth), (1, vlan), (101, l3), (228, l3)):
        part = read_frames(tmp_path, [(1, 0, frame, 100)], linktype=linktype)
        assert part.conversations == {(17, A, 1000, B, 2000): [1, 100, 0, 0, 1.0, 1.0]}, \
            linktype
        assert part.links == {0x0800: [1, 100]}
    v6 = ipv6(A6, B6, 6, tcp_seg(1, 2))
    for linktype in (101, 229):
        part = read_frames(tmp_path, [(1, 0, v6, 50)], linktype=linktype)
        assert part.conversations == {(6, A6, 1, B6, 2): [1, 50, 0, 0, 1.0, 1.0]}
    # Too short for each link header; a raw frame of another version; an unknown link type.
    part = read_frames(tmp_path, [(1, 0, sll[:15], 1), (1, 0, sll, 2)], linktype=113)
    assert (part.packets, part.links) == (2, {0x0800: [1, 2]})
    part = read_frames(tmp_path, [(1, 0, eth[:13], 1), (1, 0, vlan[:17], 2)], linktype=1)
    assert part.links == {0x8100: [1, 2]} and part.packets == 2
    part = read_frames(tmp_path, [(1, 0, b"", 1), (1, 0, b"\x50" + l3[1:], 2)], linktype=101)
    assert part.links == {0: [1, 2]} and part.ip_protocols == {}
    part = read_frames(tmp_path, [(1, 0, l3, 5)], linktype=147)
    assert (part.packets, part.bytes, part.links, part.timeline) == (1, 5, {}, {1: [1, 5]})


def test_dns_names_over_udp_and_tcp(tmp_path: Path) -> None:
    name = b"\x03www\x07example\x03com\x00"
    query, answer = dns_message(name), dns_message(name, response=True)
    frames = [
        (1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(3333, 53, query))), 1),
        (1, 0, sll2_frame(ipv4(B, A, 17, udp_dgram(53, 3333, answer))), 1),
        (1, 0, sll2_frame(ipv4(B, A, 17, udp_dgram(53, 3334, answer))), 1),
        (1, 0, sll2_frame(ipv4(A, B, 6, tcp_seg(53, 4444, struct.pack(">H", len(query))
                                                   + query))), 1),
        (1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(3333, 53, dns_message(
            b"\x01x\x00", questions=0)))), 1),                         # no question
        (1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(3333, 53, query[:11]))), 1),  # cut header
        (1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(3333, 5353, query))), 1),    # not port 53
        (1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(3333, 53, dns_message(b"\x00")))), 1),
        (1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(3333, 53, dns_message(b"\x05ab")))), 1),
    ]
    part = read_frames(tmp_path, frames)
    assert part.dns == {"www.example.com": [2, 2], "<Root>": [1, 0]}


def test_dns_names_table_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "INSIGHT_NAMES_MAX", 1)
    frames = [(1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(3333, 53, dns_message(n)))), 1)
              for n in (b"\x01a\x00", b"\x01b\x00", b"\x01a\x00")]
    frames.append((1, 0, sll2_frame(ipv4(B, A, 17, udp_dgram(53, 3333, dns_message(
        b"\x01a\x00", response=True)))), 1))
    assert read_frames(tmp_path, frames).dns == {"a": [2, 1]}


def test_qname() -> None:
    def q(data: bytes) -> str | None:
        return reader.qname(b"--" + data, 2, 2 + len(data))

    assert q(b"\x01a\x02bc\x00") == "a.bc"
    assert q(b"\x00") == "<Root>"
    assert q(b"\x01a") is None                                 # no end
    assert q(b"\x03ab") is None                                # a label past the end
    assert q(b"\x40" + b"a" * 64 + b"\x00") is None            # a label over 63
    assert q(b"\x3f" + b"a" * 63 + b"\x00") == "a" * 63
    assert q(b"\x01\xff\x00") == "\\xff"
    long = (b"\x3f" + b"a" * 63) * 4                           # 256 bytes of labels
    assert q(long + b"\x00") is None
    assert q((b"\x3f" + b"a" * 63) * 3 + b"\x3e" + b"a" * 62 + b"\x00") == ".".join(
        ["a" * 63] * 3 + ["a" * 62])                           # 255: the longest name
    assert reader.qname(b"\x01a\x00", 0, 2) is None             # the end is the limit given


def client_hello(name: bytes, name_type: int = 0, before: bytes = b"") -> bytes:
    sni = struct.pack(">HBH", len(name) + 3, name_type, len(name)) + name
    ext = before + struct.pack(">HH", 0, len(sni)) + sni
    body = (b"\x03\x03" + bytes(32) + b"\x02ab" + b"\x00\x04\x13\x01\x13\x02" + b"\x02\x00\x01"
            + struct.pack(">H", len(ext)) + ext)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(handshake)) + handshake


def test_server_name() -> None:
    other = struct.pack(">HH", 0x000A, 4) + b"\x00\x02\x00\x1d"
    assert reader.server_name(client_hello(b"a.example")) == "a.example"
    assert reader.server_name(client_hello(b"b.example", before=other)) == "b.example"
    assert reader.server_name(client_hello(b"x" * 255)) == "x" * 255
    assert reader.server_name(client_hello(b"x" * 256)) is None
    assert reader.server_name(client_hello(b"")) is None
    assert reader.server_name(client_hello(b"c.example", name_type=1)) is None
    assert reader.server_name(client_hello(b"\xffz")) == "\\xffz"
    hello = client_hello(b"d.example")
    assert reader.server_name(hello[:-1]) is None  # the name cut by one byte
    assert reader.server_name(hello[:-9]) is None  # the extension's body missing
    no_sni = client_hello(b"e.example", before=other)
    no_sni = no_sni[:len(no_sni) - len(b"e.example") - 9]  # the hello ends after the other one
    assert reader.server_name(no_sni) is None
    assert reader.server_name(b"\x16\x03\x01\x00") is None
    assert reader.server_name(b"") is None


def test_tls_names_from_tcp_segments_that_start_a_hello(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    hello = client_hello(b"a.example")
    frames = [(1, 0, sll2_frame(ipv4(A, B, 6, tcp_seg(40000, 443, hello))), 1),
              (1, 0, sll2_frame(ipv4(A, B, 6, tcp_seg(40001, 443, hello, words=8))), 1),
              (1, 0, sll2_frame(ipv4(A, B, 6, tcp_seg(40002, 443, b"\x17" + hello[1:]))), 1),
              (1, 0, sll2_frame(ipv4(A, B, 6, tcp_seg(40003, 443, client_hello(b"b.x")))), 1),
              (1, 0, sll2_frame(ipv4(A, B, 6, tcp_seg(40004, 443))), 1)]
    part = read_frames(tmp_path, frames)
    assert part.tls == {"a.example": 2, "b.x": 1}
    monkeypatch.setattr(limits, "INSIGHT_NAMES_MAX", 1)
    assert read_frames(tmp_path, frames).tls == {"a.example": 2}


def test_full_tables_count_the_rest_as_untracked(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "INSIGHT_CONVERSATIONS_MAX", 1)
    monkeypatch.setattr(limits, "INSIGHT_SERVICES_MAX", 1)
    frames = [(1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(1, 2))), 10),
              (1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(3, 4))), 20),
              (1, 0, sll2_frame(ipv4(B, A, 17, udp_dgram(2, 1))), 40)]
    part = read_frames(tmp_path, frames)
    assert part.conversations == {(17, A, 1, B, 2): [1, 10, 1, 40, 1.0, 1.0]}
    assert (part.untracked_packets, part.untracked_bytes) == (1, 20)
    assert part.services == {(17, 1): [2, 50]}


def test_timestamps_in_each_byte_order_and_unit(tmp_path: Path) -> None:
    frame = sll2_frame(ipv4(A, B, 17, udp_dgram(1, 2)))
    for endian, nanos, frac, ts in ((">", False, 500_000, 7.5), ("<", True, 250_000_000, 7.25),
                                    (">", True, 1, 7.000000001)):
        part = read_frames(tmp_path, [(7, frac, frame, 9)], endian=endian, nanos=nanos)
        assert part.first == part.last == pytest.approx(ts, abs=1e-12), (endian, nanos)
        assert part.conversations[(17, A, 1, B, 2)][4] == part.first


def test_link_type_bits_above_28_are_ignored(tmp_path: Path) -> None:
    frame = sll2_frame(ipv4(A, B, 17, udp_dgram(1, 2)))
    part = read_frames(tmp_path, [(1, 0, frame, 9)], linktype=0x10000000 | 276)
    assert part.links == {0x0800: [1, 9]}


def test_reading_in_small_blocks_and_resuming_gives_one_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [(i, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(1, 2, bytes(i)))), 100 + i)
              for i in range(1, 30)]
    whole = read_frames(tmp_path, frames)
    monkeypatch.setattr(limits, "INSIGHT_READ_BYTES", 7)
    assert read_frames(tmp_path, frames) == whole
    path = tmp_path / "frames.pcap"
    data = raw_pcap(frames)
    path.write_bytes(data[:1000])  # a record half-written
    part, offset = reader.read(path)
    assert offset < 1000 and part.packets < 29
    path.write_bytes(data)
    part, end = reader.read(path, part, offset)
    assert end == len(data) and part == whole


def test_a_step_given_with_the_partial_buckets_the_timeline(tmp_path: Path) -> None:
    path = tmp_path / "frames.pcap"
    frame = sll2_frame(ipv4(A, B, 17, udp_dgram(1, 2)))
    path.write_bytes(raw_pcap([(s, 0, frame, 1) for s in (10, 11, 12, 15)]))
    part, _ = reader.read(path, Partial(step=4, timeline={8: [5, 5]}))
    assert part.timeline == {8: [7, 7], 12: [2, 2]}


def test_not_a_pcap_says_which_file(tmp_path: Path) -> None:
    for data in (b"", b"\xd4\xc3\xb2\xa1" + bytes(19), b"x" * 24):
        (tmp_path / "c.pcap0").write_bytes(data)
        with pytest.raises(reader.NotPcap) as info:
            reader.read(tmp_path / "c.pcap0")
        assert str(info.value) == "c.pcap0 is not a pcap file (or has no header yet)"
    (tmp_path / "c.pcap0").write_bytes(raw_pcap([]))
    part, offset = reader.read(tmp_path / "c.pcap0", offset=3)
    assert (part.packets, offset) == (0, 24)


def test_headers_exactly_as_long_as_needed(tmp_path: Path) -> None:
    """Each length check at its edge: a header that just fits is read."""
    v4 = ipv4(A, B, 17, b"")  # 20 bytes: an IPv4 header and nothing after it
    frames = [(1, 0, sll2_frame(b"", 0x0806), 1),                        # SLL2: 20 bytes
              (1, 0, sll2_frame(v4), 2),                                  # IPv4 header alone
              (1, 0, sll2_frame(ipv6(A6, B6, 58, b""), 0x86DD), 4),       # IPv6 header alone
              (1, 0, sll2_frame(ipv4(A, B, 17, b"\x00\x07\x00\x09")), 8),  # the ports only
              (1, 0, sll2_frame(ipv4(A, B, 6, tcp_seg(53, 9)[:12])), 16)]  # last, TCP cut
    part = read_frames(tmp_path, frames)
    assert part.links == {0x0806: [1, 1], 0x0800: [3, 26], 0x86DD: [1, 4]}
    assert part.ip_protocols == {17: [2, 10], 58: [1, 4], 6: [1, 16]}
    assert part.conversations[(17, A, 7, B, 9)][:2] == [1, 8]
    assert part.services == {(17, 7): [1, 8], (6, 9): [1, 16]}
    sll = struct.pack(">HHH8sH", 0, 1, 6, bytes(8), 0x0806)             # SLL: 16 bytes
    assert read_frames(tmp_path, [(1, 0, sll, 3)], linktype=113).links == {0x0806: [1, 3]}
    eth = bytes(12) + b"\x08\x06"                                        # Ethernet: 14 bytes
    vlan = bytes(12) + b"\x81\x00\x00\x05\x08\x06"                       # with a tag: 18
    assert read_frames(tmp_path, [(1, 0, eth, 3), (1, 0, vlan, 5)], linktype=1).links == {
        0x0806: [2, 8]}
    assert read_frames(tmp_path, [(1, 0, b"\x45", 3)], linktype=101).links == {0x0800: [1, 3]}


def test_frames_after_an_unknown_link_or_network_type_are_still_read(tmp_path: Path) -> None:
    v4 = ipv4(A, B, 17, udp_dgram(1, 2))
    part = read_frames(tmp_path, [(1, 0, v4, 1), (2, 0, v4, 2)], linktype=147)
    assert (part.packets, part.bytes, part.last) == (2, 3, 2.0)
    part = read_frames(tmp_path, [(1, 0, sll2_frame(b"\x00" * 28, 0x0806), 1),
                                  (2, 0, sll2_frame(v4), 2)])
    assert part.ip_protocols == {17: [1, 2]}


def test_a_last_record_of_no_bytes_and_timestamps_past_2038(tmp_path: Path) -> None:
    part = read_frames(tmp_path, [(3_000_000_000, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(
        1, 2))), 5), (3_000_000_001, 0, b"", 0)])
    assert (part.packets, part.first, part.last) == (2, 3e9, 3e9 + 1)
    assert part.timeline == {3_000_000_000: [1, 5], 3_000_000_001: [1, 0]}


def test_dns_edges(tmp_path: Path) -> None:
    name = b"\x01a\x00"
    answer_only = struct.pack(">HHHHHH", 7, 0x8400, 1, 0, 0, 0) + b"\x01r\x00\x00\x01\x00\x01"
    query_ra = struct.pack(">HHHHHH", 7, 0x0080, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"
    frames = [
        (1, 0, sll2_frame(ipv4(B, A, 17, udp_dgram(53, 3333, answer_only))), 1),
        (1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(3333, 53, query_ra))), 1),
        (1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(3333, 53, dns_message(
            b"\x01m\x00", questions=256)))), 1),
        (1, 0, sll2_frame(ipv4(A, B, 6, tcp_seg(8080, 80, struct.pack(">H", 20) + dns_message(
            b"\x01t\x00")))), 1),                                     # DNS words, not port 53
        (1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(3333, 53, b"\x00\x07\x01"))), 1),  # last, cut
    ]
    assert read_frames(tmp_path, frames).dns == {"r": [0, 1], "a": [1, 0], "m": [1, 0]}


def test_more_than_one_untracked_packet_adds_up(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "INSIGHT_CONVERSATIONS_MAX", 1)
    frames = [(1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(1, n))), n) for n in (2, 3, 4)]
    part = read_frames(tmp_path, frames)
    assert (part.untracked_packets, part.untracked_bytes) == (2, 7)


def test_a_new_timeline_bucket_starts_at_its_step(tmp_path: Path) -> None:
    path = tmp_path / "frames.pcap"
    frame = sll2_frame(ipv4(A, B, 17, udp_dgram(1, 2)))
    path.write_bytes(raw_pcap([(s, 0, frame, 1) for s in (17, 18, 23)]))
    part, _ = reader.read(path, Partial(step=4))
    assert part.timeline == {16: [2, 2], 20: [1, 1]}


def hello_record(extensions: bytes, after: bytes = b"") -> bytes:
    """A ClientHello whose extension block is ``extensions``; ``after``: bytes that follow the
    block inside the same handshake message."""
    body = (b"\x03\x03" + bytes(32) + b"\x02ab" + b"\x00\x04\x13\x01\x13\x02" + b"\x02\x00\x01"
            + struct.pack(">H", len(extensions)) + extensions + after)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(handshake)) + handshake


def sni_extension(*names: bytes) -> bytes:
    entries = b"".join(struct.pack(">BH", 0, len(n)) + n for n in names)
    return struct.pack(">HHH", 0, len(entries) + 2, len(entries)) + entries


def test_server_name_edges() -> None:
    assert reader.server_name(client_hello(b"a")) == "a"
    assert reader.server_name(hello_record(sni_extension(b"one", b"two"))) == "one"
    other = struct.pack(">HH", 0x000A, 4) + b"\x00\x02\x00\x1d"
    assert reader.server_name(hello_record(other + sni_extension(b"ev"))) == "ev"
    # A name longer than 255 is refused, not read modulo 256.
    assert reader.server_name(hello_record(sni_extension(b"x" * 300))) is None
    # A name entry that claims one byte more than its extension holds: not completed from
    # the extension after it.
    cut = struct.pack(">HHHBH", 0, 9, 7, 0, 5) + b"name"
    assert reader.server_name(hello_record(cut + other)) is None
    # Bytes after the extension block are not read as an extension, whatever they look like.
    assert reader.server_name(hello_record(other, after=sni_extension(b"ev"))) is None
    assert reader.server_name(hello_record(b"", after=sni_extension(b"ev"))) is None


def test_a_cut_hello_is_not_completed_from_the_next_record(tmp_path: Path) -> None:
    hello = client_hello(b"cut.example")
    frames = [(1, 0, sll2_frame(ipv4(A, B, 6, tcp_seg(40000, 443, hello[:-3]))), 1),
              (1, 0, sll2_frame(ipv4(A, B, 17, udp_dgram(1, 2, b"mple" + bytes(40)))), 1)]
    assert read_frames(tmp_path, frames).tls == {}
