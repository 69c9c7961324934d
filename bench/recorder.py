"""Figure 13: the flight recorder (issue 21) — what recording costs, and what a snapshot holds.

Everything runs on a `podcap controller` with one real `podcap agent` (bench/cluster.py's
``Bed``; Docker on this machine), so the agent's CPU is its own process's and a snapshot is
downloaded through the controller as a user would.

(a) *Cost of recording*: figure 1's method (iperf3 UDP at full rate, container B → A) while an
    ordinary podcap capture of A with default settings measures; runs alternate without and
    with a recorder whose ring records A (no filter: it takes every packet too). The drops are
    the measuring capture's tcpdump counters (dropped ÷ received); the ring's own counters over
    the load are shown beside. Target: with ≤ without + 0.1 points.
(b) *Idle members*: ``IDLE_MEMBERS`` idle busybox containers; the agent's CPU (utime + stime
    ÷ wall, % of one core) over ``IDLE_S`` without a recorder, then with one recorder whose
    rings record all of them. Target: ≤ 2 % of a core with the members.
(c) *Trigger → snapshot downloadable*: a probe sends numbered UDP datagrams to A at
    ``PROBE_HZ``; a recorder (filter on the probe port, window ``WINDOW_S``, after period
    ``AFTER_S``) records A. Each trigger (``POST /api/recorders/{id}/trigger``, once the ring
    has recorded a whole window) is timed until ``GET /api/captures/{id}/pcap`` of the
    snapshot has returned; minus the after period. Target ≤ 2 s.
(d) *The window in the snapshot*: a plain tcpdump (the reference, same filter) runs in A's
    netns all along. For each snapshot, the probe datagrams the reference captured between
    (trigger answered − window) and (trigger sent + after period) are looked up in the
    snapshot, read back with dpkt. Target: 100 %.

Run it alone: ``python -m bench --only recorder`` (``--smoke`` for tiny sizes).
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from contextlib import ExitStack
from typing import Any

import httpx

from bench.baselines import Tcpdump, raw_args
from bench.cluster import Bed, _idle_window, cpu_seconds
from bench.common import Box, ratio, summary, wait_until
from bench.context import Context
from bench.traffic import Iperf, Probe, pcap_records, probe_packets, udp_sent_packets
from podcap import limits

_ports = itertools.count(5501)
PROBE_PORT = 7013

# Sizes (smoke in brackets).
SAT_LOAD = (1400, 1)  # payload bytes, iperf3 senders: figure 1's one-sender load
SAT_SECONDS, SAT_SECONDS_SMOKE = 8, 1
SAT_REPEATS_SMOKE = 1
IDLE_MEMBERS, IDLE_MEMBERS_SMOKE = 50, 3
IDLE_S, IDLE_S_SMOKE = 30.0, 1.0
TRIGGERS, TRIGGERS_SMOKE = 5, 1
WINDOW_S, WINDOW_S_SMOKE = 10, 2
AFTER_S, AFTER_S_SMOKE = 2, 1
PROBE_HZ = 200
QUOTAS_OFF = {"PODCAP_QUOTA_USER_CAPTURES": "0", "PODCAP_QUOTA_USER_BUFFER_BYTES": "0",
              "PODCAP_QUOTA_NAMESPACE_CAPTURES": "0", "PODCAP_QUOTA_NAMESPACE_BUFFER_BYTES": "0"}


def _sizes(ctx: Context) -> dict[str, Any]:
    s = ctx.cfg.smoke
    return {"sat_seconds": SAT_SECONDS_SMOKE if s else SAT_SECONDS,
            "sat_repeats": SAT_REPEATS_SMOKE if s else ctx.cfg.rec_sat_repeats,
            "idle_members": IDLE_MEMBERS_SMOKE if s else IDLE_MEMBERS,
            "idle_s": IDLE_S_SMOKE if s else IDLE_S,
            "triggers": TRIGGERS_SMOKE if s else TRIGGERS,
            "window_s": WINDOW_S_SMOKE if s else WINDOW_S,
            "after_s": AFTER_S_SMOKE if s else AFTER_S}


# --------------------------------------------------------------------------------------------
# The recorder API


def _check(r: httpx.Response) -> dict[str, Any]:
    if r.status_code >= 400:
        raise RuntimeError(f"{r.request.method} {r.request.url.path} -> {r.status_code}: "
                           f"{r.text[:500]}")
    return dict(r.json()) if r.content else {}


def _create(bed: Bed, ctx: Context, **body: Any) -> str:
    ctx.record("13", f"POST /api/recorders {body}")
    return str(_check(bed.http.post("/api/recorders", json=body))["recorder"]["id"])


def _members(bed: Bed, rid: str, n: int, timeout: float = 60.0,
             not_in: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The recorder's members once ``n`` record (none of them a ring in ``not_in``)."""
    def ready() -> list[dict[str, Any]] | None:
        ms = _check(bed.http.get(f"/api/recorders/{rid}"))["recorder"]["members"]
        ok = len(ms) == n and all(m["status"] == "recording" and m["capture_id"] not in not_in
                                  for m in ms)
        return ms if ok else None

    try:
        return list(wait_until(ready, timeout=timeout, interval=0.1, what=f"{n} members"))
    except TimeoutError as exc:  # say why: the recorder lists what it skipped
        view = _check(bed.http.get(f"/api/recorders/{rid}"))["recorder"]
        raise TimeoutError(f"{exc}: {len(view['members'])} recording; skipped "
                           f"{view['skipped'][:3]}") from None


