"""Follow a running capture: tail its ring of pcap files as tcpdump writes them.

tcpdump (``-C size -W n``) writes ``capture.pcap0`` until it passes the size, closes it, and
opens the next index, truncating a file of the previous round once the ring wraps. A follower
therefore:

- sends one 24-byte global header, then whole records only (tcpdump writes through a stdio
  buffer, so a file may end in the middle of a record until the next flush);
- moves on to the next file only once tcpdump has opened a newer one (then the old one is closed
  and complete) and it has read the old one to its end;
- notices when the ring overwrote what it had not read yet: the file it reads was truncated
  (size below its position) or rewritten (its first record changed), or the next file it
  finds is not the next index. It then jumps to the oldest file still unread and reports a
  ``Gap`` -- through ``on_gap`` (the agent logs it and counts it) and in the stream itself, as a
  marker record (``gap_record``) that a pcap reader shows as a packet and the pcapng form of the
  follow stream turns into a comment on the next packet (``pcap/follow_pcapng.py``);
- ends once the capture has ended and every file is drained.

Reading never blocks tcpdump: the follower only reads files, so a slow reader falls behind
(and may get a gap) but never slows the capture.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from podcap import limits
from podcap.pcap import ring

log = logging.getLogger("podcap.follow")

HEADER = ring.GLOBAL_HEADER
RECORD = ring.RECORD_HEADER

# The gap marker: a LINUX_SLL2 frame of IEEE's "local experimental" EtherType 0x88B5 on
# interface index 0xFFFFFFFF and ARPHRD_VOID, whose payload is the notice as text. Wireshark
# shows it as one frame of that EtherType with the text in its bytes; real traffic never has
# that interface index.
GAP_ETHERTYPE = 0x88B5
_GAP_SLL2 = struct.pack(">HHIHBB8s", GAP_ETHERTYPE, 0, 0xFFFFFFFF, 0xFFFF, 0, 0, b"")
GAP_PREFIX = b"podcap: "


@dataclass(frozen=True)
class Gap:
    """What a follower missed: files the ring overwrote before they were read."""

    files: int
    bytes: int
    seconds: float  # time between the last packet sent and the first one after the gap
    at: float  # wall-clock time it was noticed

    def text(self) -> str:
        noun = "file" if self.files == 1 else "files"
        return (f"podcap: {self.files} {noun} (≈{self.bytes / 1e6:.1f} MB, "
                f"{self.seconds:.1f} s of packets) overwritten before they were read")

    def as_dict(self) -> dict[str, object]:
        return {"files": self.files, "bytes": self.bytes, "seconds": round(self.seconds, 3),
                "at": self.at, "text": self.text()}


def gap_record(gap: Gap, ts: float, order: str, nanos: bool) -> bytes:
    """One pcap record holding the notice (see the module docstring)."""
    data = _GAP_SLL2 + gap.text().encode()
    sec = int(ts)
    frac = round((ts - sec) * (1e9 if nanos else 1e6))
    return struct.pack(order + "IIII", sec, frac, len(data), len(data)) + data


def gap_text(data: bytes) -> str | None:
    """The notice carried by a gap marker packet, or None for any other packet."""
    if data[:len(_GAP_SLL2)] == _GAP_SLL2 and data[len(_GAP_SLL2):].startswith(GAP_PREFIX):
        return data[len(_GAP_SLL2):].decode(errors="replace")
    return None


@contextmanager
def _low_priority() -> Iterator[None]:
    """Run the body at nice ``FOLLOW_NICE`` (this thread only): at saturation the reader and
    tcpdump want the same CPU, and tcpdump must win (a follower may fall behind, the capture
    may not). Restored after, since the thread belongs to a pool."""
    tid = threading.get_native_id()
    try:
        before = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, max(before, limits.FOLLOW_NICE))
    except OSError:
        yield
        return
    try:
        yield
    finally:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, before)
        except OSError:  # lowering nice needs CAP_SYS_NICE: then the thread stays low
            pass


@dataclass
class _File:
    """The ring file being read: an open fd, the read position, and the bytes of its first
    record header, which tell whether tcpdump rewrote it since."""

    path: Path
    fd: int
    pos: int = HEADER
    first: bytes | None = None
    size_seen: int = 0

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class RingFollower:
    """An iterator of pcap bytes that follows a capture's ring; ``close()`` may be called from
    any thread (the HTTP layer closes it while a worker thread waits inside ``__next__``).

    While there is nothing new it yields ``b""`` after each poll (``FOLLOW_POLL_S``): a
    consumer never waits inside it for long, so an async server can give its thread back
    between polls, and the uplink can send keepalives; plain loops are paced by the poll."""

    def __init__(self, files_dir: Path, file_number: int, file_bytes: int,
                 running: Callable[[], bool], *, from_now: bool = False,
                 on_gap: Callable[[Gap], None] | None = None,
                 on_end: Callable[[], None] | None = None,
                 prefix: str = "capture.pcap", chunk: int = limits.DOWNLOAD_CHUNK_BYTES,
                 poll: float = limits.FOLLOW_POLL_S) -> None:
        self.files_dir = files_dir
        self.prefix = prefix
        self.file_number = file_number
        self.file_bytes = file_bytes
        self.running = running
        self.from_now = from_now
        self.on_gap = on_gap
        self._on_end = on_end  # called once when the reader is done, however it ends
        self._started = False
        self.chunk = chunk
        self.poll = poll
        self.since = time.time()  # with from_now, records older than this are not sent
        self.gaps: list[Gap] = []
        self._stop = threading.Event()
        self._last_ts: float | None = None  # timestamp of the last record sent
        self._left: float | None = None  # first record of the last file left (read or lost)
        self._pending_gap: Gap | None = None  # to announce before the next record
        self._order, self._nanos = "<", False
        self._caplen = self._stamp = struct.Struct("<II").unpack_from
        self._gen = self._run()

    def __iter__(self) -> RingFollower:
        return self

    def __next__(self) -> bytes:
        self._started = True
        with _low_priority():
            try:
                return next(self._gen)
            finally:
                if self._stop.is_set():  # closed while this thread was inside: end it here
                    self._gen.close()

    def close(self) -> None:
        """Stop following. Safe from any thread: a reader suspended between chunks is closed
        here; one running in another thread sees the stop within one poll and ends there."""
        self._stop.set()
        try:
            self._gen.close()
        except ValueError:  # "generator already executing" in another thread
            return
        if not self._started:
            self._ended()

    def _ended(self) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end()

    # ---- the loop -----------------------------------------------------------------------

    def _run(self) -> Generator[bytes, None, None]:
        try:
            yield from self._follow()
        finally:
            self._ended()

    def _follow(self) -> Iterator[bytes]:
        header = yield from self._wait_header()
        if header is None:
            return
        self._order, unit = ring._MAGIC[header[:4]]
        self._nanos = unit < 1e-6
        self._caplen = struct.Struct(self._order + "I").unpack_from
        self._stamp = struct.Struct(self._order + "II").unpack_from
        current = self._first_file()  # before the header goes: "now" is the request's time
        pending = b""
        final = False  # the capture has ended: one more pass over the files, then the end
        try:
            yield header
            while not self._stop.is_set():
                if current is None:
                    current, pending = self._oldest_unread(), b""
                if current is not None:
                    data, overwritten = self._read(current)
                    if overwritten:
                        current, pending = self._after_overwrite(current), b""
                        if (marker := self._marker()) is not None:
                            yield marker
                        continue
                    if data:
                        out, pending = self._whole(pending + data)
                        if out:
                            yield out
                        continue
                    nxt = self._newer_than(current)
                    if nxt is not None:
                        # ``current`` is closed and complete once tcpdump opened a newer file:
                        # the read above may have raced its last flush, so read once more.
                        data, overwritten = self._read(current)
                        if data or overwritten:
                            current.pos -= len(data)  # read again by the next turn
                            continue
                        current.close()
                        current, pending = self._advance(current, nxt), b""
                        if (marker := self._marker()) is not None:
                            yield marker
                        continue
                if final:
                    return
                if not self.running():
                    final = True  # tcpdump exited and flushed everything
                    continue
                self._stop.wait(self.poll)
                yield b""  # idle: the caller may free its thread, or send a keepalive
        finally:
            if current is not None:
                current.close()

    def _wait_header(self) -> Generator[bytes, None, bytes | None]:
        """The global header of any ring file; None when the capture ended without one."""
        while not self._stop.is_set():
            for path in ring.ring_files(self.files_dir, self.prefix):
                try:
                    with open(path, "rb") as fh:
                        head = fh.read(HEADER)
                except OSError:
                    continue
                if len(head) == HEADER and head[:4] in ring._MAGIC:
                    return head
            if not self.running():
                return None
            self._stop.wait(self.poll)
            yield b""
        return None

    # ---- choosing files -----------------------------------------------------------------

    def _first_file(self) -> _File | None:
        paths = ring.ring_files(self.files_dir, self.prefix)
        if not paths:
            return None
        if not self.from_now:
            return self._open(paths[0])
        newest = self._open(paths[-1])
        if newest is not None:
            newest.pos = self._end_of_records(newest)
        return newest

    def _open(self, path: Path) -> _File | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        return _File(path, fd, first=self._first_record(fd))

    def _first_record(self, fd: int) -> bytes | None:
        head = os.pread(fd, HEADER + RECORD, 0)
        return head[HEADER:] if len(head) == HEADER + RECORD else None

    def _end_of_records(self, f: _File) -> int:
        """The offset after the last whole record now in the file (a from-now start)."""
        size = os.fstat(f.fd).st_size
        pos = HEADER
        while pos + RECORD <= size:
            head = os.pread(f.fd, RECORD, pos)
            if len(head) < RECORD:
                break
            end = pos + RECORD + self._caplen(head, 8)[0]
            if end > size:
                break
            pos = end
        return pos

    def _candidates(self, after: float | None, exclude: Path | None = None) -> list[Path]:
        """Ring files begun after the record stamped ``after`` (the first record of the file
        read last; None: every file), oldest first; a file without a record yet (just opened by
        a rotation) comes last. Files are told apart by their first records, never by the last
        packet sent: tcpdump stamps packets on several CPUs, so a file's first packet can be a
        few microseconds older than the previous file's last one."""
        return [path for path, ts in ring.ring_order(self.files_dir, self.prefix)
                if path != exclude and (ts is None or after is None or ts > after)]

    def _newer_than(self, current: _File) -> Path | None:
        """The file tcpdump went on to after ``current`` (then ``current`` is complete)."""
        if self.file_number == 1:
            return None  # one file: a rotation truncates it, seen as an overwrite
        mine = self._ts(current.first)
        if mine is None:
            return None  # tcpdump rotates only past the file size: it still writes this one
        newer = self._candidates(mine, exclude=current.path)
        return newer[0] if newer else None

    def _advance(self, current: _File, nxt: Path) -> _File | None:
        """Open ``nxt``; when it is not the next index, the files between were overwritten."""
        self._left = self._ts(current.first)
        skipped = (self._index(nxt) - self._index(current.path) - 1) % self.file_number
        opened = self._open(nxt)
        if skipped:
            self._gap(skipped, skipped * self.file_bytes, opened)
        return opened

    def _after_overwrite(self, current: _File) -> _File | None:
        """``current`` was rewritten under us: jump to the oldest file still unread."""
        lost = max(current.size_seen, self.file_bytes) - current.pos
        current.close()
        if self.file_number == 1:
            reopened = self._open(current.path)
            if current.size_seen > current.pos:
                self._gap(1, current.size_seen - current.pos, reopened)
            return reopened
        self._left = self._ts(current.first) or self._left
        candidates = self._candidates(self._left)
        if not candidates:
            return None
        nxt = candidates[0]
        skipped = (self._index(nxt) - self._index(current.path) - 1) % self.file_number
        opened = self._open(nxt)
        self._gap(1 + skipped, max(lost, 0) + skipped * self.file_bytes, opened)
        return opened

    def _oldest_unread(self) -> _File | None:
        candidates = self._candidates(self._left)
        return self._open(candidates[0]) if candidates else None

    def _index(self, path: Path) -> int:
        digits = path.name[len(self.prefix):]
        return int(digits) if digits.isdigit() else 0

    # ---- reading ------------------------------------------------------------------------

    def _read(self, f: _File) -> tuple[bytes, bool]:
        """New bytes of ``f`` from its position, and whether tcpdump overwrote it. The check
        runs after the read: a chunk read before a truncation is still good."""
        try:
            data = os.pread(f.fd, self.chunk, f.pos)
            size = os.fstat(f.fd).st_size
            first = self._first_record(f.fd)
        except OSError:
            return b"", True
        if f.first is None:
            f.first = first
        rewritten = f.first is not None and first != f.first
        if rewritten or (size < f.pos and f.pos > HEADER):
            return b"", True
        f.size_seen = max(f.size_seen, size)
        f.pos += len(data)
        return data, False

    def _whole(self, data: bytes) -> tuple[bytes, bytes]:
        """Whole records of ``data`` (sent) and the rest (kept for the next read). With
        from_now, records captured before the request are dropped (tcpdump's buffer may
        still have held them when the follow began)."""
        end = last = 0
        caplen = self._caplen
        while end + RECORD <= len(data):
            stop = end + RECORD + caplen(data, end + 8)[0]
            if stop > len(data):
                break
            if self.from_now and self._seconds(data, end) < self.since:
                data, stop = data[:end] + data[stop:], end  # drop it
            else:
                self.from_now = False  # records come in time order: the rest are newer
                last = end
            end = stop
        if end > 0 and not self.from_now:
            self._last_ts = self._seconds(data, last)
        return data[:end], data[end:]

    def _seconds(self, data: bytes, at: int) -> float:
        sec, frac = self._stamp(data, at)
        return float(sec + frac * (1e-9 if self._nanos else 1e-6))

    # ---- gaps ---------------------------------------------------------------------------

    def _gap(self, files: int, nbytes: int, opened: _File | None) -> None:
        first = self._ts(opened.first) if opened is not None else None
        seconds = (first - self._last_ts) if first is not None and self._last_ts else 0.0
        gap = Gap(files=files, bytes=max(nbytes, 0), seconds=max(seconds, 0.0), at=time.time())
        self.gaps.append(gap)
        self._pending_gap = gap
        if self.on_gap is not None:
            self.on_gap(gap)

    def _marker(self) -> bytes | None:
        gap = self._pending_gap
        if gap is None:
            return None
        self._pending_gap = None
        return gap_record(gap, self._last_ts or time.time(), self._order, self._nanos)

    def _ts(self, first: bytes | None) -> float | None:
        return None if first is None else self._seconds(first, 0)
