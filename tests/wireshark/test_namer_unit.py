"""The naming rule of pcap/names.py on packets made by hand: which NRB goes where, and when the
lookup is asked (its answers are the input, as the controller would give them)."""

from __future__ import annotations

import ipaddress
import struct

from podcap.pcap import pcapng
from podcap.pcap.names import Name, Namer

S = 1_000_000_000


def packet(src: str, dst: str, kind: int = 0) -> bytes:
    """LINUX_SLL2 (IPv4, packet type ``kind``) and an IPv4 header."""
    sll2 = struct.pack(">HHIHBB8s", 0x0800, 0, 1, 1, kind, 6, b"")
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20, 0, 0, 64, 6, 0,
                     ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed)
    return sll2 + ip


class Lookup:
    def __init__(self, *names: Name) -> None:
        self.names = list(names)
        self.asked = 0

    def __call__(self) -> list[Name]:
        self.asked += 1
        return list(self.names)


def nrb(*entries: tuple[str, str]) -> bytes:
    return pcapng.name_resolution(entries)


def test_each_address_once_before_the_packet_that_needs_it() -> None:
    look = Lookup(Name("10.0.0.1", "a.ns"), Name("10.0.0.2", "b.ns"), Name("10.0.0.3", "c.ns"))
    namer = Namer(look, clock=lambda: 100 * S)
    assert namer.before(10 * S, packet("10.0.0.1", "10.0.0.2")) == nrb(
        ("10.0.0.1", "a.ns"), ("10.0.0.2", "b.ns"))
    assert namer.before(11 * S, packet("10.0.0.2", "10.0.0.1")) == b""
    assert namer.before(12 * S, packet("10.0.0.1", "8.8.8.8")) == b""  # c.ns: not in packets
    assert look.asked == 1  # every packet older than the answer: one lookup


def test_a_name_only_while_it_was_true() -> None:
    look = Lookup(Name("10.0.0.1", "old.ns", 0, 20 * S), Name("10.0.0.1", "new.ns", 30 * S))
    namer = Namer(look, clock=lambda: 100 * S)
    assert namer.before(10 * S, packet("10.0.0.1", "8.8.8.8")) == nrb(("10.0.0.1", "old.ns"))
    assert namer.before(25 * S, packet("10.0.0.1", "8.8.8.8")) == b""  # nobody's then
    assert namer.before(35 * S, packet("10.0.0.1", "8.8.8.8")) == nrb(("10.0.0.1", "new.ns"))


def test_lookups_a_new_address_at_once_the_world_at_most_every_refresh() -> None:
    now = [100 * S]
    look = Lookup(Name("10.0.0.1", "a.ns"))
    namer = Namer(look, refresh_s=5, clock=lambda: now[0])
    assert namer.before(99 * S, packet("10.0.0.1", "8.8.8.8")) == nrb(("10.0.0.1", "a.ns"))
    for i in range(10):  # live: packets newer than the answer, to the world
        now[0] = 101 * S + i
        assert namer.before(now[0], packet("10.0.0.1", "8.8.8.8")) == b""
    assert look.asked == 1  # 8.8.8.8: the answer came after its first packet, and lacked it
    look.names.append(Name("10.0.0.9", "b2.ns", 102 * S))  # a pod that appeared
    now[0] = 103 * S
    assert namer.before(103 * S, packet("10.0.0.9", "10.0.0.1")) == nrb(("10.0.0.9", "b2.ns"))
    assert look.asked == 2
    now[0] = 109 * S  # the refresh time has passed: asked again
    namer.before(109 * S, packet("10.0.0.1", "8.8.8.8"))
    assert look.asked == 3


def test_no_lookup_no_names() -> None:
    assert Namer(None).before(1, packet("10.0.0.1", "10.0.0.2")) == b""


def test_an_address_taken_over_is_renamed_at_the_next_answer() -> None:
    now = [100 * S]
    look = Lookup(Name("10.0.0.1", "a.ns", 0))
    namer = Namer(look, refresh_s=5, clock=lambda: now[0])
    assert namer.before(100 * S, packet("10.0.0.1", "8.8.8.8")) == nrb(("10.0.0.1", "a.ns"))
    look.names = [Name("10.0.0.1", "a.ns", 0, 101 * S), Name("10.0.0.1", "c.ns", 102 * S),
                  Name("10.0.0.7", "d.ns", 102 * S)]
    now[0] = 103 * S  # d.ns's first packet brings a new answer, which knows c.ns too
    assert namer.before(103 * S, packet("10.0.0.7", "8.8.8.8")) == nrb(("10.0.0.7", "d.ns"))
    assert namer.before(103 * S + 1, packet("10.0.0.1", "8.8.8.8")) == nrb(("10.0.0.1", "c.ns"))