def _remove(bed: Bed, rid: str) -> None:
    r = bed.http.delete(f"/api/recorders/{rid}")
    if r.status_code not in (204, 404):
        _check(r)


# --------------------------------------------------------------------------------------------
# (a) the cost of recording at saturation


ARMS = ("capture alone", "capture + recorder", "capture + a second capture", "ring alone")


def _saturation_once(ctx: Context, bed: Bed, aid: str, arm: str,
                     seconds: int) -> dict[str, Any]:
    """One load on A: the measuring capture's counters (the ring's, for "ring alone"), and
    the ring's or the second capture's beside them (their deltas over the load)."""
    a, b = ctx.pair()
    payload, streams = SAT_LOAD
    servers = [Iperf(ctx.procs, a, next(_ports)) for _ in range(streams)]
    rid, other, cid = "", "", ""
    try:
        if arm in ("capture + recorder", "ring alone"):
            rid = _create(bed, ctx, name=f"bench-sat-{secrets.token_hex(3)}", workloads=[a.id],
                          window_s=30, after_s=0, cooldown_s=0)
            other = _members(bed, rid, 1)[0]["capture_id"]
        elif arm == "capture + a second capture":
            other = str(bed.start(a.id, aid)["id"])
        if arm != "ring alone":
            cid = str(bed.start(a.id, aid)["id"])
        other0 = bed.capture(other)["stats"] if other else {}  # A is idle until the load
        results = [it.run_client(b, seconds, udp=True, payload=payload) for it in servers]
        for it in servers:
            ctx.record("13", "[load] " + " ".join(it.client_argv(b, seconds, True, payload)))
        time.sleep(ctx.cfg.fid_drain_s)
        final: dict[str, Any] = {}
        if cid:
            bed.stop(cid)
            final = wait_until(lambda: (c := bed.capture(cid))["status"] != "running" and c,
                               timeout=30, interval=0.05, what="the capture's final counters")
            bed.delete(cid)
        other_stats = {}
        if other:  # its counters, read by the agent once a second, once they cover the load
            sent, deadline = sum(udp_sent_packets(r) for r in results), time.monotonic() + 3
            while True:  # datagrams lost on the way never arrive: 3 s at most, then as is
                now = bed.capture(other)["stats"]
                if now.get("received", 0) - other0.get("received", 0) >= sent or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            other_stats = {k: int(now.get(k, 0)) - int(other0.get(k, 0))
                           for k in ("captured", "received", "dropped")}
    finally:
        for it in servers:
            it.close()
        if rid:
            _remove(bed, rid)
        elif other:
            bed.delete(other)
    stats = final.get("stats") or other_stats
    received, dropped = int(stats.get("received", 0)), int(stats.get("dropped", 0))
    return {"arm": arm, "sent": sum(udp_sent_packets(r) for r in results),
            "captured": int(stats.get("captured", 0)), "received": received,
            "dropped": dropped, "drop_pct": 100.0 * ratio(dropped, received),
            "other": other_stats if cid else {},
            "other_drop_pct": 100.0 * ratio(other_stats.get("dropped", 0),
                                            other_stats.get("received", 0))
            if cid and other_stats.get("received") else None}


