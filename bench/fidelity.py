"""Figure 1: capture fidelity under iperf3 UDP at maximum rate, and the -B / -s / -U sweep.

Container A runs the iperf3 server(s) and is the captured workload; container B runs the
client(s) (``-u -b 0 -l <payload>``); a load "1400x2" is two senders at once (iperf3 is single
threaded: one sender cannot load two cores). Each run reports packets sent (iperf3's sender
count), and tcpdump's own counters: captured, received by filter, dropped by kernel. neuvector-args
is stopped with SIGKILL like NeuVector, so its counters are read with SIGUSR1 just before
the kill (NeuVector itself reports none).
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.baselines import Tcpdump, neuvector_args, raw_args
from bench.common import TCPDUMP, Box, ratio, summary
from bench.context import Context
from bench.traffic import Iperf, udp_sent_packets
from podcap import limits

Stopper = Callable[[], dict[str, int]]
_ports = itertools.count(5301)


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # "podcap" | "tcpdump" | "none"
    args: Callable[[Path], list[str]] | None = None
    sigkill: bool = False
    server_args: tuple[str, ...] = ()  # podcap: a server with these options, not the shared one


BEFORE = "podcap --capture-priority 0"  # tcpdump at the workloads' priority: the old default


MODES = {"U": "-U", "noU": "no -U", "imm": "-U --immediate-mode"}


def podcap_argv(buffer_kib: int, snaplen: int, mode: str, out_dir: Path) -> list[str]:
    """tcpdump's arguments exactly as podcap's agent builds them (minus the tcpdump path),
    as they are ("noU": podcap writes without -U), with -U added ("U"), or with -U and
    --immediate-mode added ("imm")."""
    try:
        from podcap.capture.command import tcpdump_args
        from podcap.model import CaptureSpec
        argv = tcpdump_args(CaptureSpec(buffer_kib=buffer_kib, snaplen=snaplen), out_dir)[1:]
    except ImportError:  # the module moved: keep the shape it had when this was written
        argv = ["-i", "any", "-n", "-Z", "root", "-B", str(buffer_kib), "-C", "2",
                "-W", "5", "-w", str(out_dir / "capture.pcap")]
        if snaplen:
            argv[1:1] = ["-s", str(snaplen)]
    argv = [a for a in argv if a != "-U"]
    if mode in ("U", "imm"):
        argv.insert(argv.index("-w"), "-U")
    if mode == "imm" and "--immediate-mode" not in argv:
        argv.insert(argv.index("-w"), "--immediate-mode")
    return argv


def main_variants(ctx: Context) -> list[Variant]:
    b = limits.BUFFER_KIB_DEFAULT
    before = [Variant(BEFORE, "podcap", server_args=("--capture-priority", "0"))] \
        if ctx.cfg.fid_priority_before else []
    return [
        Variant("podcap", "podcap"), *before,
        Variant("raw", "tcpdump", lambda d: raw_args(d / "raw.pcap", extra=["-C", "2", "-W", "5"])),
        Variant(f"raw -B {b}", "tcpdump",
                lambda d: raw_args(d / "raw.pcap", buffer_kib=b, extra=["-C", "2", "-W", "5"])),
        Variant("neuvector-args", "tcpdump", lambda d: neuvector_args(d, "0123456789abcdef"),
                sigkill=True),
    ]


def sweep_variants(ctx: Context, payload: int) -> list[Variant]:
    """Every buffer with and without -U; --immediate-mode and other snap lengths at the
    default buffer only (one axis at a time keeps the sweep inside the time budget)."""
    cfg, default = ctx.cfg, limits.BUFFER_KIB_DEFAULT
    points: list[tuple[int, int, str]] = [
        (buf, 0, mode) for buf in cfg.sweep_buffers_kib for mode in ("U", "noU")
        if mode in cfg.sweep_modes]
    if "imm" in cfg.sweep_modes:
        points.append((default, 0, "imm"))
    points += [(default, snap, "U") for snap in cfg.sweep_snaplens if 0 < snap < payload + 100]
    return [Variant(f"-B {buf} -s {snap or 262144} {MODES[mode]}", "tcpdump",
                    _sweep_args(buf, snap, mode)) for buf, snap, mode in points]


def _sweep_args(buf: int, snap: int, mode: str) -> Callable[[Path], list[str]]:
    return lambda d: podcap_argv(buf, snap, mode, d)


def _start(ctx: Context, v: Variant, a: Box, run_dir: Path) -> tuple[Stopper, str]:
    if v.kind == "none":
        return (lambda: {"captured": 0, "received": 0, "dropped": 0}), ""
    if v.kind == "podcap":
        srv = ctx.server_with(*v.server_args) if v.server_args else ctx.server()
        cid = srv.v1_start(a.id, file_number=limits.FILE_NUMBER_DEFAULT,
                           file_size_mb=limits.FILE_SIZE_MB_DEFAULT)
        args = str(srv.v1_info(cid).get("args", ""))

        def stop_podcap() -> dict[str, int]:
            srv.v1_stop(cid)
            cap = srv.final_stats(cid)
            stats = cap.get("stats") or {}
            srv.v1_delete(cid)
            return {k: int(stats.get(k, 0)) for k in ("captured", "received", "dropped")}

        return stop_podcap, f"POST /v1/sniffer?f_workload=<A> -> agent runs: {args}"
    assert v.args is not None
    td = Tcpdump(ctx.procs, a, v.args(run_dir))
    td.wait_listening()

    def stop_tcpdump() -> dict[str, int]:
        if v.sigkill:
            stats = td.stats_now()
            td.kill()
        else:
            stats = td.interrupt()
        return stats.as_dict()

    return stop_tcpdump, td.command


def parse_load(load: str) -> tuple[int, int]:
    """"1400x2" -> (1400-byte payload, 2 iperf3 senders at once)."""
    payload, _, streams = load.partition("x")
    return int(payload), int(streams or 1)


def load_label(load: str) -> str:
    payload, streams = parse_load(load)
    return f"{payload} B × {streams} sender{'s' if streams > 1 else ''}"


def run_one(ctx: Context, v: Variant, load: str, seconds: int, figure: str) -> dict[str, Any]:
    a, b = ctx.pair()
    payload, streams = parse_load(load)
    run_dir = ctx.sub(f"fid-{next(_ports)}")
    servers = [Iperf(ctx.procs, a, next(_ports)) for _ in range(streams)]
    try:
        stop, command = _start(ctx, v, a, run_dir)
        if command:
            ctx.record(figure, f"[{v.name}] {command}")
        try:
            with ThreadPoolExecutor(streams) as pool:
                results = list(pool.map(
                    lambda it: it.run_client(b, seconds, udp=True, payload=payload), servers))
            for it in servers:
                ctx.record(figure, "[load server] " + " ".join(it.server_argv))
                ctx.record(figure, "[load] " + " ".join(it.client_argv(b, seconds, True, payload)))
            time.sleep(ctx.cfg.fid_drain_s)
        finally:
            stats = stop()
    finally:
        for it in servers:
            it.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    sent = sum(udp_sent_packets(r) for r in results)
    return {"variant": v.name, "load": load, "payload": payload, "streams": streams,
            "sent": sent, **stats,
            "capture_pct": 100.0 * ratio(stats["captured"], sent) if v.kind != "none" else None,
            "drop_pct": 100.0 * ratio(stats["dropped"], stats["received"])
            if stats["received"] else 0.0}


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["load"], r["variant"]), []).append(r)
    out = []
    for (load, variant), rs in groups.items():
        out.append({"variant": variant, "load": load, "label": load_label(load), "n": len(rs),
                    "sent": summary([r["sent"] for r in rs]),
                    "captured": summary([r["captured"] for r in rs]),
                    "dropped": summary([r["dropped"] for r in rs]),
                    "drop_pct": summary([r["drop_pct"] for r in rs]),
                    "capture_pct": summary([r["capture_pct"] for r in rs
                                            if r["capture_pct"] is not None])})
    return out


def run(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    loadavg_start = os.getloadavg()
    rows: list[dict[str, Any]] = []
    variants = main_variants(ctx)
    for load in cfg.fid_loads:
        if cfg.fid_reference:
            rows.append(run_one(ctx, Variant("no capture", "none"), load, cfg.fid_seconds, "1"))
        for _ in range(cfg.fid_repeats):
            for v in variants:  # interleaved, so drift over time hits every variant alike
                rows.append(run_one(ctx, v, load, cfg.fid_seconds, "1"))
    sweep_rows: list[dict[str, Any]] = []
    if cfg.sweep:
        for load in cfg.sweep_loads:
            points = sweep_variants(ctx, parse_load(load)[0])
            for _ in range(cfg.sweep_repeats):
                for v in points:
                    sweep_rows.append(run_one(ctx, v, load, cfg.sweep_seconds, "1-sweep"))
    main = aggregate(rows)
    targets = []
    for load in cfg.fid_loads:
        by = {g["variant"]: g for g in main if g["load"] == load}
        pc, nv = by["podcap"]["drop_pct"], by["neuvector-args"]["drop_pct"]
        raw_b = by[f"raw -B {limits.BUFFER_KIB_DEFAULT}"]["drop_pct"]
        targets.append({
            "load": load, "label": load_label(load),
            "podcap_vs_nv": ratio(pc["median"], nv["median"]),
            "tenth_of_nv": pc["median"] <= nv["median"] / 10 if nv["median"] > 0
            else pc["median"] == 0,
            "no_worse_than_raw_same_buffer": pc["median"] <= raw_b["max"],
            "before_vs_nv": ratio(by[BEFORE]["drop_pct"]["median"], nv["median"])
            if BEFORE in by else None,
        })
    return {"rows": rows, "groups": main, "sweep_rows": sweep_rows,
            "sweep": aggregate(sweep_rows), "targets": targets,
            "tcpdump": TCPDUMP, "buffer_default_kib": limits.BUFFER_KIB_DEFAULT,
            "capture_nice": limits.CAPTURE_NICE, "loadavg_start": loadavg_start,
            "loadavg_end": os.getloadavg()}
