"""`podcap capture netstate ID`: the capture's network-state snapshot (addresses, routes,
neighbours, sockets of its namespace at start), as tables or the API's JSON."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from podcap.cli import output
from podcap.cli.ids import resolve
from podcap.cli.output import Format, OutputOption


def netstate(
    ctx: typer.Context,
    capture_id: Annotated[str, typer.Argument(metavar="ID", help="Capture id or a unique "
                                              "prefix of it (`podcap capture ls`).")],
    fmt: OutputOption = Format.table,
) -> None:
    """The network state of the capture's container when the capture started."""
    api = ctx.obj.api
    cid = resolve(api, capture_id)  # 32 hex digits: safe as a path segment
    doc = api.json("GET", f"/api/captures/{cid}/netstate")["netstate"]
    if fmt is Format.json:
        output.emit_json({"netstate": doc})
        return
    show(doc)


def show(doc: dict[str, Any]) -> None:
    truncated = doc.get("truncated") or {}
    output.line(f"Taken at {output.when(doc.get('taken_at'))} in network namespace "
                f"{doc.get('netns_inode')}")
    _section("Addresses", ["INTERFACE", "STATE", "MAC", "ADDRESSES"], [
        [str(i.get("ifname")), str(i.get("state")), str(i.get("mac") or "-"),
         " ".join(f"{a['address']}/{a['prefixlen']}" for a in i.get("addresses") or []) or "-"]
        for i in doc.get("interfaces") or []], truncated.get("interfaces"))
    _section("Routes", ["FAMILY", "DESTINATION", "GATEWAY", "DEVICE", "SOURCE", "METRIC"], [
        [str(r.get("family")), str(r.get("dst")), _s(r.get("gateway")), _s(r.get("dev")),
         _s(r.get("prefsrc")), _s(r.get("metric"))] for r in doc.get("routes") or []],
        truncated.get("routes"))
    _section("Neighbours", ["ADDRESS", "DEVICE", "MAC", "STATE"], [
        [str(n.get("address")), _s(n.get("dev")), _s(n.get("lladdr")), _s(n.get("state"))]
        for n in doc.get("neighbours") or []], truncated.get("neighbours"))
    _section("Sockets", ["PROTO", "STATE", "LOCAL", "PEER", "PROCESS"], [
        [str(s.get("proto")), str(s.get("state")), str(s.get("local")), str(s.get("peer")),
         ",".join(f"{p['name']}[{p['pid']}]" for p in s.get("processes") or []) or "-"]
        for s in doc.get("sockets") or []], truncated.get("sockets"))
    for error in doc.get("errors") or []:
        output.info(f"warning: {error}")


def _section(title: str, columns: list[str], rows: list[list[str]], more: object) -> None:
    output.line("")
    output.line(f"{title}:" if rows else f"{title}: none")
    if rows:
        output.table(columns, rows)
    if more:
        output.line(f"… and {more} more, left out of the snapshot")


def _s(value: object) -> str:
    return "-" if value is None or value == "" else str(value)
