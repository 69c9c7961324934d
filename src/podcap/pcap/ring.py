"""A capture's ring of pcap files: put back in capture order and streamed as one pcap.

tcpdump ``-C/-W`` reuses ``capture.pcap0..N-1`` round-robin, so names say nothing about order
once the ring wraps; each file's first record timestamp does. The merged stream keeps the first
file's 24-byte global header and drops the others', in constant memory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from podcap import limits
from podcap.pcap.format import GLOBAL_HEADER, MAGIC, RECORD_HEADER, record_header, whole_end
from podcap.pcap.ring_file import RingFile
from podcap.streams import PcapStream


def ring_files(files_dir: Path, prefix: str) -> list[Path]:
    """The ring's files, oldest first. Files without a record yet (just opened by a rotation)
    are the newest. A ring of one file (``-W 1``) is the prefix itself: tcpdump adds no
    number then."""
    return [path for path, _ in ring_order(files_dir, prefix)]


def ring_order(files_dir: Path, prefix: str) -> list[tuple[Path, float | None]]:
    """``ring_files`` with each file's first record timestamp (None: no record yet), read
    once: what orders the ring also tells a follower which files are newer."""
    found = [(p, first_timestamp(p)) for p in files_dir.glob(prefix + "*")
             if p.name == prefix or p.name[len(prefix):].isdecimal()]
    return sorted(found, key=_order_key)


def begun_after(files_dir: Path, prefix: str, after: float | None,
                exclude: Path | None = None) -> list[Path]:
    """Ring files begun after the record stamped ``after`` (the first record of the file a
    follower read last; None: every file), oldest first; a file without a record yet (just
    opened by a rotation) comes last. Files are told apart by their first records, never by
    the last packet sent: tcpdump stamps packets on several CPUs, so a file's first packet can
    be a few microseconds older than the previous file's last one."""
    return [path for path, ts in ring_order(files_dir, prefix)
            if path != exclude and (ts is None or after is None or ts > after)]


def skipped(current: Path, nxt: Path, file_number: int) -> int:
    """How many ring files lie between ``current`` and ``nxt`` in tcpdump's round-robin: files
    a reader going from one to the other never saw (0: ``nxt`` is the next index)."""
    return (index(nxt) - index(current) - 1) % file_number


def index(path: Path) -> int:
    """A ring file's index: the digits tcpdump appended (0 for a one-file ring's bare name)."""
    return int(_suffix(path))


def _order_key(entry: tuple[Path, float | None]) -> tuple[int, float, int]:
    path, first = entry
    number = index(path)
    return (1, 0.0, number) if first is None else (0, first, number)


def _suffix(path: Path) -> str:
    digits = ""
    for ch in reversed(path.name):
        if not ch.isdecimal():
            break
        digits = ch + digits
    return digits or "0"


def first_timestamp(path: Path) -> float | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(GLOBAL_HEADER + RECORD_HEADER)
    except OSError:
        return None
    if len(head) < GLOBAL_HEADER + RECORD_HEADER or head[:4] not in MAGIC:
        return None
    order, unit = MAGIC[head[:4]]
    sec, frac, _, _ = record_header(head, order, GLOBAL_HEADER)
    return sec + frac * unit


def merged_size(file_bytes: int, files: int) -> int:
    """The size of the merged pcap of ``files`` files holding ``file_bytes`` bytes: every file
    but the first loses its global header (what ``merged`` announces, from a capture's record)."""
    return max(0, file_bytes - GLOBAL_HEADER * max(0, files - 1))


def total_bytes(paths: list[Path]) -> int:
    size = 0
    for path in paths:
        try:
            size += path.stat().st_size
        except OSError:
            pass
    return size


def merged(paths: list[Path], *, live: bool = False, limit: int | None = None,
           offset: int = 0, chunk: int = limits.DOWNLOAD_CHUNK_BYTES) -> PcapStream:
    """One pcap from ``paths`` (already in capture order).

    ``limit`` follows NeuVector: whole files are sent until the byte count crosses it (the
    crossing file is sent whole). ``live`` means tcpdump may still be writing, so every file is
    cut at its last complete record and the stream stays a valid pcap. ``offset`` skips that
    many bytes of the merged stream (an HTTP Range resume): on stopped files by seeking, so a
    resume at 1 GB reads nothing before it; the size announced is what is left after it.
    """
    chosen, size = _select(paths, limit, check_magic=not live)
    if live:
        return PcapStream(_skip(_live(chosen, chunk, first_header(p for p, _ in chosen)), offset),
                          None)
    return PcapStream(_stream_from(chosen, offset, chunk), max(0, size - offset))


