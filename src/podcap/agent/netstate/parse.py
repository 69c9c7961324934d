"""iproute2's JSON and ``ss`` lines, parsed into a small shape that does not change with
iproute2's version (Debian 12's iproute2 6.1 has no JSON output for ``ss``: its text is parsed).
docs/API.md has the shape."""

from __future__ import annotations

import re
from typing import Any

Doc = dict[str, Any]


def interfaces(raw: list[dict[str, Any]]) -> list[Doc]:
    return [{
        "ifindex": link.get("ifindex"),
        "ifname": str(link.get("ifname", "")),
        "state": str(link.get("operstate", "")),
        "mtu": link.get("mtu"),
        "mac": link.get("address"),
        "flags": [str(f) for f in link.get("flags") or []],
        "addresses": [{"family": str(a.get("family", "")), "address": str(a.get("local", "")),
                       "prefixlen": a.get("prefixlen"), "scope": str(a.get("scope", ""))}
                      for a in link.get("addr_info") or [] if a.get("local")],
    } for link in raw]


def routes(raw: list[dict[str, Any]], family: str) -> list[Doc]:
    return [{"family": family, "dst": str(r.get("dst", "")), "gateway": r.get("gateway"),
             "dev": r.get("dev"), "protocol": r.get("protocol"), "scope": r.get("scope"),
             "prefsrc": r.get("prefsrc"), "metric": r.get("metric")} for r in raw]


def neighbours(raw: list[dict[str, Any]]) -> list[Doc]:
    return [{"address": str(n.get("dst", "")), "dev": n.get("dev"), "lladdr": n.get("lladdr"),
             "state": " ".join(str(s) for s in n.get("state") or [])} for n in raw]


_PROCESS = re.compile(r'\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=(\d+)\)')


def sockets(text: str) -> list[Doc]:
    """``ss -tuanpH`` lines: ``Netid State Recv-Q Send-Q Local Peer [users:((…))]``."""
    found = []
    for line in text.splitlines():
        parts = line.split(None, 6)
        if len(parts) < 6:
            continue
        proto, state, recv_q, send_q, local, peer = parts[:6]
        procs = _PROCESS.findall(parts[6]) if len(parts) > 6 else []
        found.append({
            "proto": proto, "state": state, "local": local, "peer": peer,
            "recv_q": int(recv_q) if recv_q.isdecimal() else None,
            "send_q": int(send_q) if send_q.isdecimal() else None,
            "processes": [{"name": name, "pid": int(pid), "fd": int(fd)}
                          for name, pid, fd in procs],
        })
    return found
