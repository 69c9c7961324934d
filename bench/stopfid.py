"""Figure 3: stop fidelity — of the packets sent in the last 200 ms before a stop, how many
reach the file.

A probe sends numbered UDP datagrams (with their send time) to container A every 1 ms. Each
capture filters on the probe port (so a ring never wraps, even under load), runs ``stop_run_s``
plus a random 0..``stop_jitter_s`` (tcpdump hands packets over in blocks retired at the latest
after 1 s, so where the stop falls in that second matters), and is stopped at ``t_stop``: podcap
through ``PATCH /v1/sniffer/stop/<id>`` (its agent sends SIGINT), neuvector-args with SIGKILL to
the process group, as NeuVector does. Two references show what a fix achieves, both plain
tcpdump with podcap's arguments: plus ``--immediate-mode`` (TPACKET_V2, no block delay), stopped
with SIGINT; and as is, drained before SIGINT (SIGUSR1 until tcpdump's captured + dropped reach
what the kernel had received at the stop). Probes sent in ``[t_stop - 200 ms, t_stop)`` are
looked up in the file. "Loaded" runs the same with iperf3 UDP (1400 B, max rate) from B to A
meanwhile.
"""

from __future__ import annotations

import itertools
import random
import shutil
import time
from pathlib import Path
from typing import Any

from bench.baselines import Tcpdump, neuvector_args
from bench.common import summary
from bench.context import Context
from bench.fidelity import podcap_argv
from bench.traffic import Iperf, Probe, files_records, pcap_records, probe_packets
from podcap import limits

PROBE_PORT = 7002
FILTER = f"udp dst port {PROBE_PORT}"
PODCAP = "podcap (SIGINT)"
NV = "neuvector-args (SIGKILL)"
IMMEDIATE = "tcpdump -U --immediate-mode (SIGINT)"
DRAIN = "tcpdump -U, drained, SIGINT"
SYSTEMS = (PODCAP, NV, IMMEDIATE, DRAIN)
_n = itertools.count()
_rng = random.Random(5)


def _run_time(ctx: Context) -> float:
    return ctx.cfg.stop_run_s + _rng.uniform(0.0, ctx.cfg.stop_jitter_s)


def _score(probe: Probe, got: dict[int, tuple[float, int]], t_ready_ns: int, t_stop_ns: int,
           window_ms: int) -> dict[str, Any]:
    sent = list(probe.sent)
    before = [s for s, t in sent if t < t_stop_ns]
    window = [s for s, t in sent if t_stop_ns - window_ms * 1_000_000 <= t < t_stop_ns]
    in_window = sum(1 for s in window if s in got)
    # Probes sent after the capture said it was listening and before the stop, that are not
    # in the file: what the stop (or a kernel drop) lost.
    span = [s for s, t in sent if t_ready_ns <= t < t_stop_ns]
    return {"lost_before_stop": sum(1 for s in span if s not in got),
            "sent_before_stop": len(before),
            "in_file_before_stop": sum(1 for s in before if s in got),
            "window_sent": len(window), "window_in_file": in_window,
            "window_pct": 100.0 * in_window / len(window) if window else float("nan"),
            "in_file_total": len(got)}


def podcap_once(ctx: Context, probe: Probe) -> dict[str, Any]:
    srv = ctx.server()
    a, _ = ctx.pair()
    cid = srv.v1_start(a.id, filter_expr=FILTER)
    t_ready = time.time_ns()
    time.sleep(_run_time(ctx))
    t_stop = time.time_ns()
    srv.v1_stop(cid)
    t_done = time.time_ns()
    cap = srv.final_stats(cid)
    data = srv.api_pcap(cid)
    srv.v1_delete(cid)
    got = probe_packets(pcap_records(data))
    stats = cap.get("stats") or {}
    row = {"system": PODCAP, "stop_ms": (t_done - t_stop) / 1e6,
           "captured": stats.get("captured"), "received": stats.get("received"),
           "dropped": stats.get("dropped"), "reason": cap.get("reason", "")}
    row.update(_score(probe, got, t_ready, t_stop, ctx.cfg.stop_window_ms))
    return row


