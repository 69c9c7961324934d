"""`podcap recorder ...`: flight recorders (issue 21). A recorder keeps a ring of each matching
container's recent packets; a trigger freezes the rings into snapshots, which are ordinary
captures (`podcap capture get ID` downloads one)."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import typer

from podcap import limits
from podcap.cli import output
from podcap.cli.client import ApiClient
from podcap.cli.ids import by_prefix
from podcap.cli.output import Format, OutputOption
from podcap.errors import InvalidArgument

app = typer.Typer(no_args_is_help=True)
Opt = typer.Option
IdArg = Annotated[str, typer.Argument(metavar="ID|NAME", help="Recorder id, a unique prefix "
                                      "of it, or its name (`podcap recorder ls`).")]
_WHOLE = re.compile(r"[0-9a-f]{24}")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits and '-'.")],
    selector: Annotated[str | None, Opt("--selector", "-l", help="Label selector: "
                                        "app=web,tier!=db.")] = None,
    namespace: Annotated[str | None, Opt("--namespace", "-N", help="Only this namespace.")
                         ] = None,
    workload: Annotated[list[str] | None, Opt("--workload", "-W", metavar="NAME|ID",
                                              help="A workload to include (repeatable).")
                        ] = None,
    window: Annotated[int, Opt("--window", help="Seconds of history a snapshot keeps before "
                               "its trigger.")] = limits.RECORDER_WINDOW_S_DEFAULT,
    bytes_mb: Annotated[int, Opt("--bytes-mb", help="Ring size per container, MB (1,000,000 "
                                 "bytes).")] = limits.RECORDER_BYTES_MB_DEFAULT,
    after: Annotated[int, Opt("--after", help="Seconds after a trigger the snapshot keeps.")
                     ] = limits.RECORDER_AFTER_S_DEFAULT,
    cooldown: Annotated[int, Opt("--cooldown", help="Seconds per container between freezes.")
                        ] = limits.RECORDER_COOLDOWN_S_DEFAULT,
    max_snapshots: Annotated[int, Opt("--max-snapshots", help="Snapshots kept (oldest "
                                      "deleted first).")] = limits.RECORDER_SNAPSHOTS_DEFAULT,
    bpf: Annotated[str | None, Opt("--filter", "-f", help="BPF filter of the rings.")] = None,
    snaplen: Annotated[int | None, Opt("--snaplen", help="Bytes kept of each packet.")] = None,
    rate_pps: Annotated[int, Opt("--rate-pps", help="Freeze a member at this many packets/s "
                                 "(0: off).")] = 0,
    drops: Annotated[int, Opt("--drops-per-s", help="Freeze a member at this many kernel "
                              "drops/s (0: off).")] = 0,
    alert_label: Annotated[list[str] | None, Opt(
        "--alert-label", metavar="LABEL=FIELD", help="An alert label that names members, and "
        "the workload field it must equal (namespace, pod, container, name, node, id, "
        "label:KEY); repeatable. Default: namespace=namespace, pod=pod.")] = None,
    alertname: Annotated[list[str] | None, Opt("--alertname", help="Only alerts of this "
                                               "name (repeatable).")] = None,
    fmt: OutputOption = Format.table,
) -> None:
    """Create a recorder: every matching running container, on every node, records."""
    body: dict[str, Any] = {
        "name": name, "labels": selector or "", "namespace": namespace or "",
        "workloads": workload or [], "window_s": window, "bytes_mb": bytes_mb,
        "after_s": after, "cooldown_s": cooldown, "max_snapshots": max_snapshots,
        "filter": bpf or "", "rate_pps": rate_pps, "drops_per_s": drops,
        "alertnames": alertname or []}
    if snaplen is not None:
        body["snaplen"] = snaplen
    if alert_label:
        pairs = [a.split("=", 1) for a in alert_label]
        if any(len(p) != 2 for p in pairs):
            raise InvalidArgument("--alert-label takes LABEL=FIELD, e.g. pod=pod")
        body["alert_labels"] = dict(pairs)
    rec = dict(ctx.obj.api.json("POST", "/api/recorders", json=body)["recorder"])
    if fmt is Format.json:
        output.emit_json({"recorder": rec})
        return
    output.info(f"Recorder {rec['name']} records {len(rec['members'])} container(s) of "
                f"{rec['selector_text']}; id:")
    output.line(str(rec["id"]))


@app.command("ls")
def ls(ctx: typer.Context, fmt: OutputOption = Format.table) -> None:
    """List recorders."""
    recs = list(ctx.obj.api.json("GET", "/api/recorders")["recorders"])
    if fmt is Format.json:
        output.emit_json({"recorders": recs})
        return
    output.table(["ID", "NAME", "SELECTOR", "ENABLED", "MEMBERS", "SNAPSHOTS", "HELD",
                  "WINDOW", "AFTER", "OWNER"],
                 [[output.short_id(str(r["id"])), str(r["name"]), str(r["selector_text"]),
                   "yes" if r["enabled"] else "no", str(len(r["members"])),
                   str(len(r["snapshots"])),
                   output.size(r["bytes"]["rings"] + r["bytes"]["snapshots"]),
                   f"{r['window_s']} s", f"{r['after_s']} s", str(r["owner"])] for r in recs])


@app.command("show")
def show(ctx: typer.Context, recorder_id: IdArg, fmt: OutputOption = Format.table) -> None:
    """A recorder: its members, snapshots and last triggers."""
    api = ctx.obj.api
    r = _get(api, resolve(api, recorder_id))
    if fmt is Format.json:
        output.emit_json({"recorder": r})
        return
    output.fields([("id", r["id"]), ("name", r["name"]), ("selector", r["selector_text"]),
                   ("enabled", "yes" if r["enabled"] else "no"),
                   ("window", f"{r['window_s']} s, {r['bytes_mb']} MB per container"),
                   ("after", f"{r['after_s']} s"), ("cooldown", f"{r['cooldown_s']} s"),
                   ("snapshots kept", str(r["max_snapshots"])), ("owner", r["owner"])])
    # DROPPED: a ring runs below the workloads (--ring-priority), so at saturation it is the
    # one that drops, and says so here.
    output.table(["MEMBER", "NODE", "RING", "STATUS", "HELD", "PACKETS", "DROPPED"],
                 [[str(m["workload_name"]), str(m["node"]), output.short_id(m["capture_id"]),
                   str(m["status"]), output.size(m["bytes"]), str(m["captured"]),
                   str(m["dropped"])] for m in r["members"]]
                 + [[str(s["workload_name"]), "-", "-", "skipped: " + str(s["reason"]), "-",
                     "-", "-"] for s in r["skipped"] if s["workload_name"]])
    output.table(["SNAPSHOT", "WORKLOAD", "REASON", "TRIGGERED", "SIZE", "DROPPED", "STATUS"],
                 [[output.short_id(s["capture_id"]), str(s["workload_name"]), str(s["reason"]),
                   output.when(s["triggered"]), output.size(s["size"]),
                   str((s.get("stats") or {}).get("dropped", "-")), str(s["status"])]
                  for s in r["snapshots"]])
    output.table(["TRIGGER", "SOURCE", "WORKLOAD", "OUTCOME", "DETAIL"],
                 [[output.when(t["time"]), str(t["source"]), str(t["workload_name"]),
                   str(t["outcome"]), str(t["detail"])[:60]] for t in r["triggers"]])


@app.command("trigger")
def trigger(
    ctx: typer.Context, recorder_id: IdArg,
    workload: Annotated[list[str] | None, Opt("--workload", "-W", metavar="NAME|ID",
                                              help="Only this member (repeatable).")] = None,
    after: Annotated[int | None, Opt("--after", help="Seconds after now the snapshots keep "
                                     "(default: the recorder's).")] = None,
    wait: Annotated[bool, Opt("--wait/--no-wait", help="Wait until the snapshots can be "
                              "downloaded.")] = True,
) -> None:
    """Freeze the members' rings now: each becomes a snapshot (its capture id printed)."""
    api = ctx.obj.api
    rid = resolve(api, recorder_id)
    body: dict[str, Any] = {"workloads": workload or []}
    if after is not None:
        body["after_s"] = after
    answer = api.json("POST", f"/api/recorders/{rid}/trigger", json=body)
    for o in answer["outcomes"]:
        if o["outcome"] != "frozen":
            output.info(f"  {o['workload_name']}: {o['outcome']} {o['detail']}".rstrip())
    pending = list(answer["snapshots"])
    deadline = time.monotonic() + limits.RECORDER_AFTER_S_MAX + 30
    while wait and pending and time.monotonic() < deadline:
        time.sleep(0.5)
        pending = [c for c in pending if api.json("GET", f"/api/captures/{c}")["capture"][
            "status"] == "recording"]
    for cid in answer["snapshots"]:
        output.line(cid)


@app.command("rm")
def rm(ctx: typer.Context, recorder_id: IdArg) -> None:
    """Remove a recorder and its rings; its snapshots stay as captures."""
    api = ctx.obj.api
    rid = resolve(api, recorder_id)
    api.json("DELETE", f"/api/recorders/{rid}")
    output.info(f"Removed recorder {rid}")


def resolve(api: ApiClient, text: str) -> str:
    recs = None
    if not _WHOLE.fullmatch(text.strip()):
        recs = list(api.json("GET", "/api/recorders")["recorders"])
        named = [str(r["id"]) for r in recs if r["name"] == text.strip()]
        if named:
            return named[0]
    return by_prefix(text, _WHOLE, "recorder", "podcap recorder ls",
                     lambda: [str(r["id"]) for r in recs or []])


def _get(api: ApiClient, rid: str) -> dict[str, Any]:
    return dict(api.json("GET", f"/api/recorders/{rid}")["recorder"])
