"""One conversation as validated fields, and the BPF filter podcap builds from them.

A download of "only this conversation" never takes a filter from the user: the API takes the
protocol, two addresses and two ports, each checked here (``ipaddress``, 0-65535, a known
protocol), and the filter text is made from the checked values only. The agent compiles it
once more and hands it to tcpdump as one argv element.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from podcap.errors import InvalidArgument
from podcap.insight import names

PORTED = {"tcp": 6, "udp": 17}


@dataclass(frozen=True)
class Conversation:
    proto: str  # "tcp", "udp", or an IP protocol by name ("icmp") or number ("ip-47")
    a: str
    b: str
    a_port: int | None = None
    b_port: int | None = None

    @classmethod
    def parse(cls, proto: str, a: str, b: str, a_port: int | str | None = None,
              b_port: int | str | None = None) -> Conversation:
        """Validate every field; raise InvalidArgument saying which one to change."""
        # By its name: "ip-6" is tcp and "ip-17" udp, which have ports.
        proto = names.ip_protocol(_proto_number((proto or "").strip().lower()))
        addr_a, addr_b = _address("a", a), _address("b", b)
        if addr_a.version != addr_b.version:
            raise InvalidArgument("a and b must both be IPv4 or both IPv6 addresses")
        pa: int | None
        pb: int | None
        if proto in PORTED:
            pa, pb = _port("a_port", a_port), _port("b_port", b_port)
        else:
            if a_port not in (None, "") or b_port not in (None, ""):
                raise InvalidArgument(f"{proto} has no ports: leave a_port and b_port out")
            pa = pb = None
        return cls(proto=proto, a=str(addr_a), b=str(addr_b), a_port=pa, b_port=pb)

    def bpf(self) -> str:
        """The tcpdump filter of exactly this conversation's packets, both directions."""
        a, b = f"host {self.a}", f"host {self.b}"
        if self.proto in PORTED:
            one = f"src {a} and src port {self.a_port} and dst {b} and dst port {self.b_port}"
            two = f"src {b} and src port {self.b_port} and dst {a} and dst port {self.a_port}"
            return f"{self.proto} and (({one}) or ({two}))"
        family = "ip6" if ":" in self.a else "ip"
        number = _proto_number(self.proto)
        return f"{family} proto {number} and ((src {a} and dst {b}) or (src {b} and dst {a}))"

    def display_filter(self) -> str:
        """The same conversation as a Wireshark display filter (shown to users, used in tests)."""
        ip = "ipv6" if ":" in self.a else "ip"
        hosts = (f"({ip}.src == {self.a} && {ip}.dst == {self.b}) || "
                 f"({ip}.src == {self.b} && {ip}.dst == {self.a})")
        if self.proto in PORTED:
            p = self.proto
            return (f"{p} && (({ip}.src == {self.a} && {p}.srcport == {self.a_port} && "
                    f"{ip}.dst == {self.b} && {p}.dstport == {self.b_port}) || "
                    f"({ip}.src == {self.b} && {p}.srcport == {self.b_port} && "
                    f"{ip}.dst == {self.a} && {p}.dstport == {self.a_port}))")
        field = "ipv6.nxt" if ip == "ipv6" else "ip.proto"
        return f"{field} == {_proto_number(self.proto)} && ({hosts})"

    def file_label(self) -> str:
        """For a download's file name: no characters a file system minds."""
        ends = [f"{self.a}-{self.a_port}" if self.a_port is not None else self.a,
                f"{self.b}-{self.b_port}" if self.b_port is not None else self.b]
        return f"{self.proto}_{'_'.join(ends)}".replace(":", ".")


def _proto_number(proto: str) -> int:
    if proto in PORTED:
        return PORTED[proto]
    for number, name in names.IP_PROTOCOLS.items():
        if name == proto:
            return number
    text = proto.removeprefix("ip-")
    if text.isdecimal() and 0 <= int(text) <= 255:
        return int(text)
    raise InvalidArgument(f"proto must be tcp, udp, an IP protocol name or ip-N (0-255), "
                          f"not {proto[:20]!r}")


def _address(name: str, text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address((text or "").strip())
    except ValueError as exc:
        raise InvalidArgument(f"{name} must be an IPv4 or IPv6 address, not "
                              f"{(text or '')[:45]!r}") from exc


def _port(name: str, value: int | str | None) -> int:
    refused = InvalidArgument(f"{name} must be a port number from 0 to 65535")
    try:
        port = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:  # None, "" or not a number
        raise refused from exc
    if not 0 <= port <= 65535:
        raise refused
    return port
