"""RingFollower against a ring written by hand the way tcpdump writes it (buffered, rotating,
truncating on wrap): fast and deterministic, no container or tcpdump."""

from __future__ import annotations

import struct
import time
from pathlib import Path

from podcap.capture.follow import RingFollower, gap_text
from podcap.capture.follow_pcapng import as_pcapng
from tests.support import read_pcap

HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 276)


def record(n: int, size: int = 60, ts: float | None = None) -> bytes:
    ts = 1_700_000_000 + n if ts is None else ts
    data = n.to_bytes(4, "big") * (size // 4)
    return struct.pack("<IIII", int(ts), int((ts % 1) * 1e6), len(data), len(data)) + data


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
