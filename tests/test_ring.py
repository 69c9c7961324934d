"""The ring merge on files we write ourselves: order after wrap, one header, live truncation,
NeuVector's limit rule."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import dpkt

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
