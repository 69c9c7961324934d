"""What one pcap file (or a part of one) holds: the counters the summary is made of.

A ``Partial`` is what the reader fills and the cache stores per ring file. Partials merge
(file by file, in ring order) into the summary of a whole capture. Every table has a bound
(limits.INSIGHT_*): past it packets are still counted, in the ``untracked`` totals, but no new
row is made, so memory stays bounded whatever a capture holds.

Keys in memory are raw (address bytes, port ints) because the reader is the hot loop; JSON
turns addresses into text (``to_json``/``from_json``).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from podcap import limits

# Conversation key: (IP protocol, address A, port A, address B, port B) with (A, port A) <=
# (B, port B), so both directions share one row. Ports are 0 for protocols without them.
ConvKey = tuple[int, bytes, int, bytes, int]
# Row: packets A->B, bytes A->B, packets B->A, bytes B->A, first seen, last seen.
ConvRow = list[float]


@dataclass
class Partial:
    packets: int = 0
    bytes: int = 0
    first: float | None = None
    last: float | None = None
    conversations: dict[ConvKey, ConvRow] = field(default_factory=dict)
    untracked_packets: int = 0  # packets of conversations beyond the table's bound
    untracked_bytes: int = 0
    links: dict[int, list[int]] = field(default_factory=dict)  # EtherType -> [packets, bytes]
    ip_protocols: dict[int, list[int]] = field(default_factory=dict)  # proto -> [packets, bytes]
    services: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # (proto, port)
    dns: dict[str, list[int]] = field(default_factory=dict)  # name -> [queries, responses]
    tls: dict[str, int] = field(default_factory=dict)  # server name -> ClientHellos
    timeline: dict[int, list[int]] = field(default_factory=dict)  # second -> [packets, bytes]
    step: int = 1  # timeline bucket width, seconds (doubles past INSIGHT_TIMELINE_MAX)

    # ---- merging ----------------------------------------------------------------------

    def merge(self, other: Partial) -> None:
        """Add ``other`` (a later file or a later part of the same file) into this one."""
        self.packets += other.packets
        self.bytes += other.bytes
        if other.first is not None:
            self.first = other.first if self.first is None else min(self.first, other.first)
        if other.last is not None:
            self.last = other.last if self.last is None else max(self.last, other.last)
        convs = self.conversations
        for key, row in other.conversations.items():
            mine = convs.get(key)
            if mine is None:
                if len(convs) >= limits.INSIGHT_CONVERSATIONS_MAX:
                    self.untracked_packets += int(row[0] + row[2])
                    self.untracked_bytes += int(row[1] + row[3])
                    continue
                convs[key] = list(row)
            else:
                mine[0] += row[0]
                mine[1] += row[1]
                mine[2] += row[2]
                mine[3] += row[3]
                mine[4] = min(mine[4], row[4])
                mine[5] = max(mine[5], row[5])
        self.untracked_packets += other.untracked_packets
        self.untracked_bytes += other.untracked_bytes
        _add_counts(self.links, other.links, None)
        _add_counts(self.ip_protocols, other.ip_protocols, None)
        _add_counts(self.services, other.services, limits.INSIGHT_SERVICES_MAX)
        _add_counts(self.dns, other.dns, limits.INSIGHT_NAMES_MAX)
        for name, n in other.tls.items():
            if name in self.tls or len(self.tls) < limits.INSIGHT_NAMES_MAX:
                self.tls[name] = self.tls.get(name, 0) + n
        step = max(self.step, other.step)
        self.rebucket(step)
        for sec, (p, b) in other.timeline.items():
            bucket = self.timeline.setdefault(sec - sec % step, [0, 0])
            bucket[0] += p
            bucket[1] += b
        self.bound_timeline()

    def rebucket(self, step: int) -> None:
        if step == self.step:
            return
        merged: dict[int, list[int]] = {}
        for sec, (p, b) in self.timeline.items():
            bucket = merged.setdefault(sec - sec % step, [0, 0])
            bucket[0] += p
            bucket[1] += b
        self.timeline, self.step = merged, step

    def bound_timeline(self) -> None:
        while len(self.timeline) > limits.INSIGHT_TIMELINE_MAX:
            self.rebucket(self.step * 2)

    # ---- JSON ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, object]:
        return {
            "packets": self.packets, "bytes": self.bytes, "first": self.first, "last": self.last,
            "conversations": [[k[0], ntop(k[1]), k[2], ntop(k[3]), k[4], *row]
                              for k, row in self.conversations.items()],
            "untracked": [self.untracked_packets, self.untracked_bytes],
            "links": [[k, *v] for k, v in self.links.items()],
            "ip_protocols": [[k, *v] for k, v in self.ip_protocols.items()],
            "services": [[k[0], k[1], *v] for k, v in self.services.items()],
            "dns": [[k, *v] for k, v in self.dns.items()],
            "tls": [[k, v] for k, v in self.tls.items()],
            "timeline": [[k, *v] for k, v in self.timeline.items()],
            "step": self.step,
        }

    @classmethod
    def from_json(cls, data: dict) -> Partial:
        part = cls(packets=int(data["packets"]), bytes=int(data["bytes"]),
                   first=data["first"], last=data["last"], step=int(data.get("step", 1)))
        for proto, a, ap, b, bp, *row in data["conversations"]:
            part.conversations[(proto, _pton(a), ap, _pton(b), bp)] = list(row)
        part.untracked_packets, part.untracked_bytes = data["untracked"]
        part.links = {k: [p, b] for k, p, b in data["links"]}
        part.ip_protocols = {k: [p, b] for k, p, b in data["ip_protocols"]}
        part.services = {(proto, port): [p, b] for proto, port, p, b in data["services"]}
        part.dns = {k: [q, r] for k, q, r in data["dns"]}
        part.tls = {k: n for k, n in data["tls"]}
        part.timeline = {k: [p, b] for k, p, b in data["timeline"]}
        return part


def _add_counts(mine: dict, other: dict, bound: int | None) -> None:
    for key, counts in other.items():
        row = mine.get(key)
        if row is None:
            if bound is not None and len(mine) >= bound:
                continue
            mine[key] = list(counts)
        else:
            for i, n in enumerate(counts):
                row[i] += n


def ntop(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def _pton(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
