"""The pcapng form of a follow stream: one section, one interface, a comment where packets were
lost.

A classic pcap cannot say "packets are missing here"; pcapng can (``opt_comment`` on a packet,
shown by Wireshark as a packet comment and found with ``frame.comment``). The agent marks a
gap in its pcap stream with a marker record (``pcap/follow.py``); here that record becomes
the comment of the next real packet. The conversion runs where the HTTP answer is made, so the
agent and both transports only ever carry pcap.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Iterator

from podcap.capture.tcpdump import LINKTYPE_LINUX_SLL2
from podcap.pcap import pcapng
from podcap.pcap.follow import gap_text


def as_pcapng(chunks: Iterable[bytes], name: str, description: str = "",
              comment: str = "", interface_notes: Iterable[str] = ()) -> Iterator[bytes]:
    """Re-frame a classic pcap byte stream as pcapng, record by record (memory: one chunk).
    An empty chunk in (a follower with nothing new) is passed on as an empty chunk out, so the
    caller can give its thread back while the capture is quiet."""
    from podcap import __version__

    source = iter(chunks)
    buf = bytearray()
    for chunk in source:
        buf += chunk
        if len(buf) >= 24:
            break
        if not chunk:
            yield b""
    header = _header(bytes(buf[:24]))
    del buf[:24]
    yield pcapng.section_header([comment] if comment else [], userappl=f"podcap {__version__}")
    yield pcapng.interface(header.linktype if header else LINKTYPE_LINUX_SLL2,
                           header.snaplen if header else 262144, name=name,
                           description=description, comments=interface_notes)
    if header is None:
        return  # the capture ended before writing any file: an empty section
    record = struct.Struct(header.endian + "IIII")
    scale = 1 if header.ns else 1000
    notes: list[str] = []
    for chunk in itertools.chain([b""], source):
        buf += chunk
        out: list[bytes] = []
        at = 0
        while at + 16 <= len(buf):
            sec, frac, caplen, orig = record.unpack_from(buf, at)
            if at + 16 + caplen > len(buf):
                break
            data = bytes(buf[at + 16:at + 16 + caplen])
            at += 16 + caplen
            text = gap_text(data)
            if text is not None:
                notes.append(text)
                continue
            out.append(packet(pcapng.Record(sec * 1_000_000_000 + frac * scale, data, orig),
                              notes))
            notes = []
        del buf[:at]
        yield b"".join(out)


def _header(head: bytes) -> pcapng.PcapHeader | None:
    for endian in ("<", ">"):
        if len(head) == 24 and struct.unpack_from(endian + "I", head)[0] in (0xA1B2C3D4,
                                                                             0xA1B23C4D):
            magic, _, _, _, _, snaplen, linktype = struct.unpack(endian + "IHHiIII", head)
            return pcapng.PcapHeader(linktype & 0xFFFF, snaplen, magic == 0xA1B23C4D, endian)
    return None


def packet(record: pcapng.Record, comments: list[str]) -> bytes:
    """An Enhanced Packet Block on interface 0, with ``comments`` as ``opt_comment``s."""
    data = record.data
    body = struct.pack("<IIIII", 0, record.ts_ns >> 32, record.ts_ns & 0xFFFFFFFF, len(data),
                       record.orig_len)
    body += data + b"\x00" * (-len(data) % 4)
    body += pcapng.options([(pcapng.OPT_COMMENT, c.encode()) for c in comments])
    length = len(body) + 12
    return struct.pack("<II", pcapng.EPB, length) + body + struct.pack("<I", length)