def tcpdump_once(ctx: Context, probe: Probe, system: str) -> dict[str, Any]:
    a, _ = ctx.pair()
    d = ctx.sub(f"stop-{next(_n)}")
    if system == NV:
        args = neuvector_args(d, "0123456789abcdef", filter_expr=FILTER)
    else:
        mode = "imm" if system == IMMEDIATE else "U"
        args = podcap_argv(limits.BUFFER_KIB_DEFAULT, 0, mode, d)
        if "--" in args:  # podcap's argv ends with its own filter: the probe's joins it there
            from podcap.capture.command import capture_filter
            args = [*args[:args.index("--")], "--", capture_filter(FILTER)]
        else:
            args = [*args, "--", FILTER]
    td = Tcpdump(ctx.procs, a, args)
    td.wait_listening()
    t_ready = time.time_ns()
    ctx.record("3", f"[{system}] {td.command}")
    time.sleep(_run_time(ctx))
    t_stop = time.time_ns()
    stats: dict[str, Any] = {}
    if system == NV:
        td.kill()
    else:
        if system == DRAIN:
            td.drain()
        stats = td.interrupt().as_dict()
    t_done = time.time_ns()
    got = probe_packets(files_records(sorted(Path(d).iterdir())))
    shutil.rmtree(d, ignore_errors=True)
    row = {"system": system, "stop_ms": (t_done - t_stop) / 1e6, **stats}
    row.update(_score(probe, got, t_ready, t_stop, ctx.cfg.stop_window_ms))
    return row




def run(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    a, b = ctx.pair()
    ctx.server()
    ctx.record("3", "[podcap (SIGINT)] POST /v1/sniffer?f_workload=<A> "
               f'{{"sniffer": {{"file_number": 5, "file_size_mb": 2, "filter": "{FILTER}"}}}}'
               " ... PATCH /v1/sniffer/stop/<id>")
    probe = Probe(a.ip, PROBE_PORT, cfg.probe_hz).start()
    rows: list[dict[str, Any]] = []
    conditions = ["idle", "loaded"] if cfg.stop_load else ["idle"]
    try:
        time.sleep(0.2)
        for condition in conditions:
            iperf = load = None
            if condition == "loaded":
                iperf = Iperf(ctx.procs, a, 5201)
                per_stop = cfg.stop_run_s + cfg.stop_jitter_s + 3
                seconds = 10 + cfg.stop_repeats * len(SYSTEMS) * per_stop
                load = iperf.start_client(b, seconds, udp=True, payload=1400)
                ctx.record("3", "[load server] " + " ".join(iperf.server_argv))
                ctx.record("3", "[load] " + " ".join(iperf.client_argv(b, seconds, True, 1400)))
                time.sleep(0.5)
            try:
                for i in range(cfg.stop_repeats):
                    for system in SYSTEMS:
                        row = (podcap_once(ctx, probe) if system == PODCAP
                               else tcpdump_once(ctx, probe, system))
                        row.update({"condition": condition, "repeat": i})
                        rows.append(row)
            finally:
                if load is not None:
                    ctx.procs.end(load)
                if iperf is not None:
                    iperf.close()
    finally:
        probe.stop()
    groups = []
    for condition in conditions:
        for system in SYSTEMS:
            rs = [r for r in rows if r["system"] == system and r["condition"] == condition]
            groups.append({"system": system, "condition": condition, "n": len(rs),
                           "window_pct": summary([r["window_pct"] for r in rs]),
                           "window_sent": summary([r["window_sent"] for r in rs]),
                           "window_in_file": summary([r["window_in_file"] for r in rs]),
                           "lost_before_stop": summary([r["lost_before_stop"] for r in rs]),
                           "stop_ms": summary([r["stop_ms"] for r in rs])})
    podcap_rows = [r for r in rows if r["system"] == PODCAP]
    # Kernel count of packets received but never written. It includes packets that arrived
    # after the stop request (the probe keeps sending), so it is context, not the target.
    lost_received = [max(0, (r["received"] or 0) - (r["dropped"] or 0) - (r["captured"] or 0))
                     for r in podcap_rows]
    # The target: no probe sent before the stop is missing, beyond what the kernel dropped.
    met = bool(podcap_rows) and all(r["lost_before_stop"] <= (r["dropped"] or 0)
                                    for r in podcap_rows)
    return {"rows": rows, "groups": groups, "window_ms": cfg.stop_window_ms,
            "podcap_received_not_written": summary(lost_received),
            "podcap_lost_before_stop": summary([r["lost_before_stop"] for r in podcap_rows]),
            "target_met": met}
