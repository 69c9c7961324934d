"""One ring file as a reader (a follower, a running capture's download) reads it while tcpdump
may rewrite it under the reader.

Once the ring wraps, tcpdump truncates a file of the previous round and writes it again from
the start. A reader holding it open notices by two signs, checked after each read (a chunk read
before the truncation is still good): the file shrank below the reader's position, or its first
record header is not the one it had when opened. Both mean the bytes that follow belong to a
newer round and would not line up with the records already sent. A follower reads at a low
priority (``low_priority``), so at saturation tcpdump gets the CPU first.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from podcap import limits
from podcap.pcap.format import GLOBAL_HEADER, RECORD_HEADER, file_whole_end


@dataclass
class RingFile:
    """The ring file being read: an open fd, the read position, and the bytes of its first
    record header, which tell whether tcpdump rewrote it since."""

    path: Path
    fd: int
    pos: int = GLOBAL_HEADER
    first: bytes | None = None
    size_seen: int = 0

    @classmethod
    def open(cls, path: Path) -> RingFile | None:
        """None when the file is gone (a rotation or a delete since it was listed)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        return cls(path, fd, first=first_record(fd))

    def read(self, chunk: int) -> tuple[bytes, bool]:
        """New bytes from the position, and whether tcpdump overwrote the file."""
        try:
            data = os.pread(self.fd, chunk, self.pos)
            size = os.fstat(self.fd).st_size
            first = first_record(self.fd)
        except OSError:
            return b"", True
        if self.first is None:
            self.first = first
        rewritten = self.first is not None and first != self.first
        if rewritten or (size < self.pos and self.pos > GLOBAL_HEADER):
            return b"", True
        self.size_seen = max(self.size_seen, size)
        self.pos += len(data)
        return data, False

    def skip_to_end(self, endian: str) -> None:
        """Start reading after the last whole record now in the file (a from-now follow)."""
        self.pos = file_whole_end(self.fd, endian)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def first_record(fd: int) -> bytes | None:
    """The first record header's bytes, None while the file has none."""
    head = os.pread(fd, GLOBAL_HEADER + RECORD_HEADER, 0)
    return head[GLOBAL_HEADER:] if len(head) == GLOBAL_HEADER + RECORD_HEADER else None


@contextmanager
def low_priority() -> Iterator[None]:
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
