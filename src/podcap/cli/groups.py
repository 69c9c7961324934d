"""`podcap group ...`: capture groups (one selector, one capture per matching container on
every node, one merged pcapng). `podcap capture start --selector/--namespace` starts one too."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from podcap.cli import output, saving
from podcap.cli.client import ApiClient
from podcap.cli.ids import by_prefix
from podcap.cli.output import Format, OutputOption

app = typer.Typer(no_args_is_help=True)
Opt = typer.Option
IdArg = Annotated[str, typer.Argument(metavar="ID", help="Group id or a unique prefix of it "
                                      "(`podcap group ls`).")]
_WHOLE = re.compile(r"[0-9a-f]{24}")


def start_group(api: ApiClient, *, labels: str | None, namespace: str | None,
                workloads: list[str], fmt: Format, **spec: Any) -> None:
    """Start a group and print its id and members (what `capture start --selector` calls)."""
    body = {"labels": labels or "", "namespace": namespace or "", "workloads": workloads,
            **{k: v for k, v in spec.items() if v is not None}}
    group = dict(api.json("POST", "/api/capture-groups", json=body)["group"])
    if fmt is Format.json:
        output.emit_json({"group": group})
        return
    output.info(f"Capturing {len(group['members'])} container(s) of {group['selector_text']}; "
                "group id:")
    output.line(str(group["id"]))
    for m in group["members"]:
        output.info(f"  {m['if_name']} on {m['node']}: capture {m['capture_id'][:12]}")
    for s in group["skipped"]:
        output.info(f"  skipped {s['workload_name']}: {s['reason']}")


@app.command("start")
def start(
    ctx: typer.Context,
    selector: Annotated[str | None, Opt("--selector", "-l", help="Label selector, Kubernetes "
                                        "syntax: app=web,tier!=db, env in (a,b), !canary.")
                        ] = None,
    namespace: Annotated[str | None, Opt("--namespace", "-N", help="Only this namespace.")
                         ] = None,
    workload: Annotated[list[str] | None, Opt("--workload", "-W", metavar="NAME|ID",
                                              help="A workload to include (repeatable).")
                        ] = None,
    duration: Annotated[int | None, Opt("--duration", "-d", min=0,
                                        help="Seconds, 0 = until stopped.")] = None,
    bpf: Annotated[str | None, Opt("--filter", "-f", help="BPF filter for every member.")
                   ] = None,
    fmt: OutputOption = Format.table,
) -> None:
    """Start a group: every running container that matches, on every node.

    Containers that match later join. All given parts (labels, namespace, workloads) must
    hold."""
    start_group(ctx.obj.api, labels=selector, namespace=namespace, workloads=workload or [],
                fmt=fmt, duration=duration, filter=bpf)


@app.command("ls")
def ls(ctx: typer.Context, fmt: OutputOption = Format.table) -> None:
    """List capture groups, newest first."""
    groups = list(ctx.obj.api.json("GET", "/api/capture-groups")["groups"])
    if fmt is Format.json:
        output.emit_json({"groups": groups})
        return
    rows = [[output.short_id(str(g["id"])), str(g["selector_text"]), str(g["status"]),
             f"{g['running']}/{len(g['members'])}", str(len(g["skipped"])),
             str(g["stats"]["captured"]), output.size(g["stats"]["bytes"]),
             output.when(g["start_time"]), str(g.get("owner", ""))] for g in groups]
    output.table(["ID", "SELECTOR", "STATUS", "RUNNING", "SKIPPED", "PACKETS", "SIZE",
                  "STARTED", "OWNER"], rows)


@app.command("show")
def show(ctx: typer.Context, group_id: IdArg, fmt: OutputOption = Format.table) -> None:
    """A group and each of its members (and the containers it skipped, with the reason)."""
    api = ctx.obj.api
    g = _group(api, resolve(api, group_id))
    if fmt is Format.json:
        output.emit_json({"group": g})
        return
    output.fields([("id", g["id"]), ("selector", g["selector_text"]),
                   ("status", g["status"] + (f" ({g['stop_reason']})" if g["stop_reason"]
                                              else "")),
                   ("started", output.when(g["start_time"])),
                   ("stopped", output.when(g["stop_time"])),
                   ("packets", str(g["stats"]["captured"])),
                   ("dropped", str(g["stats"]["dropped"])),
                   ("size", output.size(g["stats"]["bytes"])), ("owner", g["owner"])])
    rows = [[str(m["if_name"]), str(m["node"]), output.short_id(str(m["capture_id"])),
             str(m["status"]), str((m["capture"] or {}).get("stats", {}).get("captured", 0)),
             output.when(m["joined"])] for m in g["members"]]
    rows += [[str(s["workload_name"]), str(s["node"]), "-", "skipped: " + str(s["reason"]),
              "-", "-"] for s in g["skipped"]]
    output.table(["MEMBER", "NODE", "CAPTURE", "STATUS", "PACKETS", "JOINED"], rows)


@app.command("stop")
def stop(ctx: typer.Context, group_id: IdArg) -> None:
    """Stop every member; the group takes no new members."""
    api = ctx.obj.api
    g = api.json("POST", f"/api/capture-groups/{resolve(api, group_id)}/stop")["group"]
    output.line(f"{g['id']} stopped: {g['stats']['captured']} packets in "
                f"{len(g['members'])} member(s)")


@app.command("rm")
def rm(ctx: typer.Context, group_id: IdArg) -> None:
    """Remove a group and its members' captures and files."""
    api = ctx.obj.api
    gid = resolve(api, group_id)
    api.json("DELETE", f"/api/capture-groups/{gid}")
    output.info(f"Removed group {gid}")


@app.command("get")
def get(
    ctx: typer.Context,
    group_id: IdArg,
    out: Annotated[str | None, Opt("--output", "-o", metavar="FILE",
                                   help="File or directory; '-' for stdout (`| wireshark -k -i "
                                   "-`). Default: the server's file name here.")] = None,
    force: Annotated[bool, Opt("--force", help="Overwrite an existing file.")] = False,
    follow: Annotated[bool, Opt("--follow", "-F", help="Keep streaming new packets until the "
                                "group stops (`-o - | wireshark -k -i -`).")] = False,
) -> None:
    """Download the group as ONE pcapng, merged by time, one interface per container."""
    api = ctx.obj.api
    gid = resolve(api, group_id)
    url = f"/api/capture-groups/{gid}/pcapng" + ("?follow=true" if follow else "")
    with api.stream(url) as response:
        if out == "-":
            saving.copy(response, sys.stdout.buffer, None, "stdout")
            sys.stdout.buffer.flush()
            return
        target = saving.target(out, saving.suggested_name(response, gid + ".pcapng"), force)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as sink:
                written = saving.copy(response, sink, None, target.name)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    output.info(f"Saved {target} ({output.size(written)}) at {time.strftime('%H:%M:%S')}")


def resolve(api: ApiClient, text: str) -> str:
    return by_prefix(text, _WHOLE, "group", "podcap group ls", lambda: [
        str(g["id"]) for g in api.json("GET", "/api/capture-groups")["groups"]])


def _group(api: ApiClient, gid: str) -> dict[str, Any]:
    return dict(api.json("GET", f"/api/capture-groups/{gid}")["group"])
