"""Field checks for what an agent sends the controller.

A joined node may be compromised, so nothing it reports is trusted further than these rules:
enums are enums, ids have their shape, counts and sizes are whole, finite and bounded, text is
bounded and free of control characters (a node name with a newline would forge log lines).
Every failure is an ``InvalidArgument`` naming the field; the caller drops the message, logs
and counts it (``transport/remote.py``), so one bad answer never becomes a 500 for everyone.
"""

from __future__ import annotations

import ipaddress
import math
import re

from podcap import limits
from podcap.errors import InvalidArgument

# A Kubernetes node name is a DNS subdomain (253); hosts names use the same characters.
_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_COUNT_MAX = 2**62  # packets and bytes: far above any capture, far below int64's end


def node_name(value: str) -> str:
    """The rule for a node name, at join and at every Hello alike."""
    if not isinstance(value, str) or not _NODE.fullmatch(value):
        raise InvalidArgument(f"invalid node name {value[:60]!r}: letters, digits, '-', '.', "
                              "'_', at most 253 characters, beginning with a letter or digit")
    return value


def text(field: str, value: str, max_chars: int = limits.AGENT_TEXT_MAX_CHARS) -> str:
    """Bounded, and no control characters: it may reach a log line or a page."""
    if len(value) > max_chars:
        raise InvalidArgument(f"{field} has {len(value)} characters; at most {max_chars}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidArgument(f"{field} contains control characters")
    return value


def one_of(field: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidArgument(f"{field} {value[:40]!r} is not one of {', '.join(allowed)}")
    return value


def count(field: str, value: int, high: int = _COUNT_MAX) -> int:
    if not 0 <= value <= high:
        raise InvalidArgument(f"{field} {value} is outside 0..{high}")
    return value


def moment(field: str, value: float) -> float:
    """A Unix time or a duration: finite and not negative."""
    if not math.isfinite(value) or value < 0:
        raise InvalidArgument(f"{field} {value!r} is not a finite time")
    return value


def finite(field: str, value: float) -> float:
    """A number shown as it is (a creation time may be before 1970 for a runtime's zero)."""
    if not math.isfinite(value):
        raise InvalidArgument(f"{field} {value!r} is not a finite number")
    return value


def items(field: str, values: object, high: int) -> None:
    n = len(values)  # type: ignore[arg-type]
    if n > high:
        raise InvalidArgument(f"{field} has {n} entries; at most {high}")


def ips(values: list[str]) -> tuple[str, ...]:
    items("ips", values, limits.AGENT_WORKLOAD_IPS_MAX)
    for ip in values:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidArgument(f"ips holds {ip[:60]!r}, not an IP address") from None
    return tuple(values)


def interfaces(values: list[tuple[str, str, int]]) -> tuple[tuple[str, str, int], ...]:
    """(interface, address, prefix length): a Linux interface name, an address, and a prefix
    that fits it."""
    items("interfaces", values, limits.AGENT_WORKLOAD_IPS_MAX)
    for name, address, prefix in values:
        text("an interface name", name, 15)  # IFNAMSIZ - 1
        try:
            ipaddress.ip_interface(f"{address}/{prefix}")
        except ValueError:
            raise InvalidArgument(f"interfaces holds {address[:60]!r}/{prefix}, not an address "
                                  "with its prefix length") from None
    return tuple(values)


def labels(values: dict[str, str]) -> dict[str, str]:
    items("labels", values, limits.AGENT_WORKLOAD_LABELS_MAX)
    for key, value in values.items():
        text("a label name", key, limits.AGENT_TEXT_MAX_CHARS)
        if len(value) > limits.AGENT_LABEL_VALUE_MAX_CHARS or "\x00" in value:
            raise InvalidArgument(f"label {key[:60]!r} has a value over "
                                  f"{limits.AGENT_LABEL_VALUE_MAX_CHARS} characters or a NUL")
    return dict(values)
