"""RingFollower against a ring written by hand the way tcpdump writes it (buffered, rotating,
truncating on wrap): fast and deterministic, no container or tcpdump."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from podcap.pcap import format
from podcap.pcap.follow import RingFollower
from podcap.pcap.follow_pcapng import as_pcapng
from podcap.pcap.gaps import Gap, gap_record, gap_text
from tests.support import read_pcap

HEADER = format.global_header()


def record(n: int, size: int = 60, ts: float | None = None) -> bytes:
    ts = 1_700_000_000 + n if ts is None else ts
    data = n.to_bytes(4, "big") * (size // 4)
    return format.record(int(ts), int((ts % 1) * 1e6), data)


class Ring:
    def __init__(self, root: Path, files: int) -> None:
        self.root, self.files = root, files
        self.running = True

    def path(self, i: int) -> Path:
        return self.root / f"capture.pcap{i}"

    def rotate_to(self, i: int) -> None:  # fopen("w"): created or truncated, same inode
        self.path(i).open("wb").close()

    def write(self, i: int, data: bytes) -> None:
        with self.path(i).open("ab") as fh:
            fh.write(data)

    def follower(self, **kw: object) -> RingFollower:
        return RingFollower(self.root, self.files, 1_000_000, lambda: self.running,
                            poll=0.001, **kw)  # type: ignore[arg-type]


def take(follower: RingFollower, until: int, timeout: float = 5.0) -> bytes:
    """Read until ``until`` bytes (or the end)."""
    out = b""
    deadline = time.monotonic() + timeout
    for chunk in follower:
        out += chunk
        if len(out) >= until or time.monotonic() > deadline:
            break
    return out


def numbers(stream: bytes) -> list[int | str]:
    _, packets = read_pcap(stream)
    return [gap_text(p) or int.from_bytes(p[:4], "big") for _, p in packets]


def test_whole_records_rotation_and_the_end(tmp_path: Path) -> None:
    ring = Ring(tmp_path, 3)
    ring.rotate_to(0)
    ring.write(0, HEADER + record(1) + record(2) + record(3)[:30])  # a flush mid-record
    f = ring.follower()
    got = take(f, 24 + 2 * 76)
    assert numbers(got) == [1, 2]
    ring.write(0, record(3)[30:])
    ring.rotate_to(1)  # tcpdump moved on: file 0 is complete
    ring.write(1, HEADER + record(4))
    ring.rotate_to(2)
    ring.write(2, HEADER + record(5)[:10])
    got += take(f, 2 * 76)
    ring.write(2, record(5)[10:])
    ring.running = False
    got += b"".join(f)  # drains and ends by itself
    assert numbers(got) == [1, 2, 3, 4, 5]
    assert f.gaps == []


def test_a_next_file_that_begins_a_microsecond_before_the_last_packet_is_no_gap(
        tmp_path: Path) -> None:
    # tcpdump stamps packets on several CPUs: the first packet of the next file can be older
    # than the last one of the file before (seen: 1 µs; here too). That file is the next one,
    # not one the ring overwrote; a follower that skipped it lost a whole file and called it a
    # gap.
    ring = Ring(tmp_path, 50)
    t = 1_700_000_000.5
    ring.rotate_to(0)
    ring.write(0, HEADER + record(1, ts=t) + record(2, ts=t + 0.000020))
    f = ring.follower()
    got = take(f, 24 + 2 * 76)
    ring.rotate_to(1)  # both written while the follower waited
    ring.write(1, HEADER + record(3, ts=t + 0.000019) + record(4, ts=t + 0.000030))
    ring.rotate_to(2)
    ring.write(2, HEADER + record(5, ts=t + 0.3))
    ring.running = False
    got += b"".join(f)
    assert numbers(got) == [1, 2, 3, 4, 5]
    assert f.gaps == []


def test_overwritten_before_read_is_told_in_the_stream(tmp_path: Path) -> None:
    ring = Ring(tmp_path, 2)
    ring.rotate_to(0)
    ring.write(0, HEADER + b"".join(record(n) for n in range(1, 4)))
    gaps = []
    f = ring.follower(on_gap=gaps.append, chunk=24 + 76)  # a slow reader: a record a read
    got = take(f, 24 + 76)
    assert numbers(got) == [1]
    # While it does not read, tcpdump goes round the ring: file 1, then file 0 again.
    ring.rotate_to(1)
    ring.write(1, HEADER + b"".join(record(n) for n in range(4, 7)))
    ring.rotate_to(0)
    ring.write(0, HEADER + b"".join(record(n) for n in range(7, 9)))
    ring.running = False
    got += b"".join(f)
    seen = numbers(got)
    assert seen[0] == 1 and seen[-5:] == [4, 5, 6, 7, 8]
    notes = [n for n in seen if isinstance(n, str)]
    assert len(notes) == 1 and "1 file" in notes[0] and "overwritten" in notes[0]
    assert len(gaps) == 1 and gaps[0].files == 1
    # Its time: from the last packet sent (1, at +1 s) to the first after it (4, at +4 s),
    # the seconds of packets the ring lost.
    assert gaps[0].seconds == 3.0 and "3.0 s of packets" in notes[0]
    # pcapng: the marker becomes a comment on the next packet
    ng = b"".join(as_pcapng([got], "web"))
    assert b"overwritten before they were read" in ng


def test_from_now_sends_the_header_then_only_new_records(tmp_path: Path) -> None:
    ring = Ring(tmp_path, 2)
    ring.rotate_to(0)
    now = time.time()
    ring.write(0, HEADER + record(1, ts=now - 5) + record(2, ts=now - 4))
    f = ring.follower(from_now=True)
    first = take(f, 24)
    assert first == HEADER
    ring.write(0, record(3, ts=now - 3))  # still in tcpdump's buffer when the follow began
    ring.write(0, record(4, ts=now + 1))
    ring.running = False
    assert numbers(first + b"".join(f)) == [4]


def test_close_from_another_thread_ends_it_and_reports_the_end(tmp_path: Path) -> None:
    import threading

    ring = Ring(tmp_path, 2)
    ring.rotate_to(0)
    ring.write(0, HEADER)
    ended = threading.Event()
    f = ring.follower(on_end=ended.set)
    take(f, 24)
    reader = threading.Thread(target=lambda: [None for _ in f])
    reader.start()
    time.sleep(0.05)  # the reader is inside __next__, waiting for records
    f.close()
    reader.join(2)
    assert not reader.is_alive() and ended.is_set()
    never = ring.follower(on_end=ended.clear)
    never.close()  # closed before any read: still reported once
    assert not ended.is_set()


# ---- the gap: its numbers, its text, its marker record (exact; `make mutants`)

HEADER_NS = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 276)


def record_at(n: int, ts: float, nanos: bool = False) -> bytes:
    data = n.to_bytes(4, "big") * 15
    sec = int(ts)
    frac = round((ts - sec) * (1e9 if nanos else 1e6))
    return struct.pack("<IIII", sec, frac, len(data), len(data)) + data


@pytest.mark.parametrize("nanos", [False, True])
def test_a_gap_is_told_with_its_files_bytes_and_seconds(tmp_path: Path, nanos: bool) -> None:
    ring = Ring(tmp_path, 2)
    head = HEADER_NS if nanos else HEADER
    t = 1_700_000_000.25
    ring.rotate_to(0)
    ring.write(0, head + b"".join(record_at(n, t + n / 10, nanos) for n in range(1, 4)))
    told: list[Gap] = []
    before = time.time()
    f = ring.follower(on_gap=told.append, chunk=24 + 2 * 76)  # two records a read
    got = take(f, 24 + 2 * 76)
    # Not read on: tcpdump goes round the ring, and file 0's last record is lost.
    ring.rotate_to(1)
    ring.write(1, head + b"".join(record_at(n, t + 0.7 + n / 100, nanos) for n in (4, 5)))
    ring.rotate_to(0)
    ring.write(0, head + record_at(7, t + 2, nanos))
    ring.running = False
    got += b"".join(f)
    assert len(f.gaps) == 1 and told == f.gaps
    gap = f.gaps[0]
    # From the last record sent (t + 0.2) to the first one after the gap (t + 0.74).
    # Lost: a full file (1 MB here) less what was read of it: header, two records and the
    # first 24 bytes of the third (one read of 176 bytes after the header).
    assert (gap.files, gap.bytes) == (1, 1_000_000 - 24 - 176)
    assert gap.seconds == pytest.approx(0.54, abs=1e-6)
    assert before <= gap.at <= time.time()
    text = "podcap: 1 file (≈1.0 MB, 0.5 s of packets) overwritten before they were read"
    assert gap.text() == text
    _, packets = read_pcap(got)
    marker = [(float(ts), gap_text(p)) for ts, p in packets if gap_text(p)]
    assert marker == [(pytest.approx(t + 0.2, abs=1e-6), text)]  # stamped as the last one sent
    assert numbers(got) == [1, 2, text, 4, 5, 7]


def test_gap_text_and_dict() -> None:
    gap = Gap(files=2, bytes=1_550_000, seconds=2.2564, at=5.0)
    text = "podcap: 2 files (≈1.6 MB, 2.3 s of packets) overwritten before they were read"
    assert gap.text() == text
    assert gap.as_dict() == {"files": 2, "bytes": 1_550_000, "seconds": 2.256, "at": 5.0,
                             "text": text}
    assert Gap(files=0, bytes=0, seconds=0.0, at=0.0).text().startswith("podcap: 0 files (")


@pytest.mark.parametrize(("order", "nanos"), [("<", False), (">", False), ("<", True)])
def test_gap_record_is_a_record_of_its_notice(order: str, nanos: bool) -> None:
    gap = Gap(files=1, bytes=10, seconds=1.0, at=0.0)
    data = gap_record(gap, 3_000_000_000.5, order, nanos)
    sec, frac, caplen, length = struct.unpack(order + "IIII", data[:16])
    assert (sec, frac) == (3_000_000_000, 500_000_000 if nanos else 500_000)
    assert caplen == length == len(data) - 16
    assert gap_text(data[16:]) == gap.text()


def test_gap_text_of_other_packets_is_none() -> None:
    marker = gap_record(Gap(1, 1, 1.0, 0.0), 1.0, "<", False)[16:]
    head, body = marker[:20], marker[20:]
    assert gap_text(marker[:20] + b"podcap: \xff") == "podcap: \ufffd"
    assert gap_text(head + b"other text") is None
    assert gap_text(bytes(20) + body) is None  # the notice's words on an ordinary frame
    assert gap_text(b"") is None


def test_fractions_near_a_whole_second_stay_in_their_second() -> None:
    gap = Gap(files=1, bytes=1, seconds=1.0, at=0.0)
    sec, frac = struct.unpack("<II", gap_record(gap, 7.999999, "<", False)[:8])
    assert (sec, frac) == (7, 999_999)
    sec, frac = struct.unpack("<II", gap_record(gap, 7.999999999, "<", True)[:8])
    assert (sec, frac) == (7, 999_999_999)


def test_a_gap_before_any_packet_was_sent_has_no_seconds(tmp_path: Path) -> None:
    ring = Ring(tmp_path, 2)
    ring.rotate_to(0)
    ring.write(0, HEADER + record(1))
    f = ring.follower()
    assert take(f, 24) == HEADER  # the header only: no packet sent yet
    ring.rotate_to(1)
    ring.write(1, HEADER + record(2))
    ring.rotate_to(0)
    ring.write(0, HEADER + record(3))
    ring.running = False
    got = HEADER + b"".join(f)
    assert [(g.files, g.seconds) for g in f.gaps] == [(1, 0.0)]
    assert numbers(got)[-2:] == [2, 3]


def test_a_file_overwritten_before_its_first_record_was_whole(tmp_path: Path) -> None:
    """The file being read had only part of its first record when it was rewritten shorter:
    the follower goes on with the oldest file it has not read, and tells the gap."""
    ring = Ring(tmp_path, 2)
    ring.rotate_to(0)
    ring.write(0, HEADER + record(1)[:10])  # tcpdump's first flush, mid-record
    f = ring.follower()
    assert take(f, 24) == HEADER
    assert next(f) == b""  # it read those 10 bytes: not a whole record yet
    ring.rotate_to(1)
    ring.write(1, HEADER + record(2))
    ring.rotate_to(0)  # the ring wrapped: file 0 is new, shorter than what was read
    ring.write(0, HEADER)
    ring.running = False
    got = HEADER + b"".join(f)
    assert [n for n in numbers(got) if not isinstance(n, str)] == [2]
    assert [(g.files, g.seconds) for g in f.gaps] == [(1, 0.0)]
