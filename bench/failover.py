"""Figure 12: no single point of failure (issue 20) — several controllers on one PostgreSQL
behind a real HAProxy (Debian's, TCP mode, health checks on ``/readyz`` every 0.5 s, ``fall 2
rise 2``, ``balance roundrobin``, ``option redispatch 1``), one real agent (Docker, this machine)
holding a session with each replica; tests/ha/ha_support.py builds it, as for the tests.

- **Failover seen by a client**: a loop of ``GET /api/captures`` through HAProxy on one
  keep-alive connection (a new one after an error), every ``gap_pause_s``; the replica that
  leads is killed with SIGKILL a second in. Counted: requests, failed ones, the longest time
  without an answer (last success before the kill to the first after), errors in all.
- **Leader failover**: from that SIGKILL to the other replica holding the lease (read from the
  ``leases`` row every 50 ms), with the default lease (``limits.LEASE_TTL_S``).
- **API p99, two replicas vs one**: figure 10's load (bench/load.py: captures on busy
  containers, download loops checked with capinfos, API probe loops) through HAProxy, once with
  one replica behind it and once with two.

Every loop is bounded in time; every process is ended by its handle.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import summary
from bench.load import QUOTAS_OFF, LoadConfig, busy_containers, run_load
from podcap import limits
from tests.cluster.cluster_support import local_launch
from tests.ha.ha_support import HA, ha_cluster
from tests.ha.ha_support import LEASE_TTL_S as LEASE_TTL_S_TESTS
from tests.pg import new_database, private_postgres
from tests.support import PODCAP, wait_for


@dataclass
class FailoverConfig:
    kills: int = 3  # failovers measured (the killed replica is started again between)
    loop_s: float = 8.0  # the GET loop's length around each kill
    gap_pause_s: float = 0.02
    load: LoadConfig | None = None
    lease_ttl_s: float = limits.LEASE_TTL_S  # the default: the failover a user gets

    @classmethod
    def smoke(cls) -> FailoverConfig:
        """Checks the code, not the numbers: the tests' short lease (tests/ha)."""
        return cls(kills=1, loop_s=3.0, load=LoadConfig.smoke(), lease_ttl_s=LEASE_TTL_S_TESTS)


def _agent(ha: HA, work: Path, stack: ExitStack) -> None:
    token = ha.join_token(uses=1)
    node = f"bench-ha-{socket.gethostname()}"
    proc = local_launch([PODCAP, "agent", "--controller", ha.agent_spec, "--join-address",
                         ha.replicas[0].join_address, "--data-dir", str(work / "agent"),
                         "--node-name", node, "--runtime", "docker", "--join-token", token],
                        work / "agent.log")
    stack.callback(lambda: (proc.terminate(), proc.wait(15)))
    wait_for(lambda: ha.connected_everywhere([node]), timeout=60, interval=0.2,
             what="the agent connected to every replica")


def _one_failover(ha: HA, cfg: FailoverConfig) -> dict[str, Any]:
    leader = ha.wait_leader(timeout=30)
    stamps: list[tuple[float, bool]] = []
    stop = threading.Event()

    def loop() -> None:
        client = ha.client(timeout=5)
        try:
            while not stop.is_set():
                try:
                    ok = client.get("/api/captures").status_code == 200
                except httpx.HTTPError:
                    ok = False
                    client.close()
                    client = ha.client(timeout=5)
                stamps.append((time.monotonic(), ok))
                time.sleep(cfg.gap_pause_s)
        finally:
            client.close()

    looper = threading.Thread(target=loop)
    looper.start()
    time.sleep(1.0)
    killed = time.monotonic()
    leader.kill()
    new = ha.wait_leader(other_than=leader, timeout=60)
    took = time.monotonic() - killed
    time.sleep(max(0.0, cfg.loop_s - (time.monotonic() - killed)))
    stop.set()
    looper.join(30)
    before = [t for t, ok in stamps if ok and t <= killed]
    after = [t for t, ok in stamps if ok and t > killed]
    failed = [t for t, ok in stamps if not ok]
    gap = (after[0] if after else time.monotonic()) - (before[-1] if before else killed)
    errors_s = (max(failed) - min(failed)) if failed else 0.0
    leader.start()  # back for the next round
    return {"requests": len(stamps), "failed": len(failed), "longest_gap_s": gap,
            "error_span_s": errors_s, "leader_failover_s": took,
            "new_leader": new.name, "killed": leader.name}


