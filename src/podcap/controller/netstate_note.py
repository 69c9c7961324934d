"""A capture's network-state snapshot as a pcapng comment: group and followed pcapng
downloads carry it on the capture's interface, so Wireshark shows the addresses, routes,
neighbours and sockets of the container beside its packets.

The snapshot is the agent's document (agent/netstate/ takes it); how it reads as text for
people is decided here, on the controller, which is the only place that writes it as text.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from podcap.errors import PodcapError
from podcap.pcap import pcapng

if TYPE_CHECKING:
    from podcap.controller.principal import Principal
    from podcap.controller.service import CaptureService

Doc = dict[str, Any]


def netstate_note(service: CaptureService, who: Principal, cid: str) -> str:
    """The capture's snapshot as a pcapng comment, or "" when its agent keeps none."""
    try:
        doc = service.document(who, cid, "netstate")
    except PodcapError:
        return ""
    return pcapng.fit_comment(as_text(doc))


def as_text(doc: Doc, max_rows: int = 50) -> str:
    """A few plain lines per section, for people: the CLI and pcapng comments use it."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(doc.get("taken_at") or 0)))
    lines = [f"Network state at capture start ({when}, netns inode {doc.get('netns_inode')})"]

    def section(title: str, rows: list[str], key: str) -> None:
        more = int((doc.get("truncated") or {}).get(key, 0)) + max(0, len(rows) - max_rows)
        lines.append(f"{title}:" if rows else f"{title}: none")
        lines.extend(f"  {row}" for row in rows[:max_rows])
        if more:
            lines.append(f"  … and {more} more")

    section("Addresses", [address_line(i) for i in doc.get("interfaces") or []], "interfaces")
    section("Routes", [route_line(r) for r in doc.get("routes") or []], "routes")
    section("Neighbours", [neighbour_line(n) for n in doc.get("neighbours") or []],
            "neighbours")
    section("Sockets", [socket_line(s) for s in doc.get("sockets") or []], "sockets")
    for error in doc.get("errors") or []:
        lines.append(f"Error: {error}")
    return "\n".join(lines)


def address_line(i: Doc) -> str:
    addrs = " ".join(f"{a['address']}/{a['prefixlen']}" for a in i.get("addresses") or [])
    return f"{i.get('ifname')} {i.get('state')} {i.get('mac') or ''} {addrs}".replace("  ", " ")


def route_line(r: Doc) -> str:
    words = [str(r.get("dst"))]
    for key, label in (("gateway", "via"), ("dev", "dev"), ("prefsrc", "src"),
                       ("metric", "metric")):
        if r.get(key) is not None:
            words += [label, str(r[key])]
    return " ".join(words)


def neighbour_line(n: Doc) -> str:
    return " ".join(str(x) for x in (n.get("address"), "dev", n.get("dev"),
                                     n.get("lladdr") or "-", n.get("state")) if x)


def socket_line(s: Doc) -> str:
    procs = ",".join(f"{p['name']}[{p['pid']}]" for p in s.get("processes") or [])
    return f"{s.get('proto')} {s.get('state')} {s.get('local')} {s.get('peer')} {procs}".rstrip()
