"""Figure 2: start latency — command issued → first packet capturable.

A probe sends numbered UDP datagrams to container A every 1 ms for the whole figure. For each
start, t0 is taken just before the command (podcap: ``POST /v1/sniffer``; raw: spawning
``nsenter … tcpdump``); the first probe datagram in the resulting file has the kernel's capture
timestamp, so ``first packet − t0`` is the time until a packet was capturable (±1 ms). The
moment the command says it is ready (POST answered; tcpdump printed "listening on") is reported
too. podcap and raw alternate so drift hits both alike.

Each capture runs ``start_hold_s`` before it is stopped; that must exceed tcpdump's 1 s
TPACKET_V3 block timeout, or a capture stopped with SIGINT may hold no packet at all (see
figure 3).
"""

from __future__ import annotations

import itertools
import shutil
import time
from typing import Any

from bench.baselines import Tcpdump, raw_args
from bench.common import ratio, summary
from bench.context import Context
from bench.traffic import Probe, pcap_records, probe_packets

PROBE_PORT = 7001
_n = itertools.count()


def _first_probe_after(records: Any, t0: float) -> float | None:
    got = probe_packets(records)
    times = [ts for ts, _ in got.values() if ts >= t0 - 0.5]
    return min(times) - t0 if times else None


def podcap_once(ctx: Context, hold: float) -> dict[str, Any]:
    srv = ctx.server()
    a, _ = ctx.pair()
    t0 = time.time()
    cid = srv.v1_start(a.id)
    t_ready = time.time() - t0
    time.sleep(hold)
    srv.v1_stop(cid)
    data = srv.api_pcap(cid)
    srv.v1_delete(cid)
    first = _first_probe_after(pcap_records(data), t0)
    return {"system": "podcap", "ready_s": t_ready, "first_packet_s": first}


def raw_once(ctx: Context, hold: float) -> dict[str, Any]:
    a, _ = ctx.pair()
    d = ctx.sub(f"lat-{next(_n)}")
    out = d / "raw.pcap"
    td = Tcpdump(ctx.procs, a, raw_args(out))
    t0 = td.t_spawn
    ready = td.wait_listening()
    ctx.record("2", f"[raw] {td.command}")
    time.sleep(hold)
    td.interrupt()
    first = _first_probe_after(pcap_records(out), t0)
    shutil.rmtree(d, ignore_errors=True)
    return {"system": "raw", "ready_s": ready, "first_packet_s": first}


def run(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    a, _ = ctx.pair()
    ctx.server()  # started before the first measured start
    ctx.record("2", "[podcap] POST /v1/sniffer?f_workload=<A> "
               '{"sniffer": {"duration": 0, "file_number": 5, "file_size_mb": 2, "filter": ""}} '
               "... PATCH /v1/sniffer/stop/<id>; GET /api/captures/<id>/pcap")
    ctx.record("2", f"[probe] UDP from the host to <ip A>:{PROBE_PORT}, {cfg.probe_hz}/s, "
               "numbered, for the whole figure")
    probe = Probe(a.ip, PROBE_PORT, cfg.probe_hz).start()
    rows: list[dict[str, Any]] = []
    try:
        time.sleep(0.2)
        # One warm-up of each (page cache, imports, first docker inspect), not counted.
        podcap_once(ctx, cfg.start_hold_s)
        raw_once(ctx, cfg.start_hold_s)
        for i in range(cfg.start_repeats):
            order = (podcap_once, raw_once) if i % 2 == 0 else (raw_once, podcap_once)
            for fn in order:
                row = fn(ctx, cfg.start_hold_s)
                row["repeat"] = i
                rows.append(row)
    finally:
        probe.stop()

    def col(system: str, key: str) -> list[float]:
        return [r[key] * 1000 for r in rows if r["system"] == system and r[key] is not None]

    out: dict[str, Any] = {"rows": rows, "hold_s": cfg.start_hold_s, "probe_hz": cfg.probe_hz}
    for system in ("podcap", "raw"):
        out[system] = {"first_packet_ms": summary(col(system, "first_packet_s")),
                       "ready_ms": summary(col(system, "ready_s")),
                       "missing": sum(1 for r in rows
                                      if r["system"] == system and r["first_packet_s"] is None)}
    p, r = out["podcap"]["first_packet_ms"], out["raw"]["first_packet_ms"]
    out["ratio_p50"] = ratio(p["median"], r["median"])
    out["ratio_p95"] = ratio(p["p95"], r["p95"])
    pr, rr = out["podcap"]["ready_ms"], out["raw"]["ready_ms"]
    out["ready_ratio_p50"] = ratio(pr["median"], rr["median"])
    out["ready_ratio_p95"] = ratio(pr["p95"], rr["p95"])
    out["target_met"] = out["ratio_p50"] <= 2.0 and out["ratio_p95"] <= 2.0
    return out
