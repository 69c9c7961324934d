"""Simulated agents, for the benchmark only (kwok's role for podcap): N agents in one process.

Each joins with a real join token (its own key, CSR and certificate, through the join port),
holds a real gRPC session over mutual TLS (the product's ``Uplink``), pushes its inventory
through the product's ``InventoryFeed``: M synthetic workloads, a few replaced a minute
(churn), and ``running`` captures whose counters move every second. It answers starts, stops
and removes with records, and captures no packet. Nothing here runs in the product, and no
correctness test uses it: they run real agents on real runtimes.

Run as its own process (``python -m bench.simagents …``), so its CPU is the agents' CPU; it
writes its state (joined, connected, commands served, errors) to a JSON file once a second.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from podcap.agent.feed import InventoryFeed
from podcap.errors import NotFound, PodcapError, ResourceExhausted, Unavailable
from podcap.model import AgentInfo, Capture, CaptureSpec, Stats, Status, Workload
from podcap.streams import PcapRequest, PcapStream
from podcap.transport.grpc.join import Identity, join
from podcap.transport.grpc.uplink import Uplink
from podcap.views import NodeView

TICK_SLICES = 20  # the nodes' seconds, spread: a twentieth of them every 50 ms


class SimAgent:
    """An ``AgentTransport`` made of memory: synthetic workloads, records for captures."""

    def __init__(self, agent_id: str, node: str, workloads: int, running: int,
                 rng: random.Random) -> None:
        self._info = AgentInfo(id=agent_id, node=node, runtimes=("cri",), version="sim",
                               started=time.time(), disk_budget=10**10, reclaim="none")
        self._rng = rng
        self._lock = threading.Lock()
        self._workloads = {w.id: w for w in (self._workload(i) for i in range(workloads))}
        self._captures: dict[str, Capture] = {}
        self._made = workloads
        self.feed = InventoryFeed(self.list_workloads, self.list_captures)
        self._view = NodeView()
        for w in list(self._workloads.values())[:running]:
            self.start(w.id, CaptureSpec(filter="udp port 9"), "sim")

    def _workload(self, i: int) -> Workload:
        node = self._info.node
        return Workload(id=secrets.token_hex(32), name=f"{node}-app-{i}", runtime="cri",
                        node=node, state="running", pid=1, pid_start=1, netns=4026531840 + i,
                        ips=(f"10.{i % 250}.{self._rng.randrange(250)}.{i % 200 + 1}",),
                        labels={"app": f"app-{i % 7}"}, pod_name=f"app-{i}",
                        namespace=f"team-{i % 5}", container_name=f"app-{i}",
                        image="registry.example/app:1", created=time.time(), cap_sniff=True)

    # ---- the simulation ----------------------------------------------------------------

    def churn(self) -> None:
        """One workload replaced by a new one (a pod rescheduled)."""
        with self._lock:
            gone = self._rng.choice(list(self._workloads))
            del self._workloads[gone]
            w = self._workload(self._made)
            self._made += 1
            self._workloads[w.id] = w

    def count(self) -> None:
        """A second of traffic on every running capture."""
        with self._lock:
            for c in self._captures.values():
                if c.status is Status.RUNNING:
                    n = self._rng.randrange(50, 150)
                    c.stats = Stats(captured=c.stats.captured + n, received=c.stats.received + n,
                                    bytes=c.stats.bytes + 100 * n)

    # ---- AgentTransport --------------------------------------------------------------

    def info(self) -> AgentInfo:
        return self._info

    def list_workloads(self) -> list[Workload]:
        with self._lock:
            return list(self._workloads.values())

    def list_captures(self) -> list[Capture]:
        with self._lock:
            return [_copy(c) for c in self._captures.values()]

    def known_captures(self) -> list[Capture]:
        return self.list_captures()

    def get_capture(self, capture_id: str) -> Capture:
        with self._lock:
            if capture_id not in self._captures:
                raise NotFound(f"capture {capture_id} not found")
            return _copy(self._captures[capture_id])

    def check_filter(self, expression: str) -> None:
        pass

    def start(self, workload_id: str, spec: CaptureSpec, owner: str = "") -> Capture:
        with self._lock:
            w = self._workloads.get(workload_id)
            if w is None:
                raise NotFound(f"workload {workload_id} not found")
            c = Capture(id=secrets.token_hex(16), agent_id=self._info.id, workload=w,
                        spec=spec, args=["tcpdump", "(simulated)"], start_time=time.time(),
                        owner=owner, files=1)
            self._captures[c.id] = c
            return _copy(c)

    def stop(self, capture_id: str) -> Capture:
        with self._lock:
            c = self._captures.get(capture_id)
            if c is None:
                raise NotFound(f"capture {capture_id} not found")
            if c.status is Status.RUNNING:
                c.status, c.reason, c.stop_time = Status.STOPPED, "stopped by user", time.time()
            return _copy(c)

    def remove(self, capture_id: str) -> None:
        with self._lock:
            if self._captures.pop(capture_id, None) is None:
                raise NotFound(f"capture {capture_id} not found")

    def stream_pcap(self, capture_id: str, request: PcapRequest = PcapRequest()) -> PcapStream:
        raise Unavailable("a simulated agent has no packets")

    def document(self, capture_id: str, name: str, params: dict[str, str] | None = None,
                 ) -> dict[str, object]:
        raise NotFound(f"no document {name!r} on a simulated agent")

    def view(self) -> NodeView:
        return self._view

    def sync(self) -> None:
        self.feed.tick()

    def close(self) -> None:
        pass


def _copy(c: Capture) -> Capture:
    import dataclasses
    return dataclasses.replace(c, stats=dataclasses.replace(c.stats))


class Fleet:
    def __init__(self, ns: argparse.Namespace) -> None:
        self.ns = ns
        self.rng = random.Random(ns.seed)
        self.state: dict[str, object] = {"pid": os.getpid(), "joined": 0, "join_refused": 0,
                                         "errors": [], "nodes": ns.nodes}
        self.agents: list[SimAgent] = []
        self.uplinks: list[Uplink] = []
        self.stop = threading.Event()

    def join_all(self) -> None:
        """Every agent joins at once (a pool of ``--parallel``); a join refused by the join
        port's rate limit is tried again, and counted."""
        began = time.monotonic()

        def one(i: int) -> Identity:
            node = f"{self.ns.prefix}-{i:04d}"
            while True:
                try:
                    identity = join(self.ns.join, self.ns.token, node)
                    self.state["joined"] = int(self.state["joined"]) + 1  # type: ignore[call-overload]
                    return identity
                except ResourceExhausted:
                    self.state["join_refused"] = int(self.state["join_refused"]) + 1  # type: ignore[call-overload]
                    time.sleep(0.2 + self.rng.random() * 0.3)

        with ThreadPoolExecutor(self.ns.parallel) as pool:
            identities = list(pool.map(one, range(self.ns.nodes)))
        self.state["join_s"] = time.monotonic() - began
        for i, identity in enumerate(identities):
            agent = SimAgent(identity.agent_id, f"{self.ns.prefix}-{i:04d}", self.ns.workloads,
                             self.ns.running, random.Random(self.rng.random()))
            uplink = Uplink(agent, self.ns.agent, identity, feed=agent.feed)
            self.agents.append(agent)
            self.uplinks.append(uplink)
        self.state["sessions_started"] = time.time()
        for uplink in self.uplinks:
            threading.Thread(target=uplink.run, daemon=True, name="sim-uplink").start()

    def drive(self) -> None:
        """Once a second for each node: counters move, a few workloads are replaced, its feed
        looks. Nodes' seconds are not in step (each agent's timer starts when it does), so the
        nodes are taken in ``TICK_SLICES`` slices spread over the second; ``--in-step`` ticks
        them all at once instead (every node's counters in one burst: the worst case)."""
        per_second = self.ns.churn_per_min / 60.0
        slices = 1 if self.ns.in_step else TICK_SLICES
        due, turn = time.monotonic(), 0
        while True:
            due += 1.0 / slices
            if self.stop.wait(max(0.0, due - time.monotonic())):
                return
            for agent in self.agents[turn::slices]:
                agent.count()
                if self.rng.random() < per_second:
                    agent.churn()
                agent.feed.tick()
            turn = (turn + 1) % slices
            if turn == 0:
                self.write()

    def write(self) -> None:
        handled: Counter[str] = Counter()
        for uplink in self.uplinks:
            handled.update(uplink.handled)
        self.state["handled"] = dict(handled)
        self.state["at"] = time.time()
        tmp = self.ns.status.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        tmp.replace(self.ns.status)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.simagents", description=__doc__)
    ap.add_argument("--join", required=True, help="the controller's join address")
    ap.add_argument("--agent", required=True, help="the controller's agent address")
    ap.add_argument("--token", required=True)
    ap.add_argument("--nodes", type=int, default=500)
    ap.add_argument("--workloads", type=int, default=20)
    ap.add_argument("--running", type=int, default=1, help="running captures per node")
    ap.add_argument("--churn-per-min", type=float, default=2.0, help="per node")
    ap.add_argument("--parallel", type=int, default=64, help="joins at once")
    ap.add_argument("--in-step", action="store_true",
                    help="every node's second at once (one burst a second), not spread")
    ap.add_argument("--prefix", default="sim")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--status", type=Path, required=True)
    ns = ap.parse_args()
    fleet = Fleet(ns)
    try:
        fleet.join_all()
    except PodcapError as exc:
        fleet.state["errors"] = [exc.message]  # type: ignore[index]
        fleet.write()
        raise
    fleet.write()
    fleet.drive()


if __name__ == "__main__":
    main()
