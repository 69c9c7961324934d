"""A capture's ring of pcap files: put back in capture order and streamed as one pcap.

tcpdump ``-C/-W`` reuses ``capture.pcap0..N-1`` round-robin, so names say nothing about order
once the ring wraps; each file's first record timestamp does. The merged stream keeps the first
file's 24-byte global header and drops the others', in constant memory.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from podcap import limits
from podcap.streams import PcapStream

GLOBAL_HEADER = 24
RECORD_HEADER = 16
_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}


def ring_files(files_dir: Path, prefix: str) -> list[Path]:
    """The ring's files, oldest first. Files without a record yet (just opened by a rotation)
    are the newest. A ring of one file (``-W 1``) is the prefix itself: tcpdump adds no
    number then."""
    paths = [p for p in files_dir.glob(prefix + "*")
             if p.name == prefix or p.name[len(prefix):].isdigit()]
    return sorted(paths, key=_order_key)


def _order_key(path: Path) -> tuple[int, float, int]:
    first = first_timestamp(path)
    index = int(_suffix(path))
    return (1, 0.0, index) if first is None else (0, first, index)


def _suffix(path: Path) -> str:
    digits = ""
    for ch in reversed(path.name):
        if not ch.isdigit():
            break
        digits = ch + digits
    return digits or "0"


def first_timestamp(path: Path) -> float | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(GLOBAL_HEADER + RECORD_HEADER)
    except OSError:
        return None
    if len(head) < GLOBAL_HEADER + RECORD_HEADER or head[:4] not in _MAGIC:
        return None
    order, unit = _MAGIC[head[:4]]
    sec, frac = struct.unpack(order + "II", head[GLOBAL_HEADER:GLOBAL_HEADER + 8])
    return sec + frac * unit


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
        return PcapStream(_skip(_live(chosen, chunk), offset), None)
    return PcapStream(_stream_from(chosen, offset, chunk), max(0, size - offset))


def _select(paths: list[Path], limit: int | None, check_magic: bool = False,
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
        if length < GLOBAL_HEADER or (check_magic and _magic(path) not in _MAGIC):
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


def _live(files: list[tuple[Path, int]], chunk: int) -> Iterator[bytes]:
    """Files tcpdump may still write: each cut at its last whole record."""
    header_sent = False
    for path, _ in files:
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below, generator-safe
        except OSError:
            continue  # removed by a rotation or a delete since listing: skip, never fail
        with fh:
            header = fh.read(GLOBAL_HEADER)
            if len(header) < GLOBAL_HEADER or header[:4] not in _MAGIC:
                continue
            if not header_sent:
                yield header
                header_sent = True
            yield from _records(fh, _MAGIC[header[:4]][0], chunk)


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


def _records(fh: BinaryIO, order: str, chunk: int) -> Iterator[bytes]:
    """Yield whole records only: a record tcpdump is half-way through writing is left out."""
    length_of = struct.Struct(order + "I").unpack_from
    pending = b""
    while block := fh.read(chunk):
        data = pending + block
        end = 0
        while end + RECORD_HEADER <= len(data):
            caplen = length_of(data, end + 8)[0]
            if end + RECORD_HEADER + caplen > len(data):
                break
            end += RECORD_HEADER + caplen
        if end:
            yield data[:end]
        pending = data[end:]
