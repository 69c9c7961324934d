"""Figure 5: scale on one node — 100 containers captured at once.

Creates ``scale_containers`` busybox containers, starts a fresh ``podcap serve`` (so its memory
holds nothing from the other figures), then: podcap's RSS idle; the time to start a capture on
every container (one ``POST /v1/sniffer`` after another, from one client); podcap's RSS with all
of them running (its own processes only: tcpdump excluded); then latency of ``GET /v1/sniffer``
and of ``GET /v1/workload``, alternating, ``scale_requests`` each over one keep-alive client.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import Box, comm, process_tree, rss_bytes, summary, wait_until
from bench.context import Context
from bench.server import Podcap


def _podcap_rss(srv: Podcap) -> tuple[int, int]:
    """(bytes of podcap's own processes, number of tcpdump processes under it)."""
    tree = process_tree(srv.pid)
    own = [p for p in tree if comm(p) not in ("tcpdump", "nsenter")]
    return sum(rss_bytes(p) for p in own), sum(1 for p in tree if comm(p) == "tcpdump")


def run(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    n = cfg.scale_containers
    t = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        boxes: list[Box] = list(pool.map(lambda i: ctx.boxes.run(f"s{i}", 1800), range(n)))
    create_s = time.perf_counter() - t
    srv = Podcap(ctx.work.path, "scale").start()
    ids: list[str] = []
    try:
        http = srv.http
        all_containers = len(http.get("/v1/workload").json()["workloads"])
        time.sleep(1.0)
        rss_idle, _ = _podcap_rss(srv)
        per_start: list[float] = []
        t = time.perf_counter()
        for box in boxes:
            t1 = time.perf_counter()
            ids.append(srv.v1_start(box.id))
            per_start.append((time.perf_counter() - t1) * 1000)
        start_all_s = time.perf_counter() - t
        ctx.record("5", f"[start] POST /v1/sniffer?f_workload=<each of {n}> "
                   '{"sniffer": {"duration": 0, "file_number": 5, "file_size_mb": 2}} '
                   "one after another")
        time.sleep(cfg.scale_settle_s)  # several counter refreshes of every capture
        running = sum(1 for s in http.get("/v1/sniffer").json()["sniffers"]
                      if s.get("status") == "running")
        rss_running, tcpdumps = _podcap_rss(srv)
        lat: dict[str, list[float]] = {"/v1/sniffer": [], "/v1/workload": []}
        for _ in range(cfg.scale_requests):
            for path in lat:
                t1 = time.perf_counter()
                r = http.get(path)
                lat[path].append((time.perf_counter() - t1) * 1000)
                r.raise_for_status()
        ctx.record("5", f"[latency] GET /v1/sniffer and GET /v1/workload alternately, "
                   f"{cfg.scale_requests} each, one keep-alive client, {n} captures running")
        rss_after, _ = _podcap_rss(srv)
        t = time.perf_counter()
        for cid in ids:
            srv.v1_stop(cid)
        stop_all_s = time.perf_counter() - t
        for cid in ids:
            srv.v1_delete(cid)
        ids.clear()
        wait_until(lambda: _podcap_rss(srv)[1] == 0, 30, 0.1, "all tcpdump processes gone")
    finally:
        for cid in ids:
            try:
                srv.v1_delete(cid)
            except Exception:  # noqa: BLE001 - best effort cleanup, the server stops next
                pass
        srv.stop()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda b: ctx.boxes.remove(b.id), boxes))
    out: dict[str, Any] = {
        "containers": n, "containers_on_host": all_containers, "create_s": create_s,
        "rss_idle_mb": rss_idle / 1e6, "rss_running_mb": rss_running / 1e6,
        "rss_after_requests_mb": rss_after / 1e6, "tcpdump_processes": tcpdumps,
        "running_reported": running, "start_all_s": start_all_s, "stop_all_s": stop_all_s,
        "per_start_ms": summary(per_start),
        "latency_ms": {path: summary(v) for path, v in lat.items()},
    }
    out["target_rss_met"] = max(rss_running, rss_after) / 1e6 <= 150.0
    out["target_latency_met"] = all(summary(v)["p99"] <= 100.0 for v in lat.values())
    return out
