"""`podcap capture ...`: start, list, show, stop and remove captures (download: ``download``)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from podcap import limits
from podcap.cli import groups, output, spec_options, workloads
from podcap.cli import summary as insight
from podcap.cli.download import get
from podcap.cli.ids import resolve
from podcap.cli.live import follow, live
from podcap.cli.netstate import netstate
from podcap.cli.output import Format, OutputOption
from podcap.errors import InvalidArgument

app = typer.Typer(no_args_is_help=True)
app.command("get")(get)
app.command("netstate")(netstate)
app.command("live")(live)
app.command("follow")(follow)
Opt = typer.Option
IdArg = Annotated[str, typer.Argument(metavar="ID", help="Capture id or a unique prefix of it "
                                      "(`podcap capture ls`).")]


@app.command("start")
def start(
    ctx: typer.Context,
    target: Annotated[str | None, typer.Argument(metavar="NAME|ID", help="Workload name or id "
                                                 "(`podcap ps`).")] = None,
    duration: Annotated[int | None, spec_options.option("duration")] = None,
    file_number: Annotated[int | None, spec_options.option("file_number")] = None,
    file_size_mb: Annotated[int | None, spec_options.option("file_size_mb")] = None,
    filter: Annotated[str | None, spec_options.option("filter")] = None,
    snaplen: Annotated[int | None, spec_options.option("snaplen")] = None,
    buffer_kib: Annotated[int | None, spec_options.option("buffer_kib")] = None,
    wait: Annotated[bool, Opt(
        "--wait", "-w", help="Stay until the capture ends; Ctrl-C stops it.")] = False,
    selector: Annotated[str | None, Opt(
        "--selector", "-l", help="Label selector (app=web,tier!=db): a capture group of every "
        "matching container on every node (`podcap group`).")] = None,
    namespace: Annotated[str | None, Opt(
        "--namespace", "-N", help="With or without --selector: a group of that namespace.")
    ] = None,
    fmt: OutputOption = Format.table,
) -> None:
    """Start capturing a workload. Prints the capture id (the whole record with -o json).
    With --selector/--namespace: a capture group (NAME|ID, when given, narrows it)."""
    spec = spec_options.values(locals())
    api = ctx.obj.api
    if selector or namespace:
        groups.start_group(api, labels=selector, namespace=namespace,
                           workloads=[target] if target else [], fmt=fmt, **spec)
        return
    if not target:
        raise InvalidArgument("give a workload (NAME|ID), or --selector/--namespace for a group")
    workload = workloads.resolve(api, target)
    cap = api.start(str(workload["id"]), **spec)
    if fmt is Format.table:
        output.info(f"Capturing {workloads.describe(workload)}; capture id:")
        output.line(str(cap["id"]))
    if wait:
        cap = _wait(api, cap)
    if fmt is Format.json:
        output.emit_json({"capture": cap})


def _wait(api: Any, cap: dict[str, Any]) -> dict[str, Any]:
    """Follow a running capture's counters until it ends; Ctrl-C stops it like tcpdump's."""
    try:
        with output.err_console.status("") as status:
            while cap["status"] == "running":
                stats = cap.get("stats") or {}
                status.update(f"{stats.get('captured', 0)} packets, "
                              f"{output.size(cap.get('size'))} (Ctrl-C stops)")
                time.sleep(limits.STATS_INTERVAL_S)
                cap = api.capture(cap["id"])
    except KeyboardInterrupt:
        cap = api.stop(cap["id"])
    output.info(_summary(cap))
    return cap


def _summary(cap: dict[str, Any]) -> str:
    stats = cap.get("stats") or {}
    reason = f" ({cap['reason']})" if cap.get("reason") else ""
    return (f"{cap['id']} {cap['status']}{reason}: {stats.get('captured', 0)} packets captured, "
            f"{stats.get('dropped', 0)} dropped by kernel, {output.size(cap.get('size'))}")


@app.command("ls")
def ls(
    ctx: typer.Context,
    workload: Annotated[str | None, Opt("--workload", "-W", metavar="NAME|ID",
                                        help="Only captures of this workload.")] = None,
    fmt: OutputOption = Format.table,
) -> None:
    """List captures, newest first."""
    api = ctx.obj.api
    wid = str(workloads.resolve(api, workload)["id"]) if workload else None
    items = api.captures(wid)
    output.unreachable(api.unreachable, "their captures show their last known state")
    if fmt is Format.json:
        output.emit_json({"captures": items, "unreachable": api.unreachable})
        return
    rows = []
    for c in items:
        stats = c.get("stats") or {}
        end = c.get("stop_time") or time.time()
        rows.append([
            output.short_id(str(c["id"])), str(c.get("workload_name", "")),
            str(c.get("node", "")),
            str(c.get("status", "")) + (" (last known)" if c.get("stale") else ""),
            str(stats.get("captured", 0)),
            str(stats.get("dropped", 0)), output.size(c.get("size")),
            output.when(c.get("start_time")),
            output.span(end - c["start_time"]) if c.get("start_time") else "-",
            str(c.get("reason", "")),
        ])
    output.table(["ID", "WORKLOAD", "NODE", "STATUS", "PACKETS", "DROPPED", "SIZE", "STARTED",
                  "ELAPSED", "REASON"], rows)


@app.command("show")
def show(ctx: typer.Context, capture_id: IdArg, fmt: OutputOption = Format.table,
         summary: Annotated[bool, Opt("--summary", help="What the files hold: conversations, "
                                      "protocols, DNS and TLS names, timeline.")] = False,
         top: Annotated[int, Opt("--top", min=1, max=limits.INSIGHT_CONVERSATIONS_MAX,
                                 help="With --summary: conversations and names listed.")]
         = limits.INSIGHT_TOP_DEFAULT) -> None:
    """Everything about one capture: counters, spec, tcpdump's arguments."""
    api = ctx.obj.api
    if summary:
        insight.show(api, resolve(api, capture_id), fmt, top)
        return
    cap = api.capture(resolve(api, capture_id))
    if fmt is Format.json:
        output.emit_json({"capture": cap})
        return
    output.fields(_fields(cap))


