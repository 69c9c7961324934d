"""The ring merge on files we write ourselves: order after wrap, one header, live truncation,
NeuVector's limit rule; the ring's arithmetic (skipped files, merged size, files begun after a
time); and pcap/format.py's headers, records, whole ends and stream reader (make mutants runs
this file against both modules)."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import dpkt
import pytest

from podcap.pcap import format, ring

PREFIX = "capture.pcap"


def write_pcap(path: Path, timestamps: list[float], size: int = 60) -> None:
    with open(path, "wb") as fh:
        writer = dpkt.pcap.Writer(fh, linktype=276)
        for ts in timestamps:
            writer.writepkt(bytes([int(ts) % 256]) * size, ts=ts)


def read(data: bytes) -> list[float]:
    return [ts for ts, _ in dpkt.pcap.Reader(io.BytesIO(data))]


def test_wrapped_ring_is_streamed_oldest_first(tmp_path: Path) -> None:
    # A 3-file ring that wrapped: file 1 is oldest, then 2, then 0 (rewritten last).
    write_pcap(tmp_path / f"{PREFIX}0", [30.0, 31.0])
    write_pcap(tmp_path / f"{PREFIX}1", [10.0, 11.0])
    write_pcap(tmp_path / f"{PREFIX}2", [20.0, 21.0])
    (tmp_path / "other.txt").write_text("not part of the ring")
    paths = ring.ring_files(tmp_path, PREFIX)
    assert [p.name[-1] for p in paths] == ["1", "2", "0"]
    data = b"".join(ring.merged(paths))
    assert read(data) == [10.0, 11.0, 20.0, 21.0, 30.0, 31.0]
    assert data.count(b"\xd4\xc3\xb2\xa1") == 1  # one global header


def test_header_only_file_is_newest(tmp_path: Path) -> None:
    write_pcap(tmp_path / f"{PREFIX}0", [5.0])
    write_pcap(tmp_path / f"{PREFIX}1", [])
    assert [p.name for p in ring.ring_files(tmp_path, PREFIX)] == [f"{PREFIX}0", f"{PREFIX}1"]


def test_live_stream_drops_half_written_record(tmp_path: Path) -> None:
    path = tmp_path / f"{PREFIX}0"
    write_pcap(path, [1.0, 2.0, 3.0], size=100)
    with open(path, "ab") as fh:  # a record tcpdump is still writing: header + part of data
        fh.write(format.record(4, 0, b"x" * 100)[:16 + 40])
    assert read(b"".join(ring.merged([path], live=True, chunk=64))) == [1.0, 2.0, 3.0]


def test_live_stream_stops_a_file_rewritten_while_read(tmp_path: Path) -> None:
    # The ring wraps while a running capture is downloaded: tcpdump truncates the file being
    # read and writes a newer round into it. Bytes of the new round at the old offset would not
    # line up with the records read so far, so that file ends where the rewrite was noticed.
    path = tmp_path / f"{PREFIX}0"
    write_pcap(path, [float(k) for k in range(40)], size=100)  # 40 records of 116 bytes
    stream = iter(ring.merged([path], live=True, chunk=1000))
    first = next(stream) + next(stream)  # the header, then the whole records of 1000 bytes
    write_pcap(path, [100.0 + k for k in range(80)], size=37)  # a newer round, other sizes
    data = first + b"".join(stream)
    assert read(data) == [float(k) for k in range(8)]


def test_live_stream_of_a_ring_truncated_before_reading_is_still_a_pcap(tmp_path: Path) -> None:
    write_pcap(tmp_path / f"{PREFIX}0", [1.0, 2.0])
    write_pcap(tmp_path / f"{PREFIX}1", [3.0, 4.0])
    stream = ring.merged(ring.ring_files(tmp_path, PREFIX), live=True)  # listed, not yet read
    for i in range(2):
        (tmp_path / f"{PREFIX}{i}").write_bytes(b"")  # both reopened by a fast rotation
    data = b"".join(stream)
    assert data[:4] == b"\xd4\xc3\xb2\xa1" and read(data) == []


def test_live_stream_of_a_ring_empty_at_listing_and_reading_waits_for_a_header(
        tmp_path: Path) -> None:
    """Every file truncated at the listing too (no header kept from it): tcpdump's first flush
    into the file it reopened comes a moment later, and the download waits for it."""
    import threading

    path = tmp_path / f"{PREFIX}0"
    path.write_bytes(b"")
    flush = threading.Timer(0.02, lambda: write_pcap(path, [5.0]))
    flush.start()
    data = b"".join(ring._live([(path, 100)], 1000, None))
    flush.join()
    assert data == path.read_bytes()[:24] and data[:4] == b"\xd4\xc3\xb2\xa1"


def test_limit_sends_whole_files_until_crossed(tmp_path: Path) -> None:
    for i in range(3):
        write_pcap(tmp_path / f"{PREFIX}{i}", [float(i * 10 + k) for k in range(10)], size=1000)
    paths = ring.ring_files(tmp_path, PREFIX)
    one_file = os.path.getsize(paths[0])
    assert len(read(b"".join(ring.merged(paths, limit=one_file + 1)))) == 20
    assert len(read(b"".join(ring.merged(paths, limit=1)))) == 10
    assert len(read(b"".join(ring.merged(paths)))) == 30


def test_memory_is_bounded_by_chunk(tmp_path: Path) -> None:
    write_pcap(tmp_path / f"{PREFIX}0", [float(k) for k in range(2000)], size=1500)
    sizes = [len(b) for b in ring.merged(ring.ring_files(tmp_path, PREFIX), chunk=65536)]
    assert max(sizes) <= 65536 and sum(sizes) > 2000 * 1500


# ---- edges of the order, the selection and the streams (`make mutants` found them untested)

def pcap_header(snaplen: int = 262144, magic: bytes = b"\xd4\xc3\xb2\xa1") -> bytes:
    order = "<" if magic[0] in (0xD4, 0x4D) else ">"
    return magic + struct.pack(order + "HHiIII", 2, 4, 0, 0, snaplen, 276)


def record(sec: int, frac: int, data: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "IIII", sec, frac, len(data), len(data)) + data


def test_first_timestamp_reads_each_kind_of_file(tmp_path: Path) -> None:
    cases = [
        (pcap_header() + record(1000, 500_000, b"x"), 1000.5),
        (pcap_header(magic=b"\xa1\xb2\xc3\xd4") + record(1000, 250_000, b"x", ">"), 1000.25),
        (pcap_header(magic=b"\x4d\x3c\xb2\xa1") + record(7, 500_000_000, b"x"), 7.5),
        (pcap_header() + record(3_000_000_000, 0, b"x"), 3_000_000_000.0),  # after 2038
        (pcap_header(), None), (pcap_header() + b"\x00" * 15, None), (b"junk" * 10, None),
    ]
    for i, (data, first) in enumerate(cases):
        (tmp_path / f"f{i}").write_bytes(data)
        assert ring.first_timestamp(tmp_path / f"f{i}") == first, i
    assert ring.first_timestamp(tmp_path / "missing") is None


def test_equal_first_timestamps_and_empty_files_go_by_number(tmp_path: Path) -> None:
    """By number, not by name or by the directory's order (six of each: that order is the
    numeric one by chance about once in half a million)."""
    stamped, empty = (10, 2, 7, 0, 11, 5), (12, 3, 9, 1, 8, 4)
    for n in stamped:
        write_pcap(tmp_path / f"{PREFIX}{n}", [5.0])
    for n in empty:
        write_pcap(tmp_path / f"{PREFIX}{n}", [])
    assert [int(p.name[len(PREFIX):]) for p in ring.ring_files(tmp_path, PREFIX)] == [
        *sorted(stamped), *sorted(empty)]
    assert [first for _, first in ring.ring_order(tmp_path, PREFIX)] == [5.0] * 6 + [None] * 6


def test_total_bytes_counts_the_files_still_there(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 100)
    (tmp_path / "b").write_bytes(b"x" * 23)
    assert ring.total_bytes([tmp_path / "a", tmp_path / "missing", tmp_path / "b"]) == 123
    assert ring.total_bytes([]) == 0


def test_a_limit_reached_exactly_sends_no_further_file(tmp_path: Path) -> None:
    for i in range(2):
        write_pcap(tmp_path / f"{PREFIX}{i}", [float(i)])
    paths = ring.ring_files(tmp_path, PREFIX)
    assert read(b"".join(ring.merged(paths, limit=os.path.getsize(paths[0])))) == [0.0]


def test_missing_and_foreign_files_anywhere_in_the_list_are_left_out(tmp_path: Path) -> None:
    write_pcap(tmp_path / "a", [1.0])
    write_pcap(tmp_path / "b", [2.0])
    (tmp_path / "foreign").write_bytes(b"this is not a pcap file, just text")
    (tmp_path / "short").write_bytes(b"\xd4\xc3\xb2\xa1")
    paths = [tmp_path / n for n in ("missing", "foreign", "short", "a", "foreign", "b")]
    stopped = ring.merged(paths)
    data = b"".join(stopped)
    assert read(data) == [1.0, 2.0] and stopped.size == len(data)
    assert read(b"".join(ring.merged(paths, live=True))) == [1.0, 2.0]


def test_a_header_only_first_file_gives_the_merged_header(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(pcap_header(snaplen=100))
    (tmp_path / "b").write_bytes(pcap_header(snaplen=200) + record(1, 0, b"x"))
    data = b"".join(ring.merged([tmp_path / "a", tmp_path / "b"]))
    assert data == pcap_header(snaplen=100) + record(1, 0, b"x")


def test_live_stream_is_the_stopped_stream_when_nothing_is_written(tmp_path: Path) -> None:
    """Whole records to the last byte, a record of no data included."""
    (tmp_path / "a").write_bytes(pcap_header() + record(1, 0, b"abc") + record(2, 0, b""))
    (tmp_path / "b").write_bytes(pcap_header() + record(3, 0, b"defg") + record(4, 0, b"h"))
    paths = [tmp_path / "a", tmp_path / "b"]
    expected = b"".join(ring.merged(paths))
    assert len(read(expected)) == 4
    for chunk in (1, 16, 17, 19, 20, 1 << 16):
        assert b"".join(ring.merged(paths, live=True, chunk=chunk)) == expected, chunk


def test_live_stream_stops_at_a_record_that_claims_more_than_there_is(tmp_path: Path) -> None:
    whole = pcap_header() + record(1, 0, b"abc")
    (tmp_path / "a").write_bytes(whole + struct.pack("<IIII", 2, 0, 0xFFFFFFF0, 60) + b"z" * 40)
    assert b"".join(ring.merged([tmp_path / "a"], live=True, chunk=64)) == whole


def test_live_stream_skips_a_file_removed_after_listing(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(pcap_header() + record(1, 0, b"abc"))
    (tmp_path / "b").write_bytes(pcap_header() + record(2, 0, b"def"))
    stream = ring.merged([tmp_path / "a", tmp_path / "b"], live=True)
    (tmp_path / "a").unlink()  # a rotation's delete, after the listing
    assert b"".join(stream) == pcap_header() + record(2, 0, b"def")


def test_live_stream_skips_a_file_without_a_pcap_header(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"j" * 24 + record(9, 0, b"junk"))
    (tmp_path / "a").write_bytes(pcap_header() + record(1, 0, b"abc"))
    data = b"".join(ring.merged([tmp_path / "junk", tmp_path / "a"], live=True))
    assert data == pcap_header() + record(1, 0, b"abc")


def test_live_stream_of_truncated_files_takes_the_header_of_a_pcap(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"j" * 24 + record(9, 0, b"junk"))
    (tmp_path / "a").write_bytes(pcap_header(snaplen=99) + record(1, 0, b"abc"))
    stream = ring.merged([tmp_path / "junk", tmp_path / "a"], live=True)
    (tmp_path / "a").write_bytes(b"")  # reopened by a rotation after the listing
    assert b"".join(stream) == pcap_header(snaplen=99)


def test_a_file_deleted_after_listing_is_skipped_from_where_the_next_one_starts(
        tmp_path: Path) -> None:
    for i, name in enumerate("abc"):
        (tmp_path / name).write_bytes(pcap_header() + record(i, 0, name.encode() * 10))
    paths = [tmp_path / n for n in "abc"]
    share = len(record(0, 0, b"a" * 10))
    stream = ring.merged(paths, offset=24 + share + 5)  # inside b
    (tmp_path / "b").unlink()
    assert b"".join(stream) == record(2, 0, b"c" * 10)


def test_a_file_that_grows_after_listing_adds_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(pcap_header() + record(1, 0, b"abc"))
    (tmp_path / "b").write_bytes(pcap_header() + record(2, 0, b"def"))
    paths = [tmp_path / "a", tmp_path / "b"]
    for offset in (0, 5, 24 + 19 + 3):
        stream = ring.merged(paths, offset=offset, chunk=4)
        for path in paths:
            with open(path, "ab") as fh:
                fh.write(record(9, 0, b"late"))
        data = b"".join(stream)
        assert len(data) == stream.size == 24 + 2 * 19 - offset
        for path in paths:  # back as listed, for the next offset
            path.write_bytes(path.read_bytes()[:24 + 19])


def test_an_offset_at_a_file_boundary_opens_nothing_before_it(tmp_path: Path,
                                                             monkeypatch) -> None:
    (tmp_path / "a").write_bytes(pcap_header() + record(1, 0, b"abc"))
    (tmp_path / "b").write_bytes(pcap_header() + record(2, 0, b"def"))
    opened: list[str] = []
    real_open = open

    def spy(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    stream = ring.merged([tmp_path / "a", tmp_path / "b"], offset=24 + 19)
    opened.clear()
    assert b"".join(stream) == record(2, 0, b"def")
    assert opened == ["b"]


def test_a_live_offset_sends_no_empty_chunk(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(pcap_header() + record(1, 0, b"abc"))
    chunks = list(ring.merged([tmp_path / "a"], live=True, offset=24))
    assert chunks == [record(1, 0, b"abc")]


# ---- the ring's arithmetic for a follower and a download's size ----------------------------

def test_skipped_counts_the_files_between_in_round_robin() -> None:
    def at(n: int | None) -> Path:
        return Path(PREFIX if n is None else f"{PREFIX}{n}")

    assert ring.skipped(at(1), at(2), 5) == 0
    assert ring.skipped(at(1), at(4), 5) == 2
    assert ring.skipped(at(3), at(1), 5) == 2  # wrapped: 4 and 0 were never seen
    assert ring.skipped(at(4), at(0), 5) == 0
    assert ring.skipped(at(2), at(2), 5) == 4  # a whole round
    assert ring.skipped(at(None), at(3), 10) == 2  # a bare name is index 0


def test_merged_size_is_what_merged_sends(tmp_path: Path) -> None:
    for n, stamps in enumerate(([1.0, 2.0], [3.0], [4.0, 5.0, 6.0])):
        write_pcap(tmp_path / f"{PREFIX}{n}", stamps, size=50)
    paths = ring.ring_files(tmp_path, PREFIX)
    for count in (1, 2, 3):
        files = paths[:count]
        assert ring.merged_size(ring.total_bytes(files), count) == len(
            b"".join(ring.merged(files))), count
    assert ring.merged_size(1000, 1) == 1000
    assert ring.merged_size(1000, 3) == 1000 - 2 * 24
    assert ring.merged_size(1000, 0) == 1000  # no file: nothing to take off
    assert ring.merged_size(30, 3) == 0  # never negative


def test_begun_after_goes_by_first_records(tmp_path: Path) -> None:
    """Files whose first record is later than ``after`` (equal: not after), oldest first, the
    file without a record last; ``exclude`` left out; ``after`` None: every file."""
    write_pcap(tmp_path / f"{PREFIX}2", [10.0, 11.0])
    write_pcap(tmp_path / f"{PREFIX}0", [20.0])
    write_pcap(tmp_path / f"{PREFIX}1", [30.0])
    write_pcap(tmp_path / f"{PREFIX}3", [])

    def names(after: float | None, exclude: str | None = None) -> list[str]:
        left_out = tmp_path / f"{PREFIX}{exclude}" if exclude is not None else None
        return [p.name[len(PREFIX):] for p in ring.begun_after(tmp_path, PREFIX, after,
                                                               left_out)]

    assert names(None) == ["2", "0", "1", "3"]
    assert names(9.999) == ["2", "0", "1", "3"]
    assert names(10.0) == ["0", "1", "3"]
    assert names(20.0) == ["1", "3"]
    assert names(30.0) == ["3"]
    assert names(20.0, exclude="3") == ["1"]
    assert names(None, exclude="0") == ["2", "1", "3"]


def test_first_header_skips_a_file_that_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "short").write_bytes(pcap_header()[:20])
    (tmp_path / "good").write_bytes(pcap_header() + record(1, 0, b"abc"))
    paths = [tmp_path / "gone", tmp_path / "short", tmp_path / "good"]
    assert ring.first_header(paths) == pcap_header()
    assert ring.first_header(paths[:2]) is None


# ---- pcap/format.py: headers, records, whole ends, the stream reader ------------------------

def test_is_pcap_and_parse_header_know_the_four_magics() -> None:
    for magic, (order, unit) in format.MAGIC.items():
        head = magic + struct.pack(order + "HHiIII", 2, 4, 0, 0, 65535, 0x0123_0071) + b"rest"
        assert format.is_pcap(head) and format.is_pcap(magic)
        parsed = format.parse_header(head)
        assert parsed == format.Header(order, unit == 1e-9, 65535, 0x71, head[:24]), magic
        assert format.parse_header(head[:23]) is None
    assert not format.is_pcap(b"\xd4\xc3\xb2") and not format.is_pcap(b"\x0a\x0d\x0d\x0a")
    assert format.parse_header(b"\x0a\x0d\x0d\x0a" + b"\x00" * 20) is None
    assert format.parse_header(format.global_header(1, 96)) == format.Header(
        "<", False, 96, 1, format.global_header(1, 96))


def test_record_keeps_a_wire_length_apart_from_the_bytes() -> None:
    assert format.record(1, 2, b"abc", orig_len=1500) == struct.pack("<IIII", 1, 2, 3,
                                                                     1500) + b"abc"
    assert format.record(1, 2, b"abc", endian=">") == struct.pack(">IIII", 1, 2, 3, 3) + b"abc"


def test_whole_end_and_last_record_from_an_offset() -> None:
    one = format.record(5, 6, b"a" * 10, orig_len=900)
    two = format.record(7, 8, b"b" * 20, orig_len=70)
    cut = format.record(9, 0, b"c" * 30)[:40]
    data = b"\xff" * 3 + one + two + cut
    assert format.last_record(data, "<", 3) == (3 + len(one), 7, 8, 20, 70)
    assert format.whole_end(data, "<", 3) == 3 + len(one) + len(two)
    assert format.whole_end(b"\xff" * 3 + cut, "<", 3) == 3
    assert format.last_record(one + two + cut, "<") == (len(one), 7, 8, 20, 70)
    assert format.whole_end(one + two, "<") == len(one + two)
    assert format.last_record(cut, "<") is None


def test_file_whole_end_reads_in_chunks(tmp_path: Path) -> None:
    records = [format.record(n, 0, bytes([n]) * (n * 7 % 23)) for n in range(1, 9)]
    body = format.global_header() + b"".join(records)
    path = tmp_path / "f"
    path.write_bytes(body + format.record(99, 0, b"z" * 40)[:30])
    fd = os.open(path, os.O_RDONLY)
    try:
        for chunk in (1, 5, 16, 17, 1 << 20):
            assert format.file_whole_end(fd, "<", chunk) == len(body), chunk
    finally:
        os.close(fd)


def test_take_copies_whole_records_and_keeps_a_cut_one() -> None:
    us = format.parse_header(format.global_header())
    ns = format.parse_header(struct.pack(">IHHiIII", format.MAGIC_NS, 2, 4, 0, 0, 9, 1))
    assert us is not None and ns is not None
    cut = format.record(3, 0, b"c" * 9)[:20]
    buf = bytearray(format.record(1, 250_000, b"ab", orig_len=60)
                    + format.record(2, 7, b"xyz") + cut)
    assert list(format.take(buf, us)) == [
        format.Record(1_250_000_000, b"ab", 60), format.Record(2_000_007_000, b"xyz", 3)]
    assert buf == cut
    assert list(format.take(buf, us)) == [] and buf == cut  # nothing whole: nothing deleted
    big = bytearray(format.record(4, 999_999_999, b"q", endian=">"))
    assert list(format.take(big, ns)) == [format.Record(4_999_999_999, b"q", 1)] and big == b""


def test_read_pcap_takes_chunks_of_any_size() -> None:
    records = [format.record(10 + n, n * 1000, bytes([n]) * n, orig_len=n + 100)
               for n in range(1, 6)]
    stream = format.global_header(1, 128) + b"".join(records)
    expected = [format.Record((10 + n) * 1_000_000_000 + n * 1_000_000, bytes([n]) * n,
                              n + 100) for n in range(1, 6)]
    for size in (1, 7, 24, 25, len(stream)):
        chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
        header, found = format.read_pcap(chunks)
        assert (header.linktype, header.snaplen, header.raw) == (1, 128, stream[:24]), size
        assert list(found) == expected, size
    header, found = format.read_pcap([stream + format.record(99, 0, b"zz")[:17]])
    assert list(found) == expected  # a cut last record ends the records quietly
    header, found = format.read_pcap([stream[:24]])  # a header alone: a pcap of no records
    assert header.raw == stream[:24] and list(found) == []
    nanos = struct.pack(">IHHiIII", format.MAGIC_NS, 2, 4, 0, 0, 9, 101)
    header, found = format.read_pcap([nanos, format.record(1, 5, b"v", endian=">")])
    assert (header.endian, header.ns, header.linktype) == (">", True, 101)
    assert list(found) == [format.Record(1_000_000_005, b"v", 1)]


def test_read_pcap_refuses_a_short_stream_and_a_foreign_one() -> None:
    with pytest.raises(format.PcapFormatError) as caught:
        format.read_pcap([format.global_header()[:10], format.global_header()[10:23]])
    assert str(caught.value) == "stream ended before the 24-byte pcap header"
    with pytest.raises(format.PcapFormatError) as caught:
        format.read_pcap([b"\x0a\x0d\x0d\x0a" + b"\x00" * 30])
    assert str(caught.value) == "not a pcap file (magic 0a0d0d0a)"
