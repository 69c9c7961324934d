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
  marker record (``gaps.py``) that a pcap reader shows as a packet and the pcapng form of the
  follow stream turns into a comment on the next packet (``follow_pcapng.py``);
- ends once the capture has ended and every file is drained.

Reading never blocks tcpdump: the follower only reads files, so a slow reader falls behind
(and may get a gap) but never slows the capture. Reading one file and noticing that it was
rewritten is ``ring_file.py``'s; this module chooses the files and frames the stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

from podcap import limits
from podcap.pcap import ring
from podcap.pcap.format import (
    RECORD_HEADER,
    last_record,
    parse_header,
    record_header,
    walk,
)
from podcap.pcap.gaps import Gap, gap_record
from podcap.pcap.ring_file import RingFile, low_priority

log = logging.getLogger("podcap.follow")


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
        self._gen = self._run()

    def __iter__(self) -> RingFollower:
        return self

    def __next__(self) -> bytes:
        self._started = True
        with low_priority():
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
        parsed = parse_header(header)
        assert parsed is not None  # _wait_header returns pcap headers only
        self._order, self._nanos = parsed.endian, parsed.ns
        current = self._first_file()  # before the header goes: "now" is the request's time
        pending = b""
        final = False  # the capture has ended: one more pass over the files, then the end
        try:
            yield header
            while not self._stop.is_set():
                if current is None:
                    current, pending = self._oldest_unread(), b""
                if current is not None:
                    data, overwritten = current.read(self.chunk)
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
                        data, overwritten = current.read(self.chunk)
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
            head = ring.first_header(ring.ring_files(self.files_dir, self.prefix))
            if head is not None:
                return head
            if not self.running():
                return None
            self._stop.wait(self.poll)
            yield b""
        return None

    # ---- choosing files -----------------------------------------------------------------

    def _first_file(self) -> RingFile | None:
        paths = ring.ring_files(self.files_dir, self.prefix)
        if not paths:
            return None
        if not self.from_now:
            return RingFile.open(paths[0])
        newest = RingFile.open(paths[-1])
        if newest is not None:
            newest.skip_to_end(self._order)
        return newest

    def _newer_than(self, current: RingFile) -> Path | None:
        """The file tcpdump went on to after ``current`` (then ``current`` is complete)."""
        if self.file_number == 1:
            return None  # one file: a rotation truncates it, seen as an overwrite
        mine = self._ts(current.first)
        if mine is None:
            return None  # tcpdump rotates only past the file size: it still writes this one
        newer = ring.begun_after(self.files_dir, self.prefix, mine, exclude=current.path)
        return newer[0] if newer else None

    def _advance(self, current: RingFile, nxt: Path) -> RingFile | None:
        """Open ``nxt``; when it is not the next index, the files between were overwritten."""
        self._left = self._ts(current.first)
        skipped = ring.skipped(current.path, nxt, self.file_number)
        opened = RingFile.open(nxt)
        if skipped:
            self._gap(skipped, skipped * self.file_bytes, opened)
        return opened

    def _after_overwrite(self, current: RingFile) -> RingFile | None:
        """``current`` was rewritten under us: jump to the oldest file still unread."""
        lost = max(current.size_seen, self.file_bytes) - current.pos
        current.close()
        if self.file_number == 1:
            reopened = RingFile.open(current.path)
            if current.size_seen > current.pos:
                self._gap(1, current.size_seen - current.pos, reopened)
            return reopened
        self._left = self._ts(current.first) or self._left
        candidates = ring.begun_after(self.files_dir, self.prefix, self._left)
        if not candidates:
            return None
        nxt = candidates[0]
        skipped = ring.skipped(current.path, nxt, self.file_number)
        opened = RingFile.open(nxt)
        self._gap(1 + skipped, max(lost, 0) + skipped * self.file_bytes, opened)
        return opened

    def _oldest_unread(self) -> RingFile | None:
        candidates = ring.begun_after(self.files_dir, self.prefix, self._left)
        return RingFile.open(candidates[0]) if candidates else None

    # ---- reading ------------------------------------------------------------------------

    def _whole(self, data: bytes) -> tuple[bytes, bytes]:
        """Whole records of ``data`` (sent) and the rest (kept for the next read). With
        from_now, records captured before the request are dropped (tcpdump's buffer may
        still have held them when the follow began)."""
        unit = 1e-9 if self._nanos else 1e-6
        dropped_to = 0  # with from_now: records before this offset are dropped
        if self.from_now:
            for at, sec, frac, caplen, _ in walk(data, self._order):
                if sec + frac * unit >= self.since:
                    self.from_now = False  # records come in time order: the rest are newer
                    break
                dropped_to = at + RECORD_HEADER + caplen
        last = last_record(data, self._order, dropped_to)
        if last is None:
            return b"", data[dropped_to:]
        at, sec, frac, caplen, _ = last
        self._last_ts = float(sec + frac * unit)
        end = at + RECORD_HEADER + caplen
        return data[dropped_to:end], data[end:]

    # ---- gaps ---------------------------------------------------------------------------

    def _gap(self, files: int, nbytes: int, opened: RingFile | None) -> None:
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
        """The time of a file's first record, from its header's bytes."""
        if first is None:
            return None
        sec, frac, _, _ = record_header(first, self._order)
        return float(sec + frac * (1e-9 if self._nanos else 1e-6))
