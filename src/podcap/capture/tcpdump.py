"""tcpdump's fixed names (binary, ring file prefix, link type), and the pcap format parts
that are moving to ``podcap.pcap`` (the magic table, the empty file, the tail repair).

What tcpdump is told is capture/command.py, its start capture/runner.py, its log
capture/tcpdump_log.py, the signals it gets capture/signals.py, filter checks
capture/filters.py.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

TCPDUMP = "/usr/bin/tcpdump"
NSENTER = "/usr/bin/nsenter"
LINKTYPE_LINUX_SLL2 = 276  # what `-i any` writes on current tcpdump
RING_PREFIX = "capture.pcap"  # tcpdump appends the ring index: capture.pcap0, capture.pcap1...

_PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
               b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}


def write_empty_pcap(path: Path, linktype: int = LINKTYPE_LINUX_SLL2) -> Path:
    """A header-only pcap: lets ``tcpdump -d -r`` compile filters for the capture link type
    without opening any interface."""
    if not path.exists():
        path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
    return path


def repair_tail(path: Path, chunk: int = 1 << 20) -> int:
    """Cut a pcap file after its last whole record; return the bytes cut.

    tcpdump ignores write errors, and a SIGKILL leaves its last stdio buffer half-written: the
    file then ends inside a record, which tshark and capinfos report as "cut short".
    Truncating frees space and needs none. Headers are parsed from 1 MiB reads."""
    try:
        with open(path, "r+b") as fh:
            head = fh.read(24)
            size = fh.seek(0, os.SEEK_END)
            if len(head) < 24 or head[:4] not in _PCAP_MAGIC:
                return 0  # not a pcap we know: left alone
            length_of = struct.Struct(_PCAP_MAGIC[head[:4]] + "I").unpack_from
            good = 24  # end of the last whole record found
            fh.seek(good)
            data = b""
            base = good  # file offset of data[0]
            while block := fh.read(chunk):
                data += block
                at = good - base
                while at + 16 <= len(data):
                    end = at + 16 + length_of(data, at + 8)[0]
                    if end > len(data):
                        break
                    at = end
                good = base + at
                data, base = data[at:], good
            if good < size:
                fh.truncate(good)
            return size - good
    except OSError:
        return 0