def _loaded(tmp: Path, url: str, replicas: int, cfg: LoadConfig, lease_ttl_s: float,
            ctx: Any) -> dict[str, Any]:
    with ExitStack() as stack:
        ha = stack.enter_context(ha_cluster(tmp / f"load-{replicas}", new_database(url),
                                            replicas=replicas, balance="roundrobin",
                                            env=dict(QUOTAS_OFF),
                                            lease_ttl_s=lease_ttl_s))
        _agent(ha, tmp / f"load-{replicas}", stack)
        boxes: list[Any] = []
        stack.callback(lambda: [ctx.boxes.remove(b.id) for b in boxes])
        busy_containers(ctx.boxes.client, cfg.containers, cfg.ping_interval_s,
                        f"podcap-bench-ha{replicas}", out=boxes)
        for b in boxes:
            ctx.boxes.mine[b.id] = b.name
        time.sleep(1.5)  # the agent pushes the new containers to every replica
        with tempfile.TemporaryDirectory(dir=tmp) as work:
            return run_load(ha.url, ha.token, [b.id for b in boxes], ha.replicas[0].pid, cfg,
                            Path(work), verify=False, rss_pids=[r.pid for r in ha.replicas],
                            log=lambda m: print(f"[{replicas} replica(s)] {m}", flush=True))


def run(ctx: Any) -> dict[str, Any]:
    cfg = FailoverConfig.smoke() if ctx.cfg.smoke else FailoverConfig(load=LoadConfig())
    load = cfg.load or LoadConfig()
    tmp = ctx.sub("failover")
    ctx.record("12", "[database] tests/pg.py private_postgres (initdb, unix socket)")
    ctx.record("12", "[replicas] PODCAP_DATABASE_URL=<pg> podcap controller --listen "
               "127.0.0.1:<port> --cert <shared> --key <shared> --agent-listen ... (x 2)")
    ctx.record("12", "[balancer] haproxy -f haproxy.cfg -db (mode tcp; balance roundrobin; "
               "option httpchk GET /readyz, check-ssl verify none, inter 500ms fall 2 rise 2; "
               "option redispatch 1; retries 3)")
    out: dict[str, Any] = {"config": {**asdict(cfg), "load": asdict(load)},
                           "lease_ttl_s": cfg.lease_ttl_s}
    with private_postgres(Path(tempfile.gettempdir())) as url:
        with ExitStack() as stack:
            ha = stack.enter_context(ha_cluster(tmp / "failover", new_database(url),
                                                balance="roundrobin",
                                                lease_ttl_s=cfg.lease_ttl_s))
            _agent(ha, tmp / "failover", stack)
            rounds = []
            for _ in range(cfg.kills):
                rounds.append(_one_failover(ha, cfg))
                for r in ha.replicas:
                    r.wait_ready()
                ha.proxy.wait_up("a")
                ha.proxy.wait_up("b")
            out["rounds"] = rounds
        os.sync()
        out["one"] = _loaded(tmp, url, 1, load, cfg.lease_ttl_s, ctx)
        out["two"] = _loaded(tmp, url, 2, load, cfg.lease_ttl_s, ctx)
    gaps = [r["longest_gap_s"] for r in out["rounds"]]
    errors = [r["error_span_s"] for r in out["rounds"]]
    leader = [r["leader_failover_s"] for r in out["rounds"]]
    out["gap_s"], out["errors_s"], out["leader_s"] = summary(gaps), summary(errors), \
        summary(leader)
    p99_one, p99_two = out["one"]["api_ms"]["p99"], out["two"]["api_ms"]["p99"]
    out["targets"] = {"errors": max(errors) <= 5.0, "leader": max(leader) <= 10.0,
                      "p99": p99_two <= p99_one}
    return out


