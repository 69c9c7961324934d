"""`podcap capture show ID --summary`: what a capture holds (conversations, protocol mix,
DNS and TLS names, timeline), from ``GET /api/captures/{id}/summary``, as Rich tables."""

from __future__ import annotations

import time
from typing import Any

from podcap.cli import output
from podcap.cli.output import Format

POLL_S = 30.0  # a stopped capture whose files are still being read: wait this long at most


def fetch(api: Any, cid: str, top: int) -> dict[str, Any]:
    """The summary; for a stopped capture, once its node has read every file (or POLL_S)."""
    deadline = time.monotonic() + POLL_S
    while True:
        doc = dict(api.json("GET", f"/api/captures/{cid}/summary", params={"top": top}))
        if not doc["pending"] or doc["status"] == "running" or time.monotonic() > deadline:
            return doc


def show(api: Any, cid: str, fmt: Format, top: int) -> None:
    doc = fetch(api, cid, top)
    if fmt is Format.json:
        output.emit_json({"summary": doc})
        return
    span = (f", {output.when(doc['first'])} → {output.when(doc['last'])}"
            if doc.get("first") else "")
    output.line(f"{doc['packets']} packets, {output.size(doc['bytes'])} in {doc['files']} "
                f"file(s){span}")
    if doc["pending"]:
        output.info(f"note: {doc['pending']} file(s) not read yet: run again for the rest")
    if doc["wrapped"]:
        output.info(f"note: {doc['wrapped_reason']}")
    convs = doc["conversations"]
    _section(f"Conversations ({doc['conversations_total']}, top {len(convs)} by bytes)",
             ["PROTO", "A", "B", "PACKETS", "BYTES", "A→B", "B→A", "FIRST", "LAST"],
             [[c["proto"], _end(c["a"], c["a_port"]), _end(c["b"], c["b_port"]),
               str(c["packets"]), output.size(c["bytes"]), str(c["packets_ab"]),
               str(c["packets_ba"]), output.when(c["first"]), output.when(c["last"])]
              for c in convs])
    if doc["untracked"]["packets"]:
        output.line(f"{doc['untracked']['packets']} packets in conversations beyond the "
                    f"table's bound ({doc['limits']['conversations']})")
    total = doc["packets"] or 1
    protos = doc["protocols"]
    _section("Protocols", ["LAYER", "PROTOCOL", "PACKETS", "SHARE", "BYTES"],
             [["link", r["name"], str(r["packets"]), _share(r["packets"], total),
               output.size(r["bytes"])] for r in protos["link"]]
             + [["ip", r["name"], str(r["packets"]), _share(r["packets"], total),
                 output.size(r["bytes"])] for r in protos["ip"]]
             + [["port", f"{r['proto']}/{r['port'] or 'ephemeral'}"
                 + (f" ({r['name']})" if r["name"] and r["port"] else ""),
                 str(r["packets"]), _share(r["packets"], total), output.size(r["bytes"])]
                for r in protos["ports"]])
    _section("DNS names queried", ["NAME", "QUERIES", "RESPONSES"],
             [[d["name"], str(d["queries"]), str(d["responses"])] for d in doc["dns"]])
    _section("TLS server names", ["NAME", "CLIENTHELLOS"],
             [[t["name"], str(t["hellos"])] for t in doc["tls"]])
    timeline = doc["timeline"]
    _section(f"Timeline ({timeline['step']} s buckets)", ["TIME", "PACKETS", "BYTES"],
             [[output.when(t), str(p), output.size(b)] for t, p, b in timeline["points"]])


def _section(title: str, columns: list[str], rows: list[list[str]]) -> None:
    output.line("")
    output.line(f"{title}:" if rows else f"{title}: none")
    if rows:
        output.table(columns, rows)


def _end(addr: str, port: int | None) -> str:
    if port is None:
        return addr
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.1f} %"
