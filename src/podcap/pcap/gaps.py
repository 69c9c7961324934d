"""The in-stream notice of a follower's gap: files the ring overwrote before they were read.

pcap has no place for a note, so the notice is a record of its own (``gap_record``): a
LINUX_SLL2 frame of IEEE's "local experimental" EtherType 0x88B5 on interface index 0xFFFFFFFF
and ARPHRD_VOID, whose payload is the text. Wireshark shows it as one frame of that EtherType
with the text in its bytes; real traffic never has that interface index. The pcapng form of a
follow stream turns it into a comment on the next packet (``follow_pcapng.py``), and a group
download does the same per member (``controller/group_pcapng.py``), both through ``gap_text``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from podcap.pcap.format import record

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
    sec = int(ts)
    frac = round((ts - sec) * (1e9 if nanos else 1e6))
    return record(sec, frac, _GAP_SLL2 + gap.text().encode(), endian=order)


def gap_text(data: bytes) -> str | None:
    """The notice carried by a gap marker packet, or None for any other packet."""
    if data[:len(_GAP_SLL2)] == _GAP_SLL2 and data[len(_GAP_SLL2):].startswith(GAP_PREFIX):
        return data[len(_GAP_SLL2):].decode(errors="replace")
    return None