def saturation_part(ctx: Context, beds: list[tuple[list[int], Bed, str]],
                    sizes: dict[str, Any]) -> list[dict[str, Any]]:
    """The arms on each bed's agent ((capture, ring) nice, bed, agent id), all interleaved:
    drift over time hits every arm and every agent alike."""
    rows: list[list[dict[str, Any]]] = [[] for _ in beds]
    for _ in range(sizes["sat_repeats"]):
        for arm in ARMS:
            for i, (_, bed, aid) in enumerate(beds):
                rows[i].append(_saturation_once(ctx, bed, aid, arm, sizes["sat_seconds"]))
    out = []
    for (priority, _, _), rs in zip(beds, rows, strict=True):
        drops = {arm: summary([r["drop_pct"] for r in rs if r["arm"] == arm]) for arm in ARMS}
        alone = drops["capture alone"]["median"]
        out.append({"rows": rs, "load": f"{SAT_LOAD[0]} B × {SAT_LOAD[1]} sender",
                    "drop_pct": drops, "priority": priority,
                    "target_met": drops["capture + recorder"]["median"] <= alone + 0.1,
                    "ring_target_met": drops["ring alone"]["median"] <= alone + 0.1})
    return out


# --------------------------------------------------------------------------------------------
# (b) the agent with idle members


def idle_part(ctx: Context, bed: Bed, sizes: dict[str, Any]) -> dict[str, Any]:
    tag = secrets.token_hex(4)
    n = sizes["idle_members"]
    boxes: list[Box] = [ctx.boxes.run("rec-idle", 1800, labels={"podcap-bench-rec": tag})
                        for _ in range(n)]
    agent_pid, controller = bed.agents[0].proc.pid, bed.controller_pid
    rid = ""
    try:
        time.sleep(0.2 if ctx.cfg.smoke else 2.0)  # the new containers listed and settled
        c0 = cpu_seconds(controller)
        before = _idle_window(agent_pid, sizes["idle_s"])
        before["controller_cpu_pct"] = 100 * (cpu_seconds(controller) - c0) / before["seconds"]
        t = time.monotonic()
        rid = _create(bed, ctx, name=f"bench-idle-{tag}", labels=f"podcap-bench-rec={tag}",
                      window_s=60, bytes_mb=2, cooldown_s=0)
        _members(bed, rid, n, timeout=300)
        joined_s = time.monotonic() - t
        time.sleep(0.5 if ctx.cfg.smoke else 3.0)  # the starts' own work is over
        c0 = cpu_seconds(controller)
        during = _idle_window(agent_pid, sizes["idle_s"])
        during["controller_cpu_pct"] = 100 * (cpu_seconds(controller) - c0) / during["seconds"]
    finally:
        if rid:
            _remove(bed, rid)
        for box in boxes:
            ctx.boxes.remove(box.id)
    return {"members": n, "joined_s": joined_s, "without": before, "with": during,
            "target_met": during["cpu_pct"] <= 2.0}


# --------------------------------------------------------------------------------------------
# (c) and (d): triggers, and what their snapshots hold


def _trigger_once(bed: Bed, rid: str, ring: dict[str, Any], window: int,
                  after: int) -> dict[str, Any]:
    wait = ring["since"] + window + 0.5 - time.time()  # a whole window recorded
    if wait > 0:
        time.sleep(wait)
    cid = ring["capture_id"]
    t0 = time.time()
    answer = _check(bed.http.post(f"/api/recorders/{rid}/trigger", json={}))
    t1 = time.time()
    if answer["snapshots"] != [cid]:
        raise RuntimeError(f"trigger froze {answer}, expected ring {cid}")
    wait_until(lambda: bed.capture(cid)["status"] == "stopped", timeout=after + 30,
               interval=0.02, what="the snapshot stopped")
    stopped = time.time()
    r = bed.http.get(f"/api/captures/{cid}/pcap")
    if r.status_code != 200:
        raise RuntimeError(f"snapshot {cid}: GET pcap -> {r.status_code}: {r.text[:300]}")
    downloaded = time.time()
    return {"capture_id": cid, "t0": t0, "t1": t1, "stopped_s": stopped - t0 - after,
            "downloadable_s": downloaded - t0 - after, "pcap": r.content,
            "size": len(r.content)}


