"""Figure 11: the inventory at 500 nodes — a `podcap controller`, one real `podcap agent` on
this machine's Docker engine, and ``inv_nodes`` simulated agents (bench/simagents.py: one
process, real joins, own certificates, real mTLS sessions, ``inv_workloads`` synthetic
workloads each, churn, one running capture each whose counters move every second; each node's
second starts at its own moment, as independent nodes' do: ``--set inv_in_step=true`` puts them
all in one burst).

1. *Join storm*: every simulated agent joins at once (64 at a time), each from a loopback
   address of its own as real nodes would (``spread_joins``; a join refused by the join port's
   per-address rate limit is tried again and counted); then all their sessions open.
2. *Lists* (one keep-alive client, ``inv_lists`` each): ``GET /v1/workload`` (everything),
   ``/v1/workload?f_name=<one>``, ``/api/workloads?q=<one>``; CPU of the controller and of
   the agents (the simulated agents' process, the real agent) over the lists, and the
   commands the agents served meanwhile.
3. *Idle*: the controller's CPU (% of one core) over ``inv_idle_s`` with every node connected
   (heartbeats, counters of the running captures), and its RSS.
4. *The real node*: a container started there is listed, and gone once removed (polled).
5. *Starts*: on the real remote agent vs `podcap serve` in-process (figure 6's method).
6. *Restart*: the controller SIGKILLed and started again: every node connected and listed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.cluster import Bed, ClusterConfig, _starts, cpu_seconds
from bench.common import rss_bytes, summary, wait_until
from bench.context import Context

OLD_FIGURE_6 = {"p50": 109.7, "p99": 209.8}  # GET /v1/workload, 10 agents, before issue 19


@dataclass
class InventoryConfig(ClusterConfig):
    inv_nodes: int = 500
    inv_workloads: int = 20
    inv_running: int = 1
    inv_churn_per_min: float = 2.0
    inv_lists: int = 200
    inv_idle_s: float = 30.0
    inv_starts: int = 30
    inv_in_step: bool = False  # every simulated node's second at once (the worst case)

    @classmethod
    def smoke_config(cls) -> InventoryConfig:
        cfg = super().smoke_config()
        assert isinstance(cfg, InventoryConfig)
        cfg.inv_nodes, cfg.inv_workloads, cfg.inv_lists = 3, 3, 5
        cfg.inv_idle_s, cfg.inv_starts = 1.0, 2
        return cfg


def _timed(client: httpx.Client, path: str, n: int, **params: Any) -> dict[str, float]:
    ms = []
    for _ in range(n):
        t = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        ms.append((time.perf_counter() - t) * 1000)
    return summary(ms)


def _status(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _connected(bed: Bed) -> int:
    r = bed.http.get("/api/agents")
    r.raise_for_status()
    return sum(1 for a in r.json()["agents"] if a["connected"])


def _total(bed: Bed) -> int:
    r = bed.http.get("/api/workloads", params={"limit": 1})
    r.raise_for_status()
    return int(r.json()["total"])


def _appears(bed: Bed, ctx: Context) -> dict[str, float]:
    """A container on the real node: seconds until listed, then until gone."""
    box_started = time.monotonic()
    box = ctx.boxes.run("inv", 600)
    ran = time.monotonic() - box_started
    t = time.monotonic()
    wait_until(lambda: bed.http.get("/api/workloads", params={"q": box.name}
                                    ).json()["total"] == 1, timeout=30, interval=0.02)
    listed = time.monotonic() - t
    t = time.monotonic()
    ctx.boxes.remove(box.id)
    removed = time.monotonic() - t
    wait_until(lambda: bed.http.get("/api/workloads", params={"q": box.name}
                                    ).json()["total"] == 0, timeout=30, interval=0.02)
    return {"listed_s": listed, "gone_s": time.monotonic() - t, "docker_run_s": ran,
            "docker_rm_s": removed}


@contextmanager
def spread_joins(join_address: str, sources: int) -> Iterator[None]:
    """Each new connection to the join port comes from the next of ``sources`` loopback
    addresses (127.1.x.y), as joins from that many nodes would: the join port's rate limit is
    per address (``limits.JOIN_RATE_PER_S``), so from 127.0.0.1 alone 500 joins take 100 s by
    design, which measures the limit and not the controller. iptables SNAT in a chain of our
    own (``statistic --mode nth``: round robin), removed after."""
    host, _, port = join_address.rpartition(":")
    chain = f"PODCAP-JOINS-{os.getpid()}"
    hook = ["POSTROUTING", "-p", "tcp", "-d", host, "--dport", port, "-j", chain]
    rules = [f"-A {chain} -m statistic --mode nth --every {sources - i} --packet 0 -j SNAT "
             f"--to-source 127.1.{(i + 1) // 256}.{(i + 1) % 256}" for i in range(sources)]
    script = "\n".join(["*nat", f":{chain} - [0:0]", f"-A {' '.join(hook)}", *rules,
                        "COMMIT", ""])
    restore = shutil.which("iptables-restore") or "/usr/sbin/iptables-restore"
    iptables = shutil.which("iptables") or "/usr/sbin/iptables"
    subprocess.run([restore, "-w", "--noflush"], input=script.encode(), check=True)
    try:
        yield
    finally:
        for argv in (["-D", *hook], ["-F", chain], ["-X", chain]):
            subprocess.run([iptables, "-w", "-t", "nat", *argv], check=False)


def run(ctx: Context) -> dict[str, Any]:
    cfg: Any = ctx.cfg
    if not hasattr(cfg, "inv_nodes"):
        raise RuntimeError("figure 11 needs bench.inventory.InventoryConfig")
    out: dict[str, Any] = {"nodes": cfg.inv_nodes, "per_node": cfg.inv_workloads,
                           "loadavg_start": os.getloadavg()}
    box_a, _ = ctx.pair()
    with ExitStack() as stack:
        bed = Bed(ctx, stack, "inventory-cluster")
        bed.add_agents(1)
        real_pid = bed.agents[0].proc.pid
        real_id = bed.ids[bed.agents[0].node]
        work = ctx.sub("inventory")
        status = work / "sim.json"
        token = bed.cluster.join_token(ttl_s=3600, uses=cfg.inv_nodes)
        argv = [sys.executable, "-m", "bench.simagents", "--join", bed.cluster.join_address,
                "--agent", bed.cluster.agent_address, "--token", token,
                "--nodes", str(cfg.inv_nodes), "--workloads", str(cfg.inv_workloads),
                "--running", str(cfg.inv_running),
                "--churn-per-min", str(cfg.inv_churn_per_min), "--status", str(status),
                *(["--in-step"] if cfg.inv_in_step else [])]
        ctx.record("11", " ".join(argv).replace(token, "<token>")
                   .replace(str(ctx.work.path), "$WORK"))
        stack.enter_context(spread_joins(bed.cluster.join_address, cfg.inv_nodes))
        began = time.monotonic()
        log = (work / "sim.log").open("wb")
        stack.callback(log.close)
        sim = ctx.procs.spawn(argv, stdout=log, stderr=subprocess.STDOUT)
        stack.callback(ctx.procs.end, sim)
        wait_until(lambda: _status(status).get("joined") == cfg.inv_nodes
                   or sim.poll() is not None, timeout=600, interval=0.2)
        if sim.poll() is not None:
            raise RuntimeError(f"simulated agents ended: {(work / 'sim.log').read_text()[-2000:]}")
        joined, certified = _status(status), time.monotonic()
        wait_until(lambda: _connected(bed) == cfg.inv_nodes + 1, timeout=600, interval=0.2)
        out["storm"] = {"joined_s": joined.get("join_s"), "join_refused": joined["join_refused"],
                        "connected_s": time.monotonic() - began,
                        "sessions_s": time.monotonic() - certified,
                        "errors": joined.get("errors", [])}
        expected = cfg.inv_nodes * cfg.inv_workloads
        wait_until(lambda: _total(bed) >= expected, timeout=120, interval=0.5)
        out["workloads"] = _total(bed)

        one = f"sim-{cfg.inv_nodes // 2:04d}-app-{cfg.inv_workloads // 2}"
        handled0 = _status(status).get("handled", {})
        cpu = {"controller": bed.controller_pid, "simulated agents": sim.pid,
               "real agent": real_pid}
        cpu0 = {k: cpu_seconds(p) for k, p in cpu.items()}
        t = time.monotonic()
        out["full_ms"] = _timed(bed.http, "/v1/workload", cfg.inv_lists)
        out["lists_cpu_s"] = {k: cpu_seconds(p) - cpu0[k] for k, p in cpu.items()}
        out["lists_wall_s"] = time.monotonic() - t
        out["f_name_ms"] = _timed(bed.http, "/v1/workload", cfg.inv_lists, f_name=one)
        out["q_ms"] = _timed(bed.http, "/api/workloads", cfg.inv_lists, q=one)
        time.sleep(1.2)  # the simulated agents' status is written once a second
        handled1 = _status(status).get("handled", {})
        out["commands_during_lists"] = {k: v - handled0.get(k, 0) for k, v in handled1.items()
                                        if v != handled0.get(k, 0)}

        c0, t = cpu_seconds(bed.controller_pid), time.monotonic()
        time.sleep(cfg.inv_idle_s)
        out["idle_cpu_pct"] = (cpu_seconds(bed.controller_pid) - c0) / (time.monotonic() - t) * 100
        out["controller_rss_mb"] = rss_bytes(bed.controller_pid) / 1e6
        out["sim_rss_mb"] = rss_bytes(sim.pid) / 1e6

        out["real_node"] = _appears(bed, ctx)
        starts = _starts(ctx, bed, box_a, real_id, cfg.inv_starts)
        out["start_remote_ms"], out["start_local_ms"] = starts["remote"], starts["local"]

        server = bed.cluster.server
        server.stop(signal.SIGKILL)
        t = time.monotonic()
        server.start()
        bed.http.headers["X-Auth-Token"] = server.token
        wait_until(lambda: _connected(bed) == cfg.inv_nodes + 1, timeout=300, interval=0.2)
        wait_until(lambda: _total(bed) >= expected, timeout=120, interval=0.2)
        out["restart_resynced_s"] = time.monotonic() - t
        out["sim_handled_total"] = _status(status).get("handled", {})
    out["loadavg_end"] = os.getloadavg()
    out["targets"] = {
        "full": out["full_ms"]["p99"] <= 100, "filtered": max(
            out["f_name_ms"]["p99"], out["q_ms"]["p99"]) <= 20,
        "no_agent_asked": not out["commands_during_lists"],
        "idle": out["idle_cpu_pct"] <= 10, "rss": out["controller_rss_mb"] <= 400,
        "real_node": max(out["real_node"]["listed_s"], out["real_node"]["gone_s"]) <= 2,
        "storm": out["storm"]["connected_s"] <= 60 and not out["storm"]["errors"],
        "restart": out["restart_resynced_s"] <= 30,
        "start": out["start_remote_ms"]["median"] <= out["start_local_ms"]["median"] + 10}
    return out


def _ms(s: dict[str, float]) -> str:
    return f"p50 {s['median']:.1f} ms, p99 {s['p99']:.1f} ms"


def _ok(flag: bool) -> str:
    from bench.report import met  # the report's own words (it imports this module lazily)

    return met(flag)


def section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    head = "## 11. Inventory at 500 nodes"
    if "error" in res:
        return f"{head}\n\n**Not measured in this run**:\n\n```\n{res['error']}\n```\n"
    t, storm, real = res["targets"], res["storm"], res["real_node"]
    cpu = res["lists_cpu_s"]
    n = cfg.get("inv_lists", 0) or 1
    rows = [
        ("`/v1/workload` full list, " f"{res['nodes']} nodes × {res['per_node']} + the real "
         f"node ({res['workloads']} workloads)", _ms(res["full_ms"]), "p99 ≤ 100 ms", t["full"]),
        ("`/v1/workload?f_name=…`", _ms(res["f_name_ms"]), "p99 ≤ 20 ms", t["filtered"]),
        ("`/api/workloads?q=…`", _ms(res["q_ms"]), "p99 ≤ 20 ms", t["filtered"]),
        (f"agents' CPU over {n} full lists", f"simulated agents {cpu['simulated agents']:.2f} s"
         f" (their own counters and heartbeats meanwhile), real agent {cpu['real agent']:.2f} s;"
         f" commands served: {res['commands_during_lists'] or 'none'}; controller "
         f"{cpu['controller'] * 1000 / n:.1f} ms a list", "0 (no agent asked)",
         t["no_agent_asked"]),
        ("controller CPU, all nodes connected and idle (heartbeats, counters)",
         f"{res['idle_cpu_pct']:.1f} % of one core", "≤ 10 %", t["idle"]),
        ("controller RSS", f"{res['controller_rss_mb']:.0f} MB", "≤ 400 MB", t["rss"]),
        ("a new container on the real node listed / a removed one gone",
         f"{real['listed_s']:.2f} s / {real['gone_s']:.2f} s (after `docker run` / `rm` "
         "returned)", "≤ 2 s each", t["real_node"]),
        (f"{res['nodes']} agents join at once", f"certificates in {storm['joined_s']:.1f} s "
         f"(each node from a loopback address of its own; {storm['join_refused']} joins "
         "refused by the join port's per-address rate limit and retried), then all sessions "
         f"connected and their snapshots in {storm['sessions_s']:.1f} s; "
         f"{storm['connected_s']:.1f} s in all; errors: {len(storm['errors'])}",
         "≤ 60 s, no error", t["storm"]),
        ("controller SIGKILL and restart", f"all views resynced in "
         f"{res['restart_resynced_s']:.1f} s", "≤ 30 s", t["restart"]),
        ("start on the remote real agent vs in-process", f"{_ms(res['start_remote_ms'])} vs "
         f"{_ms(res['start_local_ms'])}", "p50 ≤ in-process + 10 ms", t["start"]),
    ]
    lines = [head, "", "A `podcap controller`, one real `podcap agent` (Docker, this machine) "
             f"and {res['nodes']} simulated agents in one process (bench/simagents.py: real "
             "joins, certificates and mTLS sessions; synthetic workloads, churn "
             f"{cfg.get('inv_churn_per_min')}/min a node, {cfg.get('inv_running')} running "
             "capture a node whose counters move every second; the nodes' seconds "
             f"{'all at once' if cfg.get('inv_in_step') else 'spread over the second'}). "
             "Lists are answered from the views the agents push (docs/CLUSTER.md, "
             "\"The inventory\").", "",
             "| figure | measured | goal | |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {_ok(d)} |" for a, b, c, d in rows]
    now = res.get("figure6_now")
    if now:
        lines += ["", f"Figure 6 re-run (10 real agents on one Docker engine): `/v1/workload` "
                  f"{_ms(now)}; before the inventory: p50 {OLD_FIGURE_6['p50']} ms, p99 "
                  f"{OLD_FIGURE_6['p99']} ms."]
    lines += ["", f"Simulated agents' process: RSS {res['sim_rss_mb']:.0f} MB. Load average "
              f"{res['loadavg_start'][0]:.2f} at the start, {res['loadavg_end'][0]:.2f} at the "
              "end (2 cores, shared).", ""]
    return "\n".join(lines)


def target_rows(res: dict[str, Any]) -> list[list[str]]:
    if "targets" not in res:
        return []
    t = res["targets"]
    return [["11 inventory lists", f"full p99 {res['full_ms']['p99']:.1f} ms, filtered p99 "
             f"{max(res['f_name_ms']['p99'], res['q_ms']['p99']):.1f} ms at "
             f"{res['workloads']} workloads", "≤ 100 / 20 ms",
             _ok(t["full"] and t["filtered"])],
            ["11 inventory idle", f"controller {res['idle_cpu_pct']:.1f} % CPU, "
             f"{res['controller_rss_mb']:.0f} MB at {res['nodes']} nodes", "≤ 10 %, ≤ 400 MB",
             _ok(t["idle"] and t["rss"])]]
