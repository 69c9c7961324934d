"""One conversation's fields and the filters built from them (insight/conversation.py): every
field checked, and the exact BPF and display filter text of each kind of conversation.
test_reader_unit.py compiles these filters with tcpdump and checks what they select."""

from __future__ import annotations

import pytest

from podcap.errors import InvalidArgument
from podcap.insight.conversation import Conversation


def test_tcp_fields_are_normalised() -> None:
    c = Conversation.parse(" TCP ", " 10.0.0.1 ", "10.0.0.2", "80", 40000)
    assert c == Conversation("tcp", "10.0.0.1", "10.0.0.2", 80, 40000)


def test_tcp_bpf_names_both_directions() -> None:
    c = Conversation.parse("tcp", "10.0.0.1", "10.0.0.2", 80, 40000)
    assert c.bpf() == (
        "tcp and ((src host 10.0.0.1 and src port 80 and dst host 10.0.0.2 and dst port 40000)"
        " or (src host 10.0.0.2 and src port 40000 and dst host 10.0.0.1 and dst port 80))")
    assert c.display_filter() == (
        "tcp && ((ip.src == 10.0.0.1 && tcp.srcport == 80 && ip.dst == 10.0.0.2 && "
        "tcp.dstport == 40000) || (ip.src == 10.0.0.2 && tcp.srcport == 40000 && "
        "ip.dst == 10.0.0.1 && tcp.dstport == 80))")
    assert c.file_label() == "tcp_10.0.0.1-80_10.0.0.2-40000"


def test_udp_over_ipv6() -> None:
    c = Conversation.parse("udp", "fd00::1", "FD00:0:0::2", 0, 65535)
    assert (c.a, c.b, c.a_port, c.b_port) == ("fd00::1", "fd00::2", 0, 65535)
    assert c.bpf() == (
        "udp and ((src host fd00::1 and src port 0 and dst host fd00::2 and dst port 65535)"
        " or (src host fd00::2 and src port 65535 and dst host fd00::1 and dst port 0))")
    assert c.display_filter().startswith("udp && ((ipv6.src == fd00::1 && udp.srcport == 0 && ")
    assert c.file_label() == "udp_fd00..1-0_fd00..2-65535"


def test_tcp_and_udp_by_number_take_ports_like_by_name() -> None:
    """"ip-6" once became a tcp conversation without ports, whose filter said "port None"."""
    assert Conversation.parse("ip-6", "10.0.0.1", "10.0.0.2", 80, 81) == Conversation.parse(
        "tcp", "10.0.0.1", "10.0.0.2", 80, 81)
    assert Conversation.parse("ip-17", "10.0.0.1", "10.0.0.2", 53, 5353).proto == "udp"
    with pytest.raises(InvalidArgument) as info:
        Conversation.parse("ip-6", "10.0.0.1", "10.0.0.2")
    assert str(info.value) == "a_port must be a port number from 0 to 65535"


def test_a_protocol_without_ports() -> None:
    c = Conversation.parse("icmp", "10.0.0.1", "10.0.0.2", "", None)
    assert c == Conversation("icmp", "10.0.0.1", "10.0.0.2", None, None)
    assert Conversation.parse("icmp", "10.0.0.1", "10.0.0.2", None, "") == c
    assert c.bpf() == ("ip proto 1 and ((src host 10.0.0.1 and dst host 10.0.0.2) or "
                       "(src host 10.0.0.2 and dst host 10.0.0.1))")
    assert c.display_filter() == ("ip.proto == 1 && ((ip.src == 10.0.0.1 && ip.dst == 10.0.0.2)"
                                  " || (ip.src == 10.0.0.2 && ip.dst == 10.0.0.1))")
    assert c.file_label() == "icmp_10.0.0.1_10.0.0.2"


def test_a_protocol_by_number_over_ipv6() -> None:
    c = Conversation.parse("ip-47", "fd00::1", "fd00::2")
    assert c.proto == "gre"
    assert c.bpf() == ("ip6 proto 47 and ((src host fd00::1 and dst host fd00::2) or "
                       "(src host fd00::2 and dst host fd00::1))")
    assert c.display_filter() == ("ipv6.nxt == 47 && ((ipv6.src == fd00::1 && ipv6.dst == "
                                  "fd00::2) || (ipv6.src == fd00::2 && ipv6.dst == fd00::1))")
    unnamed = Conversation.parse("ip-200", "10.0.0.1", "10.0.0.2")
    assert unnamed.proto == "ip-200"
    assert unnamed.bpf().startswith("ip proto 200 and ")
    assert Conversation.parse("ip-0", "10.0.0.1", "10.0.0.2").bpf().startswith("ip proto 0 ")
    assert Conversation.parse("ip-255", "10.0.0.1", "10.0.0.2").proto == "ip-255"


@pytest.mark.parametrize(("args", "message"), [
    (("", "10.0.0.1", "10.0.0.2"), "proto must be tcp, udp, an IP protocol name or ip-N "
                                   "(0-255), not ''"),
    (("ip-x", "10.0.0.1", "10.0.0.2"), "proto must be tcp, udp, an IP protocol name or ip-N "
                                       "(0-255), not 'ip-x'"),
    (("x" * 30, "10.0.0.1", "10.0.0.2"), "proto must be tcp, udp, an IP protocol name or ip-N "
                                         "(0-255), not 'xxxxxxxxxxxxxxxxxxxx'"),
    (("ip--1", "10.0.0.1", "10.0.0.2"), "proto must be"),
    (("tcp", "", "10.0.0.2", 1, 2), "a must be an IPv4 or IPv6 address, not ''"),
    (("tcp", "10.0.0.1", "1" * 60, 1, 2), "b must be an IPv4 or IPv6 address, not '"
                                          + "1" * 45 + "'"),
    (("tcp", "10.0.0.1", "fd00::2", 1, 2), "a and b must both be IPv4 or both IPv6 addresses"),
    (("tcp", "10.0.0.1", "10.0.0.2", 65536, 2), "a_port must be a port number from 0 to 65535"),
    (("tcp", "10.0.0.1", "10.0.0.2", 1, ""), "b_port must be a port number from 0 to 65535"),
    (("tcp", "10.0.0.1", "10.0.0.2", 1, None), "b_port must be a port number from 0 to 65535"),
    (("tcp", "10.0.0.1", "10.0.0.2", -1, 1), "a_port must be a port number from 0 to 65535"),
    (("udp", "10.0.0.1", "10.0.0.2", "x", 1), "a_port must be a port number from 0 to 65535"),
    (("icmp", "10.0.0.1", "10.0.0.2", 1, None), "icmp has no ports: leave a_port and b_port out"),
    (("icmp", "10.0.0.1", "10.0.0.2", None, 0), "icmp has no ports: leave a_port and b_port out"),
])
def test_each_field_is_checked_and_named(args: tuple, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        Conversation.parse(*args)
    assert str(info.value) == message or str(info.value).startswith(message)