def window_part(ctx: Context, bed: Bed, sizes: dict[str, Any]) -> dict[str, Any]:
    a, _ = ctx.pair()
    window, after = sizes["window_s"], sizes["after_s"]
    out_dir = ctx.sub("rec-window")
    flt = ["udp", "port", str(PROBE_PORT)]
    ref = Tcpdump(ctx.procs, a, raw_args(out_dir / "ref.pcap", extra=flt))
    ref.wait_listening()
    ctx.record("13", f"[reference] {ref.command}")
    ctx.record("13", f"[probe] {PROBE_HZ} UDP datagrams/s host -> <ip A>:{PROBE_PORT}")
    probe = Probe(a.ip, PROBE_PORT, hz=PROBE_HZ).start()
    rid = ""
    shots: list[dict[str, Any]] = []
    try:
        rid = _create(bed, ctx, name=f"bench-win-{secrets.token_hex(3)}", workloads=[a.id],
                      window_s=window, after_s=after, cooldown_s=0, bytes_mb=2,
                      max_snapshots=sizes["triggers"] + 1, filter=" ".join(flt))
        seen: frozenset[str] = frozenset()
        for _ in range(sizes["triggers"]):
            ring = _members(bed, rid, 1, not_in=seen)[0]
            shots.append(_trigger_once(bed, rid, ring, window, after))
            seen = seen | {ring["capture_id"]}
    finally:
        probe.stop()
        time.sleep(0.2)
        ref_stats = ref.interrupt()
        if rid:
            _remove(bed, rid)
    reference = probe_packets(pcap_records(out_dir / "ref.pcap"))
    rows = []
    for shot in shots:
        lo, hi = shot["t1"] - window, shot["t0"] + after
        in_ref = {seq for seq, (ts, _) in reference.items() if lo <= ts <= hi}
        snap = probe_packets(pcap_records(shot.pop("pcap")))
        sent = sum(1 for _, ns in probe.sent if lo <= ns / 1e9 <= hi)
        first = min((ts for ts, _ in snap.values()), default=None)
        rows.append({**shot, "sent_in_window": sent, "reference_in_window": len(in_ref),
                     "in_snapshot": len(in_ref & set(snap)),
                     "window_pct": 100.0 * ratio(len(in_ref & set(snap)), len(in_ref)),
                     "snapshot_probes": len(snap),
                     "snapshot_starts_before_trigger_s": shot["t0"] - first if first else None})
    ready = summary([r["downloadable_s"] for r in rows])
    pct = summary([r["window_pct"] for r in rows])
    return {"window_s": window, "after_s": after, "probe_hz": PROBE_HZ, "rows": rows,
            "reference": ref_stats.as_dict(), "downloadable_s": ready,
            "stopped_s": summary([r["stopped_s"] for r in rows]), "window_pct": pct,
            "target_ready_met": ready["max"] <= 2.0,
            "target_window_met": pct["n"] > 0 and pct["min"] >= 100.0}


# --------------------------------------------------------------------------------------------


def _priorities(text: str) -> list[tuple[int, int]]:
    """"0/0,-10/0" -> [(0, 0), (-10, 0)]: (capture, ring) nice values."""
    pairs = [p.split("/") for p in text.split(",") if p.strip()]
    return [(int(c), int(r)) for c, r in pairs]


def run(ctx: Context) -> dict[str, Any]:
    sizes = _sizes(ctx)
    out: dict[str, Any] = {"sizes": sizes, "loadavg_start": os.getloadavg()}
    ctx.pair()
    with ExitStack() as stack:
        # Rings count against their owner's quotas: 50 members need more than the default
        # 32 captures per user (and its 512 MiB of kernel buffers: 8 MiB a ring).
        bed = Bed(ctx, stack, "recorder-cluster", env=QUOTAS_OFF)
        bed.add_agents(1)
        aid = bed.ids[bed.agents[0].node]
        if ctx.cfg.rec_window:
            out["window"] = window_part(ctx, bed, sizes)
        if ctx.cfg.rec_idle:
            out["idle"] = idle_part(ctx, bed, sizes)
        # The saturation arms also on agents with other priorities: a bed each (one agent
        # per controller, so a recorder has one ring), up at once and interleaved.
        beds = [([limits.CAPTURE_NICE, limits.RING_NICE], bed, aid)]
        for capture_nice, ring_nice in _priorities(ctx.cfg.rec_other_priorities):
            other = Bed(ctx, stack, f"recorder-prio{capture_nice}{ring_nice}", env=QUOTAS_OFF)
            other.add_agents(1, ("--capture-priority", str(capture_nice),
                                 "--ring-priority", str(ring_nice)))
            beds.append(([capture_nice, ring_nice], other, other.ids[other.agents[0].node]))
        out["saturation"], *out["saturation_other"] = saturation_part(ctx, beds, sizes)
    out["loadavg_end"] = os.getloadavg()
    return out
