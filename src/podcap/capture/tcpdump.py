"""tcpdump's fixed names (binary, ring file prefix, link type) and the empty pcap its filter
checks read.

What tcpdump is told is capture/command.py, its start capture/runner.py, its log
capture/tcpdump_log.py, the signals it gets capture/signals.py, filter checks
capture/filters.py; the pcap format itself is podcap.pcap.
"""

from __future__ import annotations

from pathlib import Path

from podcap.pcap.format import LINKTYPE_LINUX_SLL2, global_header

TCPDUMP = "/usr/bin/tcpdump"
RING_PREFIX = "capture.pcap"  # tcpdump appends the ring index: capture.pcap0, capture.pcap1...

__all__ = ["LINKTYPE_LINUX_SLL2", "RING_PREFIX", "TCPDUMP", "write_empty_pcap"]


def write_empty_pcap(path: Path, linktype: int = LINKTYPE_LINUX_SLL2) -> Path:
    """A header-only pcap: lets ``tcpdump -d -r`` compile filters for the capture link type
    without opening any interface."""
    if not path.exists():
        path.write_bytes(global_header(linktype))
    return path
