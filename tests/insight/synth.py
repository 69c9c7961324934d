"""Synthetic LINUX_SLL2 pcaps built with dpkt, for the reader's unit tests."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import dpkt

from podcap.pcap import format

SLL2 = 276


def sll2(payload: bytes, ethertype: int = 0x0800) -> bytes:
    return struct.pack(">HHIHBB8s", ethertype, 0, 2, 1, 0, 6, bytes(8)) + payload


def ip4(src: str, dst: str, l4: dpkt.Packet, proto: int) -> bytes:
    pkt = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, data=l4)
    pkt.len = len(pkt)  # dpkt fills checksums and length on bytes()
    return sll2(bytes(pkt))


def ip6(src: str, dst: str, l4: dpkt.Packet, proto: int) -> bytes:
    pkt = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src),
                       dst=socket.inet_pton(socket.AF_INET6, dst), nxt=proto, hlim=64, data=l4)
    pkt.plen = len(bytes(l4))
    return sll2(bytes(pkt), 0x86DD)


def tcp(sport: int, dport: int, payload: bytes = b"", flags: int = dpkt.tcp.TH_ACK) -> dpkt.Packet:
    return dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, data=payload)


def udp(sport: int, dport: int, payload: bytes = b"") -> dpkt.Packet:
    seg = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    seg.ulen = len(seg)
    return seg


def dns_query(name: str, ident: int = 1) -> bytes:
    msg = dpkt.dns.DNS(id=ident, qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)])
    return bytes(msg)


def client_hello(server_name: str) -> bytes:
    name = server_name.encode()
    sni = struct.pack(">HBH", len(name) + 3, 0, len(name)) + name
    ext = struct.pack(">HH", 0x000A, 4) + b"\x00\x02\x00\x1d"  # supported_groups first
    ext += struct.pack(">HH", 0, len(sni)) + sni
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x04\x13\x01\x13\x02" + b"\x01\x00" + \
        struct.pack(">H", len(ext)) + ext
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(handshake)) + handshake


def write(path: Path, frames: list[tuple[float, bytes]], linktype: int = SLL2) -> Path:
    with open(path, "wb") as fh:
        fh.write(format.global_header(linktype))
        for ts, frame in frames:
            sec = int(ts)
            fh.write(format.record(sec, round((ts - sec) * 1e6), frame))
    return path
