"""podcap.pcapng on its own: blocks tshark, tcpdump and dpkt read back, an IDB mid-file,
odd packet lengths (padding), comments, nanosecond timestamps; and the classic-pcap reader
across chunk boundaries."""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt

from podcap import pcapng
from tests.groups.group_support import tcpdump_count, tshark_fields, walk

SLL2 = struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\x02\x42\xac\x11\x00\x02\x00\x00")


def _ip_udp(src: bytes, payload: bytes) -> bytes:
    udp = dpkt.udp.UDP(sport=1000, dport=2000, data=payload)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=src, dst=b"\x0a\x00\x00\x09", p=17, data=udp)
    ip.len = len(ip)
    return SLL2 + bytes(ip)


def test_written_file_reads_back_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "t.pcapng"
    base = 1_700_000_000_123_456_789
    blocks = [
        pcapng.section_header(["selector: app=web", "second comment"], userappl="podcap test"),
        pcapng.interface(276, 262144, "ns/pod-a/c", "k8s.node=n1;k8s.namespace=ns;"
                         "k8s.podName=pod-a;k8s.containerName=c", ["netstate: {}"]),
        pcapng.packet(0, base, _ip_udp(b"\x0a\x00\x00\x01", b"x" * 5)),
        pcapng.interface(276, 262144, "ns/pod-b/c"),  # a member joining mid-file
        pcapng.packet(1, base + 1, _ip_udp(b"\x0a\x00\x00\x02", b"yy"), comments=["gap"]),
        pcapng.packet(0, base + 2_000, _ip_udp(b"\x0a\x00\x00\x01", b"z" * 7), flags=1),
    ]
    path.write_bytes(b"".join(blocks))
    found = walk(path)
    assert found.shb_comments == ["selector: app=web", "second comment"]
    assert [k for k, _ in found.order] == ["shb", "idb", "epb", "idb", "epb", "epb"]
    rows = tshark_fields(path, "frame.interface_name", "frame.interface_description",
                         "ip.src", "frame.time_epoch", "frame.comment", "udp.length")
    assert [r[0] for r in rows] == ["ns/pod-a/c", "ns/pod-b/c", "ns/pod-a/c"]
    assert rows[0][1].endswith("k8s.containerName=c")
    assert [r[2] for r in rows] == ["10.0.0.1", "10.0.0.2", "10.0.0.1"]
    assert rows[1][3] == "1700000000.123456790"  # nanoseconds kept
    assert rows[1][4] == "gap"
    assert [r[5] for r in rows] == ["13", "10", "15"]
    assert tcpdump_count(path) == 3
    with path.open("rb") as f:
        assert [len(buf) for _, buf in dpkt.pcapng.Reader(f)] == [53, 50, 55]


def test_option_values_are_padded_to_32_bits() -> None:
    raw = pcapng.options([(1, b"abc"), (2, b"abcd")])
    assert raw == (struct.pack("<HH", 1, 3) + b"abc\0" + struct.pack("<HH", 2, 4) + b"abcd"
                   + b"\0\0\0\0")
    assert pcapng.options([]) == b""


def test_classic_pcap_reader_splits_records_across_any_chunking() -> None:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 276)
    records = b"".join(struct.pack("<IIII", 10 + i, 5, i + 1, 100) + b"p" * (i + 1)
                       for i in range(20))
    data = header + records + b"\x01\x02"  # a torn last record is dropped, not an error
    for size in (1, 3, 16, 17, 1000):
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        head, found = pcapng.read_pcap(chunks)
        assert (head.linktype, head.snaplen, head.ns) == (276, 65535, False)
        got = list(found)
        assert [r.ts_ns for r in got] == [(10 + i) * 10**9 + 5_000 for i in range(20)]
        assert [r.data for r in got] == [b"p" * (i + 1) for i in range(20)]


def test_an_option_longer_than_16_bits_is_cut() -> None:
    raw = pcapng.options([(1, b"x" * 70_000)])
    assert struct.unpack_from("<HH", raw) == (1, 0xFFFF)
    assert len(raw) == 4 + 0x10000 + 4