def _fields(c: dict[str, Any]) -> list[tuple[str, str]]:
    stats, spec = c.get("stats") or {}, c.get("spec") or {}
    pod = f"{c.get('namespace')}/{c.get('pod_name')}" if c.get("pod_name") else "-"
    end = c.get("stop_time") or time.time()
    return [
        ("id", str(c["id"])),
        ("workload", f"{c.get('workload_name', '')} ({c.get('workload_id', '')})"),
        ("pod", pod),
        ("node", str(c.get("node", ""))),
        ("status", str(c.get("status", ""))),
        ("reason", str(c.get("reason") or "-")),
        ("started", output.when(c.get("start_time"))),
        ("stopped", output.when(c.get("stop_time"))),
        ("elapsed", output.span(end - c["start_time"]) if c.get("start_time") else "-"),
        ("deadline", output.when(c.get("deadline"))),
        ("captured", f"{stats.get('captured', 0)} packets"),
        ("received", f"{stats.get('received', 0)} packets by filter"),
        ("dropped", f"{stats.get('dropped', 0)} packets by kernel"),
        ("on disk", f"{output.size(c.get('size'))} in {c.get('file_number', 0)} file(s)"),
        ("ring", f"{spec.get('file_number', '?')} x {spec.get('file_size_mb', '?')} MB"),
        ("duration", f"{spec.get('duration')} s" if spec.get("duration") else "until stopped"),
        ("filter", str(spec.get("filter") or "-")),
        ("snaplen", str(spec.get("snaplen") or "whole packets")),
        ("buffer", f"{spec.get('buffer_kib', '?')} KiB"),
        ("tcpdump", str(c.get("args") or "-")),
        ("owner", str(c.get("owner") or "-")),
    ]


@app.command("stop")
def stop(ctx: typer.Context, capture_id: IdArg, fmt: OutputOption = Format.table) -> None:
    """Stop a capture; tcpdump flushes and reports its final counters."""
    api = ctx.obj.api
    cap = api.stop(resolve(api, capture_id))
    if fmt is Format.json:
        output.emit_json({"capture": cap})
    else:
        output.line(_summary(cap))


@app.command("rm")
def rm(ctx: typer.Context, capture_id: IdArg) -> None:
    """Remove a capture and its files."""
    api = ctx.obj.api
    full = resolve(api, capture_id)
    api.remove(full)
    output.info(f"Removed {full}")
