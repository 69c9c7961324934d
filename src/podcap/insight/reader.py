"""The streaming pcap reader: one pass over a file's records into a ``Partial``.

This is the hot loop (limits: ≥ 200,000 packets/s on one core, bench/insight.py), so it is a
plain ``struct`` reader rather than dpkt: no object per packet, offsets into one block.
It reads blocks of ``limits.INSIGHT_READ_BYTES``; memory is one block plus the bounded tables.

What it decodes, and what it leaves (documented in docs/ARCHITECTURE.md):
- links LINUX_SLL2 (276, what podcap captures), LINUX_SLL (113), Ethernet (1, one VLAN tag),
  raw IP (101, 228, 229);
- IPv4 and IPv6 (no extension-header walk: a TCP/UDP packet behind an IPv6 extension header
  counts under that header's protocol number); non-first IPv4 fragments have no ports;
- TCP and UDP ports; DNS question names on port 53 (UDP, and TCP when a segment starts with the
  message); TLS server names from a ClientHello that starts a TCP segment (no reassembly).
- Bytes are wire lengths (the record's original length), as tshark's conversation tables count.

Reading resumes at an offset (a running capture's newest file is read a little further on each
pass) and stops at the last complete record: tcpdump may be half-way through writing one.
"""

from __future__ import annotations

import struct
from pathlib import Path

from podcap import limits
from podcap.insight.partial import Partial
from podcap.pcap.format import (
    GLOBAL_HEADER,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    RECORD_HEADER,
    parse_header,
    walk,
)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = 0x8100
TCP, UDP = 6, 17
DNS_PORT = 53
# Ports at or above this are ephemeral: the protocol mix counts such packets under port 0.
EPHEMERAL_PORT_MIN = 49152


class NotPcap(ValueError):
    """The file is not a classic pcap (or has no complete global header yet)."""


def read(path: Path, partial: Partial | None = None, offset: int = 0) -> tuple[Partial, int]:
    """Add the complete records of ``path`` from ``offset`` (0: the start) into ``partial``;
    return it and the offset after the last complete record (where the next pass resumes)."""
    partial = partial if partial is not None else Partial()
    with open(path, "rb") as fh:
        header = parse_header(fh.read(GLOBAL_HEADER))
        if header is None:
            raise NotPcap(f"{path.name} is not a pcap file (or has no header yet)")
        order, unit, linktype = header.endian, header.unit, header.linktype
        offset = max(offset, GLOBAL_HEADER)
        fh.seek(offset)
        pending = b""
        while block := fh.read(limits.INSIGHT_READ_BYTES):
            data = pending + block if pending else block
            used = _records(data, order, unit, linktype, partial)
            offset += used
            pending = data[used:]
    partial.bound_timeline()
    return partial, offset


