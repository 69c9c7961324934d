"""Tail repair: a pcap file cut after its last whole record.

tcpdump ignores write errors, and a SIGKILL leaves its last stdio buffer half-written: the file
then ends inside a record, which tshark and capinfos report as "cut short". The agent repairs
the newest ring file of any capture whose tcpdump did not end by podcap's SIGINT.
"""

from __future__ import annotations

import os
from pathlib import Path

from podcap.pcap.format import GLOBAL_HEADER, MAGIC, file_whole_end


def repair_tail(path: Path, chunk: int = 1 << 20) -> int:
    """Cut a pcap file after its last whole record; return the bytes cut. Truncating frees
    space and needs none. Records are walked in ``chunk``-byte reads (1 MiB)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        head = os.pread(fd, GLOBAL_HEADER, 0)
        size = os.fstat(fd).st_size
        if len(head) < GLOBAL_HEADER or head[:4] not in MAGIC:
            return 0  # not a pcap we know: left alone
        good = file_whole_end(fd, MAGIC[head[:4]][0], chunk)
        if good < size:
            os.ftruncate(fd, good)
        return size - good
    except OSError:
        return 0
    finally:
        os.close(fd)