def _select(paths: list[Path], limit: int | None, check_magic: bool,
            ) -> tuple[list[tuple[Path, int]], int]:
    """The files to send with their sizes now, and the merged size. ``check_magic`` leaves out
    files that are not pcaps, as the stream does, so the size announced is exact."""
    chosen: list[tuple[Path, int]] = []
    size = 0
    for path in paths:
        if limit is not None and size >= limit:
            break
        try:
            length = path.stat().st_size
        except OSError:
            continue
        if length < GLOBAL_HEADER or (check_magic and _magic(path) not in MAGIC):
            continue
        chosen.append((path, length))
        size += length if len(chosen) == 1 else length - GLOBAL_HEADER
    return chosen, size


def _magic(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(4)
    except OSError:
        return b""


def _live(files: list[tuple[Path, int]], chunk: int, listed: bytes | None) -> Iterator[bytes]:
    """Files tcpdump may still write: each cut at its last whole record. A fast ring may
    truncate every listed file between the listing and the reading; then the header read at
    listing time (``listed``) still makes the body a pcap (with no records), never empty."""
    header: bytes | None = None
    for path, _ in files:
        opened = RingFile.open(path)
        if opened is None:
            continue  # removed by a rotation or a delete since listing: skip, never fail
        try:
            head = os.pread(opened.fd, GLOBAL_HEADER, 0)
            if len(head) < GLOBAL_HEADER or head[:4] not in MAGIC:
                continue
            if header is None:
                header = head
                yield head
            yield from _records(opened, MAGIC[head[:4]][0], chunk)
        finally:
            opened.close()
    if header is None and files:  # files were listed: each had a header a moment ago
        header = listed or _header_soon([path for path, _ in files])
        if header is not None:
            yield header


def _header_soon(paths: list[Path]) -> bytes | None:
    """A ring so fast that every file it listed was truncated under the reader, and at the
    listing too: a file tcpdump has just opened is empty until its first flush, which comes
    with its first packet, a moment later (a full suite's run once got an empty download)."""
    for _ in range(limits.RING_HEADER_TRIES):
        head = first_header(paths)
        if head is not None:
            return head
        time.sleep(limits.RING_HEADER_WAIT_S)
    return None


def first_header(paths: Iterable[Path]) -> bytes | None:
    """The global header of the first of ``paths`` that has one (None: none has yet)."""
    for path in paths:
        try:
            with open(path, "rb") as fh:
                head = fh.read(GLOBAL_HEADER)
        except OSError:
            continue
        if len(head) == GLOBAL_HEADER and head[:4] in MAGIC:
            return head
    return None


def _stream_from(files: list[tuple[Path, int]], offset: int, chunk: int) -> Iterator[bytes]:
    """The stopped files as one pcap from byte ``offset`` on: the first file whole, the others
    without their global header. Files before the offset are never opened."""
    for index, (path, length) in enumerate(files):
        start = 0 if index == 0 else GLOBAL_HEADER  # where this file's share begins
        share = length - start
        if offset >= share:
            offset -= share
            continue
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below, generator-safe
        except OSError:
            offset = 0
            continue  # deleted since listing: skip, never fail (the reader sees a short body)
        with fh:
            fh.seek(start + offset)
            yield from _raw(fh, share - offset, chunk)
        offset = 0


def _skip(chunks: Iterator[bytes], offset: int) -> Iterator[bytes]:
    """``chunks`` without their first ``offset`` bytes (a live stream: no size to seek in)."""
    for block in chunks:
        if offset >= len(block):
            offset -= len(block)
            continue
        yield block[offset:] if offset else block
        offset = 0


def _raw(fh: BinaryIO, length: int, chunk: int) -> Iterator[bytes]:
    """Exactly ``length`` bytes (the size announced), even if the file grows meanwhile."""
    while length > 0 and (block := fh.read(min(chunk, length))):
        length -= len(block)
        yield block


def _records(opened: RingFile, order: str, chunk: int) -> Iterator[bytes]:
    """Whole records only: a record tcpdump is half-way through writing is left out. Once
    the ring wraps, tcpdump truncates and rewrites a file in place; a chunk read after that
    belongs to a newer round and would not line up with the records before it, so the file
    ends at the first sign of it (``RingFile.read``: its first record changed, or it shrank
    below our place)."""
    pending = b""
    while True:
        block, overwritten = opened.read(chunk)
        if overwritten or not block:
            return
        data = pending + block
        end = whole_end(data, order)
        if end:
            yield data[:end]
        pending = data[end:]
