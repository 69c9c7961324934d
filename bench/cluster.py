"""Figure 6: the cluster — a `podcap controller` with `podcap agent` processes on this machine.

Everything runs here, on loopback: the controller (API on 127.0.0.1, agent listeners gRPC mutual
TLS on 127.0.0.1) and every agent (its own data dir and node name, ``--runtime docker``). All
agents talk to the same Docker engine, so each one sees the same containers: N agents × C
containers = N × C workloads in the controller's lists.

1. *Remote download.* One capture on the in-process agent of ``podcap serve`` (the shared bench
   server) and one on a remote agent, both of container A, filled at the same time by one
   iperf3 TCP stream B → A until each ring holds ``cluster_download_bytes``. Then, alternating,
   ``curl -o /dev/null`` of ``GET /api/captures/<id>/pcap`` from ``podcap serve`` and from the
   controller (which reads it from the agent's data connection). Peak RSS growth: VmRSS of the
   controller and of the agent process sampled every 50 ms during the download, peak − the
   sample just before. The remote download's bytes are checked against the agent's files:
   size = files − the 24-byte headers of all but the first, sha256 of the download = sha256 of
   the files merged in ring order (oldest first), records in the files = tcpdump's count.
   CPU seconds per GB of each process during the downloads, for context.
2. *Scale.* ``cluster_containers`` busybox ``sleep`` containers; ``GET /v1/workload`` latency
   (one keep-alive client) with 1 agent, then with ``cluster_agents`` agents, after lists are
   repeated until every agent answers in time (a new agent's first list inspects every
   container); CPU per request of the controller, the agents and dockerd. Capture start latency
   (``POST /api/captures``, a filtered capture on an idle container, answered = started) on a
   remote agent vs on ``podcap serve`` in-process, alternating, and the CPU the other agents
   spent per remote start.
3. *Idle agent.* One agent's RSS and CPU % (utime + stime of the agent process over wall time,
   % of one core) over ``cluster_idle_s`` with 0 captures, then with ``cluster_idle_captures``
   filtered captures of idle containers running.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import os
import shlex
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    CURL,
    Box,
    Config,
    comm,
    process_tree,
    ratio,
    rss_bytes,
    summary,
    wait_until,
)
from bench.common import run as run_cmd
from bench.context import Context
from bench.download import ring_files as serve_ring_files
from bench.traffic import Iperf
from podcap.pcap.format import GLOBAL_HEADER, MAGIC
from tests.cluster import cluster_support

_ports = itertools.count(5501)
PCAP_GLOBAL_HEADER = GLOBAL_HEADER
IDLE_FILTER = "udp port 9"  # nothing sends there: a capture that runs and writes nothing


@dataclass
class ClusterConfig(Config):
    """``Config`` plus the sizes of this figure (``--set cluster_agents=4`` etc.)."""

    cluster_download_bytes: int = 1024**3
    cluster_file_size_mb: int = 100
    cluster_file_number: int = 16  # 1.6 GB: room for the overshoot, the ring never wraps
    cluster_download_repeats: int = 3
    cluster_fill_timeout_s: float = 180.0
    cluster_agents: int = 10
    cluster_containers: int = 100
    cluster_requests: int = 200
    cluster_starts: int = 30
    cluster_idle_s: float = 30.0
    cluster_idle_captures: int = 10
    # Part 1 alone (no containers, no scale or idle part): a quick before/after of the
    # remote download (issue 23); its JSON is for the notes, not for --render.
    cluster_download_only: bool = False
    # When set: py-spy (in the venv: pip install py-spy) records the controller and the agent
    # during each remote download into this directory (collapsed stacks, one file a process).
    cluster_profile_dir: str = ""

    @classmethod
    def smoke_config(cls) -> ClusterConfig:
        cfg = super().smoke_config()
        assert isinstance(cfg, ClusterConfig)
        cfg.cluster_download_bytes = 3_000_000
        cfg.cluster_file_size_mb = 1
        cfg.cluster_file_number = 20
        cfg.cluster_download_repeats = 1
        cfg.cluster_fill_timeout_s = 30.0
        cfg.cluster_agents = 2
        cfg.cluster_containers = 2
        cfg.cluster_requests = 5
        cfg.cluster_starts = 2
        cfg.cluster_idle_s = 1.0
        cfg.cluster_idle_captures = 2
        return cfg


# --------------------------------------------------------------------------------------------
# Processes: memory and CPU


class RssSampler:
    """VmRSS of some processes every ``interval`` s in a thread: the peak of each, and the
    sample taken just before it started."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05) -> None:
        self.pids = pids
        self.interval = interval
        self.before = {k: rss_bytes(p) for k, p in pids.items()}
        self.peak = dict(self.before)
        self.total = dict.fromkeys(pids, 0)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def _sample(self) -> None:
        for k, p in self.pids.items():
            v = rss_bytes(p)
            self.peak[k] = max(self.peak[k], v)
            self.total[k] += v
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def growth_mb(self, key: str) -> float:
        return (self.peak[key] - self.before[key]) / 1e6

    def mean_mb(self, key: str) -> float:
        return self.total[key] / max(self.samples, 1) / 1e6


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def dockerd_pid() -> int | None:
    """The Docker engine every agent here asks (its CPU is part of each workload list)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and comm(int(entry.name)) == "dockerd":
            return int(entry.name)
    return None


# --------------------------------------------------------------------------------------------
# The agent's ring: merged as podcap should serve it, checked independently of podcap's code


def agent_ring(data_dir: Path, capture_id: str) -> list[Path]:
    """The capture's ring files under an agent's data dir, oldest first (first record's
    timestamp, then the ring index for files without a record)."""
    dirs = [d for d in data_dir.rglob(capture_id) if d.is_dir()]
    paths = [p for d in dirs for p in d.rglob("capture.pcap*")
             if p.is_file() and p.name[len("capture.pcap"):].isdigit()]
    return sorted(paths, key=_ring_key)


def _ring_key(path: Path) -> tuple[int, float, int]:
    index = int(path.name[len("capture.pcap"):])
    with open(path, "rb") as fh:
        head = fh.read(PCAP_GLOBAL_HEADER + 16)
    if len(head) < PCAP_GLOBAL_HEADER + 16 or head[:4] not in MAGIC:
        return (1, 0.0, index)
    sec, frac = struct.unpack(MAGIC[head[:4]][0] + "II", head[24:32])
    return (0, sec + frac * 1e-9, index)


def merged_digest(paths: list[Path]) -> tuple[str, int, int]:
    """(sha256, bytes, records) of the files as one pcap: the first file's global header, the
    others' dropped."""
    h = hashlib.sha256()
    size = records = 0
    for i, p in enumerate(paths):
        with open(p, "rb") as fh:
            if i:
                fh.seek(PCAP_GLOBAL_HEADER)
            while block := fh.read(4 * 1024 * 1024):
                h.update(block)
                size += len(block)
        records += _count_records(p)
    return h.hexdigest(), size, records