def _ok(flag: bool) -> str:
    return "**met**" if flag else "**missed**"


def section(res: dict[str, Any], cfg: dict[str, Any]) -> str:
    head = "## 12. No single point of failure"
    if "error" in res:
        return f"{head}\n\n**Not measured in this run**:\n\n```\n{res['error']}\n```\n"
    t = res["targets"]
    rounds = res["rounds"]
    one, two = res["one"], res["two"]
    clean = not any(r[k] for r in (one, two) for k in ("invalid", "count_mismatches"))
    lines = [head, "",
             "Two `podcap controller` replicas on one PostgreSQL behind HAProxy (TCP mode, "
             "health checks on `/readyz` every 0.5 s, `fall 2 rise 2`, `balance roundrobin`, "
             "`option redispatch 1`), one real agent holding a session with each "
             f"(bench/failover.py). The leading replica killed with SIGKILL {len(rounds)} "
             f"time(s) while a client loops `GET /api/captures` through HAProxy; lease "
             f"{res['lease_ttl_s']:g} s"
             + (" (the default)." if res["lease_ttl_s"] == limits.LEASE_TTL_S else "."), "",
             "| figure | measured | goal | |", "| --- | --- | --- | --- |",
             "| client's requests failed during a failover | "
             + ", ".join(f"{r['failed']} of {r['requests']}" for r in rounds)
             + f"; errors for {max(res['errors_s']['max'], 0):.2f} s at most; longest "
             f"gap without an answer {res['gap_s']['max']:.2f} s | ≤ 5 s of errors | "
             f"{_ok(t['errors'])} |",
             f"| leader failover (SIGKILL → the other holds the lease) | median "
             f"{res['leader_s']['median']:.2f} s, max {res['leader_s']['max']:.2f} s | ≤ 10 s "
             f"| {_ok(t['leader'])} |",
             f"| API p99 under figure 10's load, through HAProxy | two replicas "
             f"{two['api_ms']['p99']:.1f} ms (p50 {two['api_ms']['median']:.1f}) vs one "
             f"{one['api_ms']['p99']:.1f} ms (p50 {one['api_ms']['median']:.1f}) | two ≤ one "
             f"| {_ok(t['p99'])} |",
             f"| the load's checks, one / two replicas | downloads {one['downloads']} / "
             f"{two['downloads']}, invalid {one['invalid']} / {two['invalid']}, count "
             f"mismatches {one['count_mismatches']} / {two['count_mismatches']}, 5xx "
             f"{one['errors_5xx']} / {two['errors_5xx']}, RSS {one['rss_peak_mb']:.0f} / "
             f"{two['rss_peak_mb']:.0f} MB (all replicas) | 0 invalid, 0 mismatches | "
             f"{_ok(clean)} |",
             ""]
    return "\n".join(lines) + "\n"


def target_rows(res: dict[str, Any]) -> list[list[str]]:
    if "targets" not in res:
        return []
    t = res["targets"]
    return [["12 failover", f"errors {res['errors_s']['max']:.2f} s, leader "
             f"{res['leader_s']['max']:.2f} s (max of {len(res['rounds'])})",
             "≤ 5 s, ≤ 10 s", _ok(t["errors"] and t["leader"])],
            ["12 API p99, 2 replicas vs 1", f"{res['two']['api_ms']['p99']:.1f} vs "
             f"{res['one']['api_ms']['p99']:.1f} ms", "two ≤ one", _ok(t["p99"])]]
