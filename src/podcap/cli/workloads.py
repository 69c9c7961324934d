"""`podcap ps`, and asking the server which workload a user's text (a name or an id) names."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from podcap.cli import output
from podcap.cli.client import ApiClient
from podcap.cli.output import Format, OutputOption
from podcap.errors import InvalidArgument, NotFound


def ps(
    ctx: typer.Context,
    query: Annotated[str | None, typer.Option(
        "--query", "-q", help="Only workloads whose name, image, namespace, pod or IP contains "
        "this.")] = None,
    fmt: OutputOption = Format.table,
) -> None:
    """List workloads, and whether each can be captured (and if not, why)."""
    api = ctx.obj.api
    items = api.workloads(query)
    output.unreachable(api.unreachable, "their workloads are missing")
    if fmt is Format.json:
        output.emit_json({"workloads": items, "unreachable": api.unreachable})
        return
    pods = any(w.get("pod_name") for w in items)
    columns = ["ID", "NAME", *(["POD"] if pods else []), "IMAGE", "STATE", "IPS", "NODE",
               "CAPTURE"]
    rows = []
    for w in sorted(items, key=lambda w: (str(w.get("node", "")), _name(w))):
        pod = [f"{w.get('namespace', '')}/{w.get('pod_name', '')}" if w.get("pod_name") else ""]
        rows.append([
            output.short_id(str(w["id"])), _name(w), *(pod if pods else []),
            str(w.get("image", "")), str(w.get("state", "")), ",".join(w.get("ips") or []),
            str(w.get("node", "")),
            "yes" if w.get("cap_sniff") else f"no: {w.get('cap_sniff_reason') or 'unknown'}",
        ])
    output.table(columns, rows)


def _name(w: dict[str, Any]) -> str:
    return str(w.get("name", "")).lstrip("/")


def describe(w: dict[str, Any]) -> str:
    where = f" in {w['namespace']}/{w['pod_name']}" if w.get("pod_name") else ""
    return f"{output.short_id(str(w['id']))} {_name(w)}{where} on {w.get('node', '?')}"


def resolve(api: ApiClient, target: str) -> dict[str, Any]:
    """The one workload ``target`` names. The text goes to the server as typed: its resolver
    (controller/resolver.py: an id, a unique id prefix of 12 or more, a name; ambiguous names
    refused with the nodes) is the one rule for every interface."""
    target = target.strip()
    if not target:
        raise InvalidArgument("give a workload name or id (`podcap ps` lists them)")
    try:
        return api.workload(target)
    except NotFound:
        raise NotFound(f"no workload is named {target!r} or has an id starting with it; "
                       "`podcap ps` lists them") from None