def _count_records(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        head = fh.read(PCAP_GLOBAL_HEADER)
        if head[:4] not in MAGIC:
            return 0
        rec = struct.Struct(MAGIC[head[:4]][0] + "IIII")
        while len(hdr := fh.read(16)) == 16:
            fh.seek(rec.unpack(hdr)[2], os.SEEK_CUR)
            n += 1
    return n


def download_digest(url: str, token: str) -> tuple[str, int]:
    """sha256 and size of one download: curl piped into sha256sum, nothing on disk."""
    curl = subprocess.Popen([CURL, "-sS", "-f", "-H", f"X-Auth-Token: {token}", url],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    h = hashlib.sha256()
    size = 0
    assert curl.stdout is not None
    while block := curl.stdout.read(4 * 1024 * 1024):
        h.update(block)
        size += len(block)
    if curl.wait(600) != 0:
        raise RuntimeError(f"curl {url} failed ({curl.returncode})")
    return h.hexdigest(), size


def _curl_timed(url: str, token: str) -> tuple[float, int]:
    argv = [CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
            "-H", f"X-Auth-Token: {token}", url]
    t = time.perf_counter()
    done = run_cmd(argv, timeout=900)
    elapsed = time.perf_counter() - t
    code, size = (done.stdout.split() + ["0", "0"])[:2]
    if code != "200":
        raise RuntimeError(f"{url} -> HTTP {code}: {done.stderr}")
    return elapsed, int(size)


@contextlib.contextmanager
def profiled(out_dir: str, repeat: int, pids: dict[str, int]) -> Iterator[None]:
    """py-spy on each of ``pids`` (all threads, native frames off) while the block runs."""
    if not out_dir:
        yield
        return
    spy = str(Path(sys.executable).with_name("py-spy"))
    procs = [subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "250", "--format",
                               "raw", "--threads", "-o", f"{out_dir}/{name}-{repeat}.txt"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, pid in pids.items()]
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait(60)


# --------------------------------------------------------------------------------------------
# The cluster


class Bed:
    """The controller, its agents and one keep-alive client of the controller's API."""

    def __init__(self, ctx: Context, stack: ExitStack, name: str = "cluster",
                 env: dict[str, str] | None = None) -> None:
        self.ctx = ctx
        self.dir = ctx.sub(name)
        self.cluster: Any = stack.enter_context(cluster_support.running_cluster(self.dir,
                                                                                env=env))
        self.agents: list[Any] = []
        stack.callback(self.stop_agents)
        self.http = httpx.Client(base_url=self.cluster.server.url, timeout=120,
                                 headers={"X-Auth-Token": self.cluster.server.token})
        stack.callback(self.http.close)
        self.ids: dict[str, str] = {}  # node -> agent id

    @property
    def controller_pid(self) -> int:
        return int(self.cluster.server.proc.pid)

    @property
    def token(self) -> str:
        return str(self.cluster.server.token)

    def add_agents(self, n: int, args: tuple[str, ...] = ()) -> None:
        """``n`` agents, each with ``args`` added to its command line."""
        token = self.cluster.join_token(uses=n)
        new = []
        for _ in range(n):
            node = f"bench-node-{len(self.agents):02d}"
            data = self.dir / node
            data.mkdir(parents=True, exist_ok=True)
            agent = cluster_support.AgentProc(self.cluster, node, data)
            agent.runtime_args = [*agent.runtime_args, *args]
            agent.start(token, wait=False)
            self.agents.append(agent)
            new.append(agent)
        for agent in new:
            try:
                info = self.cluster.wait_connected(agent.node, timeout=60.0)
            except Exception as exc:
                raise RuntimeError(f"agent {agent.node} did not connect:\n"
                                   f"{agent.log()[-2000:]}") from exc
            self.ids[agent.node] = info["id"]

    def stop_agents(self) -> None:
        for agent in self.agents:
            agent.stop()

    def start(self, workload_id: str, agent_id: str | None, **spec: Any) -> dict[str, Any]:
        body = {"workload_id": workload_id, **spec}
        if agent_id:
            body["agent_id"] = agent_id
        r = self.http.post("/api/captures", json=body)
        if r.status_code != 201:
            raise RuntimeError(f"POST /api/captures -> {r.status_code}: {r.text[:500]}")
        return dict(r.json()["capture"])

    def capture(self, cid: str) -> dict[str, Any]:
        r = self.http.get(f"/api/captures/{cid}")
        r.raise_for_status()
        return dict(r.json()["capture"])

    def stop(self, cid: str) -> dict[str, Any]:
        r = self.http.post(f"/api/captures/{cid}/stop")
        r.raise_for_status()
        return dict(r.json()["capture"])

    def delete(self, cid: str) -> None:
        r = self.http.delete(f"/api/captures/{cid}")
        if r.status_code not in (204, 404):
            r.raise_for_status()


# --------------------------------------------------------------------------------------------
# 1. Remote download


def download_part(ctx: Context, bed: Bed) -> dict[str, Any]:
    cfg: Any = ctx.cfg
    srv = ctx.server()
    a, b = ctx.pair()
    node = bed.agents[0].node
    agent_pid = bed.agents[0].proc.pid
    spec = {"file_size_mb": cfg.cluster_file_size_mb, "file_number": cfg.cluster_file_number}
    local = srv.api_start(a.id, **spec)
    remote = bed.start(a.id, bed.ids[node], **spec)
    lid, rid = str(local["id"]), str(remote["id"])
    ctx.record("6", "[fill] POST /api/captures {\"workload_id\": <A>, \"file_size_mb\": "
               f"{cfg.cluster_file_size_mb}, \"file_number\": {cfg.cluster_file_number}}} on "
               "`podcap serve` and, with \"agent_id\": <agent>, on the controller -> agent "
               f"runs: {remote.get('args', '')}")
    iperf = Iperf(ctx.procs, a, next(_ports))
    t_fill = time.perf_counter()
    load = iperf.start_client(b, cfg.cluster_fill_timeout_s, udp=False, payload=None)
    ctx.record("6", "[fill] " + " ".join(iperf.client_argv(b, cfg.cluster_fill_timeout_s,
                                                            False, None)))
    # Each capture is stopped as soon as its ring holds the target: no ring wraps.
    deadline = time.monotonic() + cfg.cluster_fill_timeout_s
    local_final: dict[str, Any] | None = None
    remote_final: dict[str, Any] | None = None
    try:
        while time.monotonic() < deadline and (local_final is None or remote_final is None):
            if local_final is None and \
                    int(srv.api_capture(lid).get("size") or 0) >= cfg.cluster_download_bytes:
                local_final = srv.api_stop(lid)
            if remote_final is None and \
                    int(bed.capture(rid).get("size") or 0) >= cfg.cluster_download_bytes:
                remote_final = bed.stop(rid)
            time.sleep(0.1)
    finally:
        ctx.procs.end(load)
        iperf.close()
    fill_s = time.perf_counter() - t_fill
    if local_final is None:
        srv.api_stop(lid)
    if remote_final is None:
        bed.stop(rid)
    local_final = srv.final_stats(lid)
    wait_until(lambda: bed.capture(rid).get("status") != "running", 15, 0.1, "remote stop")
    remote_final = bed.capture(rid)

    lfiles = serve_ring_files(srv, lid)
    rfiles = agent_ring(bed.agents[0].data_dir, rid)
    l_expected = sum(p.stat().st_size for p in lfiles) - PCAP_GLOBAL_HEADER * (len(lfiles) - 1)
    r_sha, r_expected, r_records = merged_digest(rfiles)  # also warms the page cache
    subprocess.run(["cat", *map(str, lfiles)], stdout=subprocess.DEVNULL, timeout=600,
                   check=True)
    l_url = f"{srv.url}/api/captures/{lid}/pcap"
    r_url = f"{bed.cluster.server.url}/api/captures/{rid}/pcap"
    for url in (l_url, r_url.replace(bed.cluster.server.url, "$CONTROLLER")):
        ctx.record("6", shlex.join([CURL, "-sS", "-o", "/dev/null", "-w",
                                    "%{http_code} %{size_download}", "-H",
                                    "X-Auth-Token: $TOKEN", url]))
    rows: list[dict[str, Any]] = []
    try:
        # The check first (also a warm-up of both paths): bytes and sha256 of the download.
        got_sha, got_size = download_digest(r_url, bed.token)
        _curl_timed(l_url, srv.token)
        for i in range(cfg.cluster_download_repeats):
            order = ("local", "remote") if i % 2 == 0 else ("remote", "local")
            row: dict[str, Any] = {"repeat": i}
            for which in order:
                if which == "local":
                    cpu0 = cpu_seconds(srv.pid)
                    with RssSampler({"serve": srv.pid}) as s:
                        secs, size = _curl_timed(l_url, srv.token)
                    row.update(local_s=secs, local_bytes=size,
                               serve_cpu_s_per_gb=(cpu_seconds(srv.pid) - cpu0) / size * 1e9,
                               local_mbps=size / secs / 1e6,
                               serve_rss_growth_mb=s.growth_mb("serve"))
                else:
                    cpu0 = cpu_seconds(bed.controller_pid), cpu_seconds(agent_pid)
                    with RssSampler({"controller": bed.controller_pid,
                                     "agent": agent_pid}) as s, \
                            profiled(cfg.cluster_profile_dir, i, {"controller": bed.controller_pid,
                                                                  "agent": agent_pid}):
                        secs, size = _curl_timed(r_url, bed.token)
                    row.update(remote_s=secs, remote_bytes=size,
                               controller_cpu_s_per_gb=(cpu_seconds(bed.controller_pid)
                                                        - cpu0[0]) / size * 1e9,
                               agent_cpu_s_per_gb=(cpu_seconds(agent_pid) - cpu0[1]) / size * 1e9,
                               remote_mbps=size / secs / 1e6,
                               controller_rss_growth_mb=s.growth_mb("controller"),
                               agent_rss_growth_mb=s.growth_mb("agent"),
                               controller_rss_before_mb=s.before["controller"] / 1e6,
                               agent_rss_before_mb=s.before["agent"] / 1e6,
                               rss_samples=s.samples)
            # per byte: the two rings differ by a few packets
            row["time_ratio"] = ratio(row["local_mbps"], row["remote_mbps"])
            rows.append(row)
    finally:
        srv.v1_delete(lid)
        bed.delete(rid)
    stats = remote_final.get("stats") or {}
    out: dict[str, Any] = {
        "rows": rows, "fill_s": fill_s, "node": node,
        "local_files": len(lfiles), "remote_files": len(rfiles),
        "local_bytes": l_expected, "remote_bytes": r_expected,
        "local_stats": local_final.get("stats"), "remote_stats": stats,
        "remote_sha256_files": r_sha, "remote_sha256_download": got_sha,
        "remote_download_bytes": got_size, "remote_records": r_records,
        "remote_captured": stats.get("captured"),
        "sha_ok": got_sha == r_sha and got_size == r_expected,
        "size_ok": all(r["remote_bytes"] == r_expected and r["local_bytes"] == l_expected
                       for r in rows),
        "local_s": summary([r["local_s"] for r in rows]),
        "remote_s": summary([r["remote_s"] for r in rows]),
        "local_mbps": summary([r["local_mbps"] for r in rows]),
        "remote_mbps": summary([r["remote_mbps"] for r in rows]),
        "time_ratio": summary([r["time_ratio"] for r in rows]),
        "controller_rss_growth_mb": summary([r["controller_rss_growth_mb"] for r in rows]),
        "agent_rss_growth_mb": summary([r["agent_rss_growth_mb"] for r in rows]),
        "serve_rss_growth_mb": summary([r["serve_rss_growth_mb"] for r in rows]),
        "serve_cpu_s_per_gb": summary([r["serve_cpu_s_per_gb"] for r in rows]),
        "controller_cpu_s_per_gb": summary([r["controller_cpu_s_per_gb"] for r in rows]),
        "agent_cpu_s_per_gb": summary([r["agent_cpu_s_per_gb"] for r in rows]),
    }
    out["target_time_met"] = out["time_ratio"]["median"] <= 1.5
    out["target_controller_rss_met"] = out["controller_rss_growth_mb"]["max"] <= 50.0
    out["target_agent_rss_met"] = out["agent_rss_growth_mb"]["max"] <= 50.0
    return out


# --------------------------------------------------------------------------------------------
# 3. Idle agent


def _idle_window(pid: int, seconds: float) -> dict[str, Any]:
    kids = [p for p in process_tree(pid) if p != pid]
    kids_before = {p: cpu_seconds(p) for p in kids}
    c0, t0 = cpu_seconds(pid), time.monotonic()
    with RssSampler({"agent": pid}, interval=0.25) as s:
        time.sleep(seconds)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(pid) - c0
    kids_cpu = sum(cpu_seconds(p) - c for p, c in kids_before.items() if cpu_seconds(p))
    return {"seconds": wall, "cpu_pct": 100 * cpu / wall,
            "children_cpu_pct": 100 * kids_cpu / wall,
            "tcpdump_processes": sum(1 for p in kids if comm(p) == "tcpdump"),
            "rss_mean_mb": s.mean_mb("agent"), "rss_max_mb": s.peak["agent"] / 1e6}


def idle_part(ctx: Context, bed: Bed, boxes: list[Box]) -> dict[str, Any]:
    cfg: Any = ctx.cfg
    agent = bed.agents[0]
    aid = bed.ids[agent.node]
    time.sleep(0.2 if cfg.smoke else 1.0)  # settle; smoke sizes check the code, not the numbers
    idle = _idle_window(agent.proc.pid, cfg.cluster_idle_s)
    ids = []
    try:
        for box in boxes[:cfg.cluster_idle_captures]:
            ids.append(str(bed.start(box.id, aid, filter=IDLE_FILTER, file_size_mb=1,
                                     file_number=2)["id"]))
        ctx.record("6", f"[idle] POST /api/captures {{\"workload_id\": <idle container>, "
                   f"\"agent_id\": <agent>, \"filter\": \"{IDLE_FILTER}\", \"file_size_mb\": 1, "
                   f"\"file_number\": 2}} × {len(ids)}")
        time.sleep(0.5 if cfg.smoke else 2.0)
        busy = _idle_window(agent.proc.pid, cfg.cluster_idle_s)
        running = sum(1 for c in ids if bed.capture(c).get("status") == "running")
    finally:
        for cid in ids:
            bed.delete(cid)
    return {"node": agent.node, "idle": idle, "captures": busy, "captures_n": len(ids),
            "captures_running": running}


# --------------------------------------------------------------------------------------------
# 2. Scale


def _latency(client: httpx.Client, path: str, n: int) -> tuple[dict[str, float], list[int]]:
    """Latency of ``n`` GETs of a workload list, and how many workloads each answer held."""
    ms, counts = [], []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path)
        ms.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
        counts.append(len(r.json().get("workloads", [])))
    return summary(ms), counts


def _settle(bed: Bed, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Lists until every agent answers within the controller's deadline. A new agent's first
    list inspects every container it has not seen running, which can take longer; the lists
    measured after this are warm. Returns the first list's unreachable nodes."""
    first: list[dict[str, Any]] | None = None
    deadline = time.monotonic() + timeout
    while True:
        r = bed.http.get("/api/workloads")
        r.raise_for_status()
        unreachable = r.json().get("unreachable", [])
        first = unreachable if first is None else first
        if not unreachable or time.monotonic() > deadline:
            return first
        time.sleep(0.5)


def _starts(ctx: Context, bed: Bed, box: Box, agent_id: str, n: int) -> dict[str, Any]:
    srv = ctx.server()
    spec = {"filter": IDLE_FILTER, "file_size_mb": 1, "file_number": 2}

    others = [a.proc.pid for a in bed.agents if bed.ids[a.node] != agent_id]
    others_cpu: list[float] = []

    def remote() -> float:
        cpu0 = sum(cpu_seconds(p) for p in others)
        t = time.perf_counter()
        cid = str(bed.start(box.id, agent_id, **spec)["id"])
        ms = (time.perf_counter() - t) * 1000
        others_cpu.append((sum(cpu_seconds(p) for p in others) - cpu0) * 1000)
        bed.delete(cid)
        return ms

    def local() -> float:
        t = time.perf_counter()
        cid = str(srv.api_start(box.id, **spec)["id"])
        ms = (time.perf_counter() - t) * 1000
        srv.v1_delete(cid)
        return ms

    remote(), local()  # warm-up, not counted
    others_cpu.clear()
    got: dict[str, list[float]] = {"remote": [], "local": []}
    for i in range(n):
        order = ((remote, "remote"), (local, "local"))
        for fn, key in order if i % 2 == 0 else order[::-1]:
            got[key].append(fn())
    out = {k: summary(v) for k, v in got.items()}
    # mean: one start costs the other agents less than the 10 ms tick of /proc/<pid>/stat
    out["other_agents_cpu_ms"] = sum(others_cpu) / len(others_cpu) if others_cpu else math.nan
    return out


def scale_point(ctx: Context, bed: Bed, box: Box) -> dict[str, Any]:
    cfg: Any = ctx.cfg
    first_unreachable = _settle(bed)
    dockerd = dockerd_pid()
    procs = {"controller": [bed.controller_pid], "agents": [a.proc.pid for a in bed.agents],
             "dockerd": [dockerd] if dockerd else []}
    cpu0 = {k: sum(cpu_seconds(p) for p in ps) for k, ps in procs.items()}
    lat, counts = _latency(bed.http, "/v1/workload", cfg.cluster_requests)
    per_request_cpu_ms = {k: (sum(cpu_seconds(p) for p in ps) - cpu0[k]) * 1000
                          / cfg.cluster_requests for k, ps in procs.items()}
    r = bed.http.get("/api/workloads")
    r.raise_for_status()
    unreachable = r.json().get("unreachable", [])
    agent_id = bed.ids[bed.agents[0].node]
    starts = _starts(ctx, bed, box, agent_id, cfg.cluster_starts)
    return {"agents": len(bed.agents), "workloads": max(counts), "workloads_min": min(counts),
            "unreachable": unreachable, "unreachable_first_list": first_unreachable,
            "start_other_agents_cpu_ms": starts["other_agents_cpu_ms"],
            "workload_ms": lat, "workload_cpu_ms": per_request_cpu_ms,
            "start_remote_ms": starts["remote"],
            "start_local_ms": starts["local"],
            "start_diff_p50_ms": starts["remote"]["median"] - starts["local"]["median"],
            "controller_rss_mb": rss_bytes(bed.controller_pid) / 1e6,
            "agents_rss_mb": summary([rss_bytes(a.proc.pid) / 1e6 for a in bed.agents])}


# --------------------------------------------------------------------------------------------


def run(ctx: Context) -> dict[str, Any]:
    cfg: Any = ctx.cfg
    if not hasattr(cfg, "cluster_agents"):
        raise RuntimeError("the cluster figure needs bench.cluster.ClusterConfig")
    out: dict[str, Any] = {"loadavg_start": os.getloadavg()}
    srv = ctx.server()
    ctx.pair()
    if cfg.cluster_download_only:
        with ExitStack() as stack:
            bed = Bed(ctx, stack)
            bed.add_agents(1)
            out["download"] = download_part(ctx, bed)
        out["loadavg_end"] = os.getloadavg()
        return out
    t = time.perf_counter()
    boxes: list[Box] = []
    try:
        with ThreadPoolExecutor(8) as pool:
            boxes = list(pool.map(lambda i: ctx.boxes.run(f"c{i}", 1800),
                                  range(cfg.cluster_containers)))
        out["create_s"] = time.perf_counter() - t
        out["containers"] = len(boxes)
        out["containers_on_host"] = len(srv.http.get("/v1/workload").json()["workloads"])
        ctx.record("6", f"[containers] {len(boxes)} × docker run podcap-test/busybox:1 sleep 1800")
        with ExitStack() as stack:
            bed = Bed(ctx, stack)
            ctx.record("6", "[controller] podcap controller --insecure-http --listen "
                       "127.0.0.1:<port> --data-dir $WORK/cluster/controller --agent-listen "
                       "127.0.0.1:<port> --join-listen 127.0.0.1:<port>")
            bed.add_agents(1)
            ctx.record("6", "[agent] podcap agent --controller 127.0.0.1:<port> --join-address "
                       "127.0.0.1:<port> --data-dir $WORK/cluster/bench-node-<nn> --node-name "
                       "bench-node-<nn> --runtime docker --join-token <token>")
            out["download"] = download_part(ctx, bed)
            out["idle"] = idle_part(ctx, bed, boxes)
            ctx.record("6", f"[latency] GET /v1/workload × {cfg.cluster_requests}, one "
                       "keep-alive client (controller, then `podcap serve` for reference)")
            ctx.record("6", f"[start] POST /api/captures {{\"workload_id\": <idle container>, "
                       f"\"filter\": \"{IDLE_FILTER}\", \"file_size_mb\": 1, \"file_number\": 2}}"
                       f" (+ \"agent_id\" on the controller) × {cfg.cluster_starts} each, "
                       "alternating; DELETE after each")
            points = [scale_point(ctx, bed, boxes[0])]
            bed.add_agents(cfg.cluster_agents - 1)
            points.append(scale_point(ctx, bed, boxes[0]))
            out["scale"] = points
            local_lat, local_counts = _latency(srv.http, "/v1/workload", cfg.cluster_requests)
            out["serve_workload_ms"], out["serve_workloads"] = local_lat, max(local_counts)
    finally:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda b: ctx.boxes.remove(b.id), boxes))
    out["loadavg_end"] = os.getloadavg()
    last = out["scale"][-1]
    out["target_workload_met"] = last["workload_ms"]["p99"] <= 150.0
    out["target_start_met"] = last["start_diff_p50_ms"] <= 15.0
    return out
