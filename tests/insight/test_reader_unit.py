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
    (("udp", "10.0.0.1", "fd00::2", 1, 2), "must both be"),
])
def test_conversation_fields_refused(args: tuple, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Conversation.parse(*args)


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
