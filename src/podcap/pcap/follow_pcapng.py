"""The pcapng form of one capture's stream (downloaded or followed): one section, one interface,
names for its addresses, each packet's direction, a comment where packets were lost.

A classic pcap cannot say "packets are missing here"; pcapng can (``opt_comment`` on a packet,
shown by Wireshark as a packet comment and found with ``frame.comment``). The agent marks a
gap in its pcap stream with a marker record (``gaps.py``); here that record becomes
the comment of the next real packet. Names come from ``names.Namer`` (NRBs before the packets
that need them) and a LINUX_SLL2 packet's direction goes into its EPB flags, as in a group's
merged file (controller/group_pcapng.py). The conversion runs where the HTTP answer is made, so the
agent and both transports only ever carry pcap.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

from podcap.pcap import pcapng
from podcap.pcap.format import (
    DEFAULT_SNAPLEN,
    GLOBAL_HEADER,
    LINKTYPE_LINUX_SLL2,
    parse_header,
    take,
)
from podcap.pcap.gaps import gap_text
from podcap.pcap.names import Namer


def as_pcapng(chunks: Iterable[bytes], name: str, description: str = "",
              comment: str = "", interface_notes: Iterable[str] = (),
              namer: Namer | None = None) -> Iterator[bytes]:
    """Re-frame a classic pcap byte stream as pcapng, record by record (memory: one chunk).
    An empty chunk in (a follower with nothing new) is passed on as an empty chunk out, so the
    caller can give its thread back while the capture is quiet."""
    from podcap import __version__

    source = iter(chunks)
    buf = bytearray()
    for chunk in source:
        buf += chunk
        if len(buf) >= GLOBAL_HEADER:
            break
        if not chunk:
            yield b""
    header = parse_header(bytes(buf[:GLOBAL_HEADER]))
    del buf[:GLOBAL_HEADER]
    yield pcapng.section_header([comment] if comment else [], userappl=f"podcap {__version__}")
    yield pcapng.interface(header.linktype if header else LINKTYPE_LINUX_SLL2,
                           header.snaplen if header else DEFAULT_SNAPLEN, name=name,
                           description=description, comments=interface_notes)
    if header is None:
        return  # the capture ended before writing any file: an empty section
    sll2 = header.linktype == LINKTYPE_LINUX_SLL2
    namer = namer if sll2 else None
    notes: list[str] = []
    for chunk in itertools.chain([b""], source):
        buf += chunk
        out: list[bytes] = []
        for record in take(buf, header):
            text = gap_text(record.data)
            if text is not None:
                notes.append(text)
                continue
            if namer is not None:
                out.append(namer.before(record.ts_ns, record.data))
            out.append(pcapng.packet(0, record.ts_ns, record.data, record.orig_len,
                                     flags=pcapng.sll2_flags(record.data) if sll2 else None,
                                     comments=notes))
            notes = []
        yield b"".join(out)
