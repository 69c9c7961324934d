"""podcap.pcap.pcapng on its own: blocks tshark, tcpdump and dpkt read back, an IDB mid-file,
odd packet lengths (padding), comments, nanosecond timestamps; and the classic-pcap reader
across chunk boundaries."""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import pytest

from podcap.pcap import format, pcapng
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
        head, found = format.read_pcap(chunks)
        assert (head.linktype, head.snaplen, head.ns) == (276, 65535, False)
        got = list(found)
        assert [r.ts_ns for r in got] == [(10 + i) * 10**9 + 5_000 for i in range(20)]
        assert [r.data for r in got] == [b"p" * (i + 1) for i in range(20)]


def test_an_option_longer_than_16_bits_is_cut() -> None:
    raw = pcapng.options([(1, b"x" * 70_000)])
    assert struct.unpack_from("<HH", raw) == (1, 0xFFFF)
    assert len(raw) == 4 + 0x10000 + 4


# ---- each block to the byte, and the classic reader's edges (`make mutants`)

def block(kind: int, body: bytes) -> bytes:
    """A pcapng block as the specification draws it (body already padded)."""
    return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def test_a_cut_option_is_padded_with_zeros() -> None:
    raw = pcapng.options([(1, b"x" * 70_000)])
    assert raw[4:4 + 0xFFFF] == b"x" * 0xFFFF and raw[4 + 0xFFFF] == 0


def test_section_header_block() -> None:
    assert pcapng.section_header() == block(0x0A0D0D0A, struct.pack(
        "<IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = (struct.pack("<HH", 1, 2) + b"hi\0\0" + struct.pack("<HH", 2, 2) + b"hw\0\0"
            + struct.pack("<HH", 3, 5) + b"linux\0\0\0" + struct.pack("<HH", 4, 6) + b"podcap\0\0"
            + struct.pack("<HH", 0, 0))
    assert pcapng.section_header(["hi"], userappl="podcap", os_name="linux",
                                 hardware="hw") == block(0x0A0D0D0A, struct.pack(
        "<IHHq", 0x1A2B3C4D, 1, 0, -1) + opts)
    assert pcapng.section_header(userappl="podcap")[-20:-8] == (
        struct.pack("<HH", 4, 6) + b"podcap\0\0")


def test_interface_description_block() -> None:
    tsresol = struct.pack("<HH", 9, 1) + b"\x09\0\0\0"
    end = struct.pack("<HH", 0, 0)
    assert pcapng.interface(276, 262144) == block(1, struct.pack("<HHI", 276, 0, 262144)
                                                  + tsresol + end)
    assert pcapng.interface(1, 96, name="a/b/c", description="d", comments=["c"],
                            os_name="linux") == block(1, struct.pack("<HHI", 1, 0, 96)
        + struct.pack("<HH", 1, 1) + b"c\0\0\0" + struct.pack("<HH", 2, 5) + b"a/b/c\0\0\0"
        + struct.pack("<HH", 3, 1) + b"d\0\0\0" + tsresol
        + struct.pack("<HH", 12, 5) + b"linux\0\0\0" + end)


def test_enhanced_packet_block() -> None:
    ts = (7 << 32) | 0x80000001  # the low word past 2**31
    assert pcapng.packet(3, ts, b"abcde") == block(6, struct.pack(
        "<IIIII", 3, 7, 0x80000001, 5, 5) + b"abcde\0\0\0")
    assert pcapng.packet(0, ts, b"abcd", orig_len=1500, flags=2, comments=["gap"]) == block(
        6, struct.pack("<IIIII", 0, 7, 0x80000001, 4, 1500) + b"abcd"
        + struct.pack("<HH", 1, 3) + b"gap\0" + struct.pack("<HHI", 2, 4, 2)
        + struct.pack("<HH", 0, 0))


def test_interface_statistics_block() -> None:
    ts = (5 << 32) | 0x90000001
    assert pcapng.interface_statistics(2, ts) == block(5, struct.pack("<III", 2, 5, 0x90000001))


def test_fit_comment_cuts_long_text_at_a_character() -> None:
    assert pcapng.fit_comment("x" * 60_000) == "x" * 60_000
    assert pcapng.fit_comment("x" * 60_001) == "x" * 59_980 + "\n…(truncated)"
    # 59,980 bytes end inside an "é" (2 bytes): the half character is dropped.
    assert pcapng.fit_comment("a" + "é" * 30_000) == "a" + "é" * 29_989 + "\n…(truncated)"


def classic(endian: str = "<", magic: int = 0xA1B2C3D4, linktype: int = 276) -> bytes:
    return struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 1500, linktype)


def test_classic_reader_of_a_header_alone_and_of_other_byte_orders() -> None:
    head, found = format.read_pcap([classic()])
    assert (head.linktype, head.snaplen, head.ns, head.endian) == (276, 1500, False, "<")
    assert list(found) == []
    data = (classic(">", 0xA1B23C4D, 0x10000001) + struct.pack(">IIII", 3_000_000_000, 7, 2, 60)
            + b"ab" + struct.pack(">IIII", 4, 0, 0, 0))
    head, found = format.read_pcap([data])
    # the link type is the field's low 16 bits (the high ones are FCS and reserved bits)
    assert (head.linktype, head.snaplen, head.ns, head.endian) == (1, 1500, True, ">")
    assert list(found) == [format.Record(3_000_000_000 * 10**9 + 7, b"ab", 60),
                           format.Record(4 * 10**9, b"", 0)]


def test_classic_reader_refusals() -> None:
    with pytest.raises(format.PcapFormatError) as info:
        format.read_pcap([classic()[:23]])
    assert str(info.value) == "stream ended before the 24-byte pcap header"
    with pytest.raises(format.PcapFormatError) as info:
        format.read_pcap([b"\x00\x01\x02\x03\x04" + classic()[5:]])
    assert str(info.value) == "not a pcap file (magic 00010203)"