def _records(data: bytes, order: str, unit: float, linktype: int, part: Partial) -> int:
    """Count every complete record in ``data``; return the bytes used. One long function on
    purpose: attribute look-ups and calls are what a Python packet loop spends its time on."""
    u16 = struct.Struct(">H").unpack_from
    ports_of = struct.Struct(">HH").unpack_from
    convs, links, protos = part.conversations, part.links, part.ip_protocols
    services, timeline = part.services, part.timeline
    step = part.step
    conv_max, svc_max = limits.INSIGHT_CONVERSATIONS_MAX, limits.INSIGHT_SERVICES_MAX
    packets = nbytes = 0
    first, last = part.first, part.last
    pos = 0
    for at, sec, frac, caplen, wirelen in walk(data, order):
        p = at + RECORD_HEADER
        end = p + caplen
        pos = end
        ts = sec + frac * unit
        packets += 1
        nbytes += wirelen
        if first is None or ts < first:
            first = ts
        if last is None or ts > last:
            last = ts
        bucket = timeline.get(sec - sec % step)
        if bucket is None:
            timeline[sec - sec % step] = [1, wirelen]
        else:
            bucket[0] += 1
            bucket[1] += wirelen
        # ---- link layer -> EtherType and the network header's offset
        if linktype == LINKTYPE_LINUX_SLL2:
            if caplen < 20:
                continue
            ethertype = u16(data, p)[0]
            q = p + 20
        elif linktype == LINKTYPE_LINUX_SLL:
            if caplen < 16:
                continue
            ethertype = u16(data, p + 14)[0]
            q = p + 16
        elif linktype == LINKTYPE_ETHERNET:
            if caplen < 14:
                continue
            ethertype = u16(data, p + 12)[0]
            q = p + 14
            if ethertype == ETH_VLAN and caplen >= 18:
                ethertype = u16(data, p + 16)[0]
                q = p + 18
        elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
            if caplen < 1:
                continue
            ethertype = ETH_IPV4 if data[p] >> 4 == 4 else ETH_IPV6 if data[p] >> 4 == 6 else 0
            q = p
        else:
            continue
        link = links.get(ethertype)
        if link is None:
            links[ethertype] = [1, wirelen]
        else:
            link[0] += 1
            link[1] += wirelen
        # ---- network layer
        if ethertype == ETH_IPV4:
            if q + 20 > end:
                continue
            proto = data[q + 9]
            src = data[q + 12:q + 16]
            dst = data[q + 16:q + 20]
            l4 = q + (data[q] & 15) * 4
            whole = not ((data[q + 6] & 0x1F) or data[q + 7])  # first (or only) fragment
        elif ethertype == ETH_IPV6:
            if q + 40 > end:
                continue
            proto = data[q + 6]
            src = data[q + 8:q + 24]
            dst = data[q + 24:q + 40]
            l4 = q + 40
            whole = True
        else:
            continue
        ipp = protos.get(proto)
        if ipp is None:
            protos[proto] = [1, wirelen]
        else:
            ipp[0] += 1
            ipp[1] += wirelen
        sport = dport = 0
        if (proto == TCP or proto == UDP) and whole and l4 + 4 <= end:
            sport, dport = ports_of(data, l4)
            low = sport if sport < dport else dport
            svc_key = (proto, low if low < EPHEMERAL_PORT_MIN else 0)
            svc = services.get(svc_key)
            if svc is None:
                if len(services) < svc_max:
                    services[svc_key] = [1, wirelen]
            else:
                svc[0] += 1
                svc[1] += wirelen
            if proto == UDP:
                if sport == DNS_PORT or dport == DNS_PORT:
                    _dns(data, l4 + 8, end, part)
            elif l4 + 13 <= end:
                payload = l4 + (data[l4 + 12] >> 4) * 4
                if payload < end:
                    if data[payload] == 0x16:
                        _tls(data, payload, end, part)
                    elif sport == DNS_PORT or dport == DNS_PORT:
                        _dns(data, payload + 2, end, part)
        # ---- the conversation (both directions in one row)
        if (src, sport) <= (dst, dport):
            key = (proto, src, sport, dst, dport)
            back = False
        else:
            key = (proto, dst, dport, src, sport)
            back = True
        row = convs.get(key)
        if row is None:
            if len(convs) >= conv_max:
                part.untracked_packets += 1
                part.untracked_bytes += wirelen
                continue
            convs[key] = [0, 0, 1, wirelen, ts, ts] if back else [1, wirelen, 0, 0, ts, ts]
        else:
            if back:
                row[2] += 1
                row[3] += wirelen
            else:
                row[0] += 1
                row[1] += wirelen
            if ts < row[4]:
                row[4] = ts
            if ts > row[5]:
                row[5] = ts
    part.packets += packets
    part.bytes += nbytes
    part.first, part.last = first, last
    return pos


def _dns(data: bytes, at: int, end: int, part: Partial) -> None:
    """The first question's name of a DNS message at ``at`` (query or response)."""
    if at + 12 > end or not (data[at + 4] or data[at + 5]):  # no question
        return
    name = qname(data, at + 12, end)
    if name is None:
        return
    row = part.dns.get(name)
    response = 1 if data[at + 2] & 0x80 else 0
    if row is None:
        if len(part.dns) < limits.INSIGHT_NAMES_MAX:
            part.dns[name] = [1 - response, response]
    else:
        row[response] += 1


def qname(data: bytes, pos: int, end: int) -> str | None:
    """A DNS name in wire form (labels, no compression: a question's name has none)."""
    labels: list[str] = []
    total = 0
    while pos < end:
        length = data[pos]
        if length == 0:
            return ".".join(labels) if labels else "<Root>"
        if length > 63:  # a label past ``end`` ends the loop below: None all the same
            return None
        total += length + 1
        if total > 255:
            return None
        labels.append(data[pos + 1:pos + 1 + length].decode("ascii", "backslashreplace"))
        pos += 1 + length
    return None


def _tls(data: bytes, at: int, end: int, part: Partial) -> None:
    name = server_name(data[at:end])
    if name is not None and (name in part.tls or len(part.tls) < limits.INSIGHT_NAMES_MAX):
        part.tls[name] = part.tls.get(name, 0) + 1


def server_name(record: bytes) -> str | None:
    """The SNI host name of a TLS record holding a ClientHello (None if it is not one, or the
    hello is cut before the extension)."""
    try:
        if record[0] != 0x16 or record[5] != 0x01:
            return None
        pos = 5 + 4 + 2 + 32  # record header, handshake header, version, random
        pos += 1 + record[pos]  # session id
        pos += 2 + int.from_bytes(record[pos:pos + 2], "big")  # cipher suites
        pos += 1 + record[pos]  # compression methods
        ext_end = pos + 2 + int.from_bytes(record[pos:pos + 2], "big")
        pos += 2
        while pos + 4 <= min(ext_end, len(record)):
            kind = int.from_bytes(record[pos:pos + 2], "big")
            length = int.from_bytes(record[pos + 2:pos + 4], "big")
            if kind == 0:  # server_name: list length, then (type, length, name)...
                body = record[pos + 4:pos + 4 + length]
                if len(body) >= 5 and body[2] == 0:
                    size = int.from_bytes(body[3:5], "big")
                    if 0 < size <= 255 and len(body) >= 5 + size:
                        return body[5:5 + size].decode("ascii", "backslashreplace")
                return None
            pos += 4 + length
    except IndexError:
        return None
    return None
