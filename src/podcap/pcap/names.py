"""Names for the addresses in a pcapng: which Name Resolution Block goes where.

One rule for every pcapng podcap writes (a capture's or a group's, downloaded or followed):

- Only addresses that packets carry are named, each in an NRB just before the first packet that
  carries it: a file names its own conversations, not the whole cluster, and
  ``tshark -z hosts`` lists exactly them.
- A name is written only before a packet captured while it was true (from ``since``, when the
  workload was created, until ``until`` when known), so an older capture is never given the
  name of a workload that took an address later. Of several names for one address the one true
  at the packet that became true last wins. podcap keeps no history of who held what beyond the
  captures themselves (each capture's record names its own workload for its span): an address
  whose holder is gone and was not captured stays unnamed.
- The names come from ``lookup()`` (on the controller: its view of every node). It is asked on
  the first packet, again when a packet newer than the last answer carries an address that has
  no name yet (a pod that appeared since: its name comes before its first packet), and at most
  every ``NAMES_REFRESH_S`` otherwise (an address of the outside world stays unnamed; an
  address taken over by another workload gets the new name in a later NRB).

Addresses are read from LINUX_SLL2 (IPv4, IPv6) only, what every podcap capture is.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from podcap import limits
from podcap.pcap import pcapng

_IPV4 = b"\x08\x00"
_IPV6 = b"\x86\xdd"
_H = pcapng.SLL2_HEADER
_VAIN_MAX = 65_536


@dataclass(frozen=True)
class Name:
    """``address`` was ``name``'s from ``since_ns`` (Unix time, nanoseconds) until ``until_ns``
    (None: until now)."""

    address: str
    name: str
    since_ns: int = 0
    until_ns: int | None = None

    def true_at(self, ts_ns: int) -> bool:
        return self.since_ns <= ts_ns and (self.until_ns is None or ts_ns <= self.until_ns)


def addresses(data: bytes) -> Iterator[bytes]:
    """Source and destination address (packed) of a LINUX_SLL2 IPv4 or IPv6 packet."""
    kind = data[:2]
    if kind == _IPV4 and len(data) >= _H + 20:
        yield data[_H + 12:_H + 16]
        yield data[_H + 16:_H + 20]
    elif kind == _IPV6 and len(data) >= _H + 40:
        yield data[_H + 8:_H + 24]
        yield data[_H + 24:_H + 40]


class Namer:
    """Feeds one pcapng writer: ``before(ts, data)`` is the NRB to write before that packet
    (b"" mostly). Not thread-safe: one writer, one namer.

    Per packet it costs two dict look-ups: each address keeps the span of packet times over
    which its answer cannot change (``_settled``: until a name's start or end, or the next
    periodic asking); only a packet outside it is thought about again."""

    def __init__(self, lookup: Callable[[], Iterable[Name]] | None,
                 refresh_s: float = limits.NAMES_REFRESH_S,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self._lookup = lookup
        self._refresh_ns = int(refresh_s * 1e9)
        self._clock = clock
        self._known: dict[bytes, list[Name]] = {}  # the last answer, by packed address
        self._written: dict[bytes, str] = {}
        self._asked_ns: int | None = None  # when the last answer was asked for
        self._vain: set[bytes] = set()  # looked for after a packet carried it: no workload's
        self._settled: dict[bytes, tuple[int, int]] = {}  # address -> (from, to) packet times

    def before(self, ts_ns: int, data: bytes) -> bytes:
        if self._lookup is None:
            return b""
        kind = data[:2]
        if kind == _IPV4 and len(data) >= _H + 20:
            ends = (data[_H + 12:_H + 16], data[_H + 16:_H + 20])
        elif kind == _IPV6 and len(data) >= _H + 40:
            ends = (data[_H + 8:_H + 24], data[_H + 24:_H + 40])
        else:
            return b""
        out: list[Name] = []
        settled = self._settled
        for packed in ends:
            span = settled.get(packed)
            if span is not None and span[0] <= ts_ns <= span[1]:
                continue
            name = self._name(packed, ts_ns)
            if name is not None and self._written.get(packed) != name.name:
                self._written[packed] = name.name
                out.append(name)
        return pcapng.name_resolution((n.address, n.name) for n in out) if out else b""

    def _name(self, packed: bytes, ts_ns: int) -> Name | None:
        """The name true for ``packed`` at ``ts_ns`` by the newest answer that may know it."""
        asked = self._asked_ns
        new = packed not in self._known and packed not in self._vain
        if asked is None or (ts_ns > asked and (
                new or self._clock() - asked >= self._refresh_ns)):
            self._refresh()
            asked = self._asked_ns
        assert asked is not None
        known = self._known.get(packed, [])
        if not known:  # the answer was asked for after this packet came: nobody's address
            if len(self._vain) >= _VAIN_MAX:
                self._vain.clear()  # memory stays bounded; these are asked about once more
            self._vain.add(packed)
        edges = [e for n in known for e in (n.since_ns - 1, n.until_ns)
                 if e is not None and e >= ts_ns]
        self._settled[packed] = (ts_ns, min([asked + self._refresh_ns, *edges]))
        true = [n for n in known if n.true_at(ts_ns)]
        return max(true, key=lambda n: n.since_ns) if true else None

    def _refresh(self) -> None:
        assert self._lookup is not None
        self._asked_ns = self._clock()  # whatever ran before this moment is in the answer
        known: dict[bytes, list[Name]] = {}
        for n in self._lookup():
            known.setdefault(ipaddress.ip_address(n.address).packed, []).append(n)
        self._known = known
        self._settled.clear()
        if len(self._written) >= _VAIN_MAX:
            self._written.clear()  # bounded too: a name may then be written once more
