"""A small pcapng writer (draft-ietf-opsawg-pcapng); classic pcap is read by ``format.py``.

What podcap's pcapng files hold: a Section Header Block, Interface Description Blocks with
options, Name Resolution Blocks, Enhanced Packet Blocks (with the direction a LINUX_SLL2 packet
went), Interface Statistics Blocks; little-endian, every block and option padded to 32 bits.
Our own ~100 lines rather than a library: python-pcapng is unmaintained, scapy is heavy, and
dpkt's writer cannot add interfaces after the first packet (WIRESHARK.md). Each function
returns one block's bytes, so a writer is a generator and memory stays one packet.
"""

from __future__ import annotations

import ipaddress
import struct
import urllib.parse
from collections.abc import Iterable

SHB = 0x0A0D0D0A
IDB = 0x00000001
NRB = 0x00000004
ISB = 0x00000005
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_END = 0
OPT_COMMENT = 1
SHB_HARDWARE = 2
SHB_OS = 3
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
IF_OS = 12
EPB_FLAGS = 2
NRB_END = 0
NRB_IPV4 = 1
NRB_IPV6 = 2

# epb_flags bits 0-1: the direction; bits 2-4: the reception type (1 unicast, 2 multicast,
# 3 broadcast, 4 promiscuous).
INBOUND = 1
OUTBOUND = 2
# LINUX_SLL2's packet type (byte 10 of its 20-byte header, the kernel's PACKET_* values) ->
# epb_flags. PACKET_OUTGOING is what the container sent; every other type it received.
_SLL2_TYPE_FLAGS = {0: INBOUND | 1 << 2, 1: INBOUND | 3 << 2, 2: INBOUND | 2 << 2,
                    3: INBOUND | 4 << 2, 4: OUTBOUND}
SLL2_HEADER = 20
_FLAG_OPTIONS = {flags: struct.pack("<HHIHH", EPB_FLAGS, 4, flags, OPT_END, 0)
                 for flags in _SLL2_TYPE_FLAGS.values()}

TSRESOL_NS = 9  # if_tsresol value: 10^-9 s; every IDB this module writes uses it


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def options(items: Iterable[tuple[int, bytes]]) -> bytes:
    """Options as (code, value); an end-of-options marker is added when there are any. A value
    is cut at 65,535 bytes: an option's length field has 16 bits."""
    out = b"".join(struct.pack("<HH", code, len(value[:0xFFFF])) + _pad(value[:0xFFFF])
                   for code, value in items)
    return out + struct.pack("<HH", OPT_END, 0) if out else b""


def _block(kind: int, body: bytes) -> bytes:
    body = _pad(body)
    length = len(body) + 12
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def section_header(comments: Iterable[str] = (), userappl: str = "", os_name: str = "",
                   hardware: str = "") -> bytes:
    """The first block: byte order, version 1.0, unknown section length (we stream)."""
    opts: list[tuple[int, bytes]] = [(OPT_COMMENT, c.encode()) for c in comments]
    opts += [(code, text.encode()) for code, text in
             ((SHB_HARDWARE, hardware), (SHB_OS, os_name), (SHB_USERAPPL, userappl)) if text]
    return _block(SHB, struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + options(opts))


COMMENT_MAX_BYTES = 60_000  # an option's length is 16 bits; room left for the rest


def fit_comment(text: str) -> str:
    """``text`` cut to what one comment option holds, saying so when cut."""
    data = text.encode()
    if len(data) <= COMMENT_MAX_BYTES:
        return text
    return data[:COMMENT_MAX_BYTES - 20].decode(errors="ignore") + "\n…(truncated)"


def interface(linktype: int, snaplen: int, name: str = "", description: str = "",
              comments: Iterable[str] = (), os_name: str = "") -> bytes:
    """One interface; timestamps of its packets are in nanoseconds (if_tsresol = 9)."""
    opts: list[tuple[int, bytes]] = [(OPT_COMMENT, c.encode()) for c in comments]
    if name:
        opts.append((IF_NAME, name.encode()))
    if description:
        opts.append((IF_DESCRIPTION, description.encode()))
    opts.append((IF_TSRESOL, bytes([TSRESOL_NS])))
    if os_name:
        opts.append((IF_OS, os_name.encode()))
    return _block(IDB, struct.pack("<HHI", linktype, 0, snaplen) + options(opts))


def packet(interface_id: int, ts_ns: int, data: bytes, orig_len: int | None = None,
           flags: int | None = None, comments: Iterable[str] = ()) -> bytes:
    """One Enhanced Packet Block; ``flags`` bits 0-1: 1 inbound, 2 outbound."""
    if comments:
        items = [(OPT_COMMENT, c.encode()) for c in comments]
        if flags is not None:
            items.append((EPB_FLAGS, struct.pack("<I", flags)))
        opts = options(items)
    else:  # the common case, at line rate: the flags option made once per value
        opts = b"" if flags is None else _FLAG_OPTIONS.get(flags) or options(
            [(EPB_FLAGS, struct.pack("<I", flags))])
    head = struct.pack("<IIIII", interface_id, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(data),
                       len(data) if orig_len is None else orig_len)
    return _block(EPB, head + _pad(data) + opts)


def interface_statistics(interface_id: int, ts_ns: int) -> bytes:
    """An Interface Statistics Block without counters: what a live stream sends while it has
    no packets, so proxies and readers see the connection alive (readers skip it)."""
    return _block(ISB, struct.pack("<III", interface_id, ts_ns >> 32, ts_ns & 0xFFFFFFFF))


def sll2_flags(data: bytes) -> int | None:
    """The epb_flags of a LINUX_SLL2 packet: its direction (and reception type) from the packet
    type the kernel recorded; None when the header is cut or the type unknown (no flags)."""
    if len(data) < SLL2_HEADER:
        return None
    return _SLL2_TYPE_FLAGS.get(data[10])


def name_resolution(entries: Iterable[tuple[str, str]]) -> bytes:
    """One Name Resolution Block: (IPv4 or IPv6 address, name) records, end record last. A name
    is cut to what a record's 16-bit length holds; Wireshark shows it in place of the address."""
    records = b""
    for address, name in entries:
        ip = ipaddress.ip_address(address)
        value = ip.packed + name.encode()[:0xFFF0] + b"\x00"
        kind = NRB_IPV4 if ip.version == 4 else NRB_IPV6
        records += struct.pack("<HH", kind, len(value)) + _pad(value)
    return _block(NRB, records + struct.pack("<HH", NRB_END, 0))


def describe(node: str, namespace: str, pod: str, container: str) -> str:
    """An IDB's ``if_description`` in Inspektor Gadget's form (values URL-escaped), which
    podcap.lua and Gadget's own dissector read back as fields (WIRESHARK.md)."""
    q = urllib.parse.quote
    return (f"k8s.node={q(node)};k8s.namespace={q(namespace)};"
            f"k8s.podName={q(pod)};k8s.containerName={q(container)}")
