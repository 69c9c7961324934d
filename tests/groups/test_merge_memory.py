"""The merge's memory does not grow with the captures: three synthetic members (generated
lazily, 1 MiB chunks) merge into ~40 MB and then ~120 MB of pcapng with the same peak of
Python allocations (one output chunk of 4 MiB and a chunk per member); the output is in
timestamp order and holds every record."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Iterator

from podcap.controller.group_pcapng import Section, Source, merged
from podcap.pcap import format
from podcap.streams import PcapStream

PAYLOAD = 1_300


def member_pcap(offset_ns: int, step_us: int, records: int) -> Iterator[bytes]:
    """A LINUX_SLL2 pcap of ``records`` packets, yielded in ~1 MiB chunks."""
    yield format.global_header()
    chunk: list[bytes] = []
    size = 0
    payload = b"\x00" * PAYLOAD
    for i in range(records):
        us = offset_ns // 1000 + i * step_us
        chunk.append(format.record(us // 1_000_000, us % 1_000_000, payload))
        size += PAYLOAD + 16
        if size >= 1 << 20:
            yield b"".join(chunk)
            chunk, size = [], 0
    if chunk:
        yield b"".join(chunk)


def merge_once(records: int) -> tuple[int, int, bool, int]:
    """(bytes out, packets, in order, peak traced bytes)."""
    opened = []
    for n, (offset, step) in enumerate([(0, 100), (37_000, 70), (5_000, 130)]):
        source = Source(f"c{n}", f"ns/pod{n}/c", "", (), initial=True)
        opened.append((source, PcapStream(member_pcap(1_700_000_000 * 10**9 + offset, step,
                                                      records), None)))
    tracemalloc.start()
    total = count = 0
    last = -1
    ordered = True
    for block in merged(Section(["selector: test"], 262144), opened):
        total += len(block)
        pos = 0
        while pos < len(block):  # walk the EPBs of this chunk: timestamps must not go back
            kind, length = struct.unpack_from("<II", block, pos)
            if kind == 6:
                hi, lo = struct.unpack_from("<II", block, pos + 12)
                ts = (hi << 32) | lo
                ordered = ordered and ts >= last
                last = ts
                count += 1
            pos += length
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return total, count, ordered, peak


def test_merge_memory_is_flat_and_order_is_kept() -> None:
    small = merge_once(10_000)
    large = merge_once(30_000)
    assert small[1:3] == (30_000, True) and large[1:3] == (90_000, True)
    assert large[0] > 110_000_000
    assert large[3] < small[3] * 1.25 + 2_000_000, (small[3], large[3])
    assert large[3] < 24_000_000
    print(f"merged {small[0] / 1e6:.0f} MB: peak {small[3] / 1e6:.1f} MB; "
          f"{large[0] / 1e6:.0f} MB: peak {large[3] / 1e6:.1f} MB")
