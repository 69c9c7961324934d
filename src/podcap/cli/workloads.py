"""`podcap ps`, and turning what a user types (a name or an id) into one workload."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from podcap.cli import output
from podcap.cli.client import ApiClient
from podcap.cli.output import Format, OutputOption
from podcap.errors import InvalidArgument, NotFound

MIN_ID_PREFIX = 4  # shorter prefixes match too much to be a deliberate choice


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
    """The one workload ``target`` names: an exact id, a name, or a unique id prefix.

    Names are not unique across nodes (or between a pod and its containers), so a name that
    matches several workloads is refused with the candidates, instead of guessing.
    """
    target = target.strip()
    if not target:
        raise InvalidArgument("give a workload name or id (`podcap ps` lists them)")
    matches = _matches(api.workloads(), target)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFound(f"no workload is named {target!r} or has an id starting with it; "
                       "`podcap ps` lists them")
    listing = "; ".join(describe(w) for w in matches)
    raise InvalidArgument(f"{target!r} matches {len(matches)} workloads: {listing}. "
                          "Give the id instead")


def _matches(items: list[dict[str, Any]], target: str) -> list[dict[str, Any]]:
    exact = [w for w in items if w.get("id") == target]
    if exact:
        return exact
    bare = target.lstrip("/")
    named = [w for w in items if bare in (_name(w), w.get("container_name"),
                                          f"{w.get('namespace')}/{w.get('pod_name')}")]
    if not named and len(target) >= MIN_ID_PREFIX:
        named = [w for w in items if str(w.get("id", "")).startswith(target)]
    return named
