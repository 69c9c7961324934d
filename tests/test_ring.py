"""The ring merge on files we write ourselves: order after wrap, one header, live truncation,
NeuVector's limit rule."""

from __future__ import annotations

import io
import os
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
