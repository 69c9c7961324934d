"""The agent: one node's captures, as commands (start, stop, remove, read, documents).

The agent is the authority on a capture's process and files. Every state change is written to
the store before it is reported, and a restarted agent (kill -9 included) re-adopts the tcpdump
processes it left running, or records truthfully that they ended. This file is the agent's face
and the order of each command; the jobs behind it have their own rooms: the table in memory
(agent/table.py), the end of a tcpdump (agent/supervisor.py), the watcher thread
(agent/watcher.py), the disk budget (agent/budget.py), recovery (agent/recovery.py), followers
(agent/following.py), a start past its checks (agent/boot.py), and tcpdump itself
(capture/runner.py).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from podcap import limits
from podcap.agent import budget, netstate
from podcap.agent.boot import boot, save_running
from podcap.agent.feed import InventoryFeed
from podcap.agent.following import Following
from podcap.agent.lookup import Unconfirmed, capturable
from podcap.agent.recovery import recover
from podcap.agent.rings import Rings
from podcap.agent.store import CaptureStore
from podcap.agent.supervisor import Supervisor
from podcap.agent.table import CaptureTable
from podcap.agent.watcher import Watcher
from podcap.agent.workloads import WorkloadView
from podcap.capture.filters import compile_filter
from podcap.capture.priority import Priorities
from podcap.capture.runner import TcpdumpRun
from podcap.capture.tcpdump import write_empty_pcap
from podcap.errors import FailedPrecondition, InvalidArgument, NotFound
from podcap.ids import capture_id as checked_capture_id
from podcap.ids import new_capture_id
from podcap.insight.filtered import filtered
from podcap.insight.series import LiveSeries
from podcap.insight.summary import Insight
from podcap.logs import capture_fields
from podcap.model import AgentInfo, Capture, CaptureSpec, Reason, Recording, Status, Workload
from podcap.pcap import ring
from podcap.streams import PcapRequest, PcapStream
from podcap.views import InventoryUpdate, NodeView

log = logging.getLogger("podcap.agent")


class Agent:
    """One node's agent, and its own ``AgentTransport`` (transport/base.py): ``podcap serve``
    hands it to the controller as it is, and the uplink (``podcap agent``) serves the same
    methods over gRPC, so there is one set of commands and no wrapper to keep in step."""

    def __init__(self, data_dir: Path, workloads: WorkloadView, node: str, agent_id: str,
                 disk_budget: int = limits.DISK_BUDGET_DEFAULT,
                 min_free_bytes: int = limits.MIN_FREE_BYTES_DEFAULT,
                 reclaim: str = "none", chunk: int = limits.DOWNLOAD_CHUNK_BYTES,
                 priorities: Priorities = Priorities()) -> None:
        self.chunk = chunk  # bytes per block a stream reads: the uplink's are gRPC-message sized
        self._info = AgentInfo(id=agent_id, node=node,
                               runtimes=tuple(r.name for r in workloads.runtimes),
                               version=_version(), started=time.time(),
                               disk_budget=disk_budget, reclaim=reclaim)
        self.workloads = workloads
        self.store = CaptureStore(data_dir / "captures")
        self.empty_pcap = write_empty_pcap(data_dir / "empty-sll2.pcap")
        self.disk_budget = disk_budget
        self.min_free_bytes = min_free_bytes
        if reclaim not in limits.RECLAIM_POLICIES:
            raise ValueError(f"reclaim must be one of {', '.join(limits.RECLAIM_POLICIES)}")
        self.reclaim = reclaim  # "oldest": a start over the disk budget deletes old captures
        self.priorities = priorities  # tcpdump's nice: a capture's, a ring's (capture/priority)
        self.table = CaptureTable(self.store)
        self._closing = threading.Event()
        self._monitor: threading.Thread | None = None
        self._follow = Following()  # followers per capture, flushes, gaps (agent/following.py)
        # name -> provider of a JSON document about a capture (served by ``document``)
        self.documents: dict[str, Callable[[Capture, dict[str, str]], dict[str, object]]] = {}
        self.netstate = netstate.Snapshots(self.store.dir, self.table.lock,
                                           lambda cid: cid in self.table.captures)
        # The record's pid is saved by a thread kept for it: a start hands it over without
        # starting a thread (which costs the answer ~0.3 ms on a busy machine).
        self._records = ThreadPoolExecutor(1, thread_name_prefix="podcap-record")
        self.documents["netstate"] = self.netstate.document
        self.insight = Insight(self.store)  # what the files hold (podcap.insight)
        # tcpdump's counters, a point a second; an ended capture's are kept beside it
        self.series = LiveSeries(dir_of=self.store.dir)
        self.documents["summary"] = self.insight.summary
        self.documents["series"] = self.series.document
        self.documents["follow"] = self._follow.document
        self.supervisor = Supervisor(self.table, self.series, node)
        self.watcher = Watcher(self.table, self.supervisor, self.series, self.insight,
                               min_free_bytes)
        # recorders' rings: their freezes and their ends (agent/rings.py)
        self.rings = Rings(self.table, self.supervisor, self.start, workloads.exit_status)
        self.supervisor.on_end = self.rings.on_end
        self.watcher.rounds.append(self.rings.round)
        # What this node pushes (agent/feed.py): to its own view for ``podcap serve``, and to
        # the controller's through the uplink for ``podcap agent``.
        relist_s = limits.INVENTORY_WATCHED_RELIST_S if workloads.watched else \
            limits.INVENTORY_RELIST_S
        self.feed = InventoryFeed(self.list_workloads, self.list_captures, workloads.watch,
                                  relist_s)
        self._view = NodeView()

    # ---- life of the agent -------------------------------------------------------------

    def open(self) -> Agent:
        recover(self.table, self.supervisor, self._info.node)
        self._monitor = threading.Thread(target=self.watcher.run, args=(self._closing,),
                                         name="podcap-monitor", daemon=True)
        self._monitor.start()
        threading.Thread(target=self._follow.run, args=(self.table.listening, self._closing),
                         name="podcap-flusher", daemon=True).start()
        self.feed.subscribe(self._own_update)
        threading.Thread(target=self.feed.run, args=(self._closing,), name="podcap-feed",
                         daemon=True).start()
        return self

    def close(self, stop_captures: bool = True) -> None:
        """Graceful shutdown stops running captures (reason "agent shut down"); a crash does
        not get here, and the next start re-adopts what still runs."""
        self._closing.set()
        self._follow.wake()
        self.netstate.close()
        if self._monitor:
            self._monitor.join(timeout=5)
        if stop_captures:
            self.supervisor.stop_all([(c.id, Reason.AGENT_SHUTDOWN) for c in self.list_captures()
                                      if c.status is Status.RUNNING])
        self._records.shutdown(wait=True)  # a pid saved late is saved before we return
        self.workloads.close()

    # ---- queries -----------------------------------------------------------------------

    def info(self) -> AgentInfo:
        return self._info

    def list_workloads(self) -> list[Workload]:
        return self.workloads.list()

    def check_filter(self, expression: str) -> None:
        CaptureSpec(filter=expression)  # length and character rules first
        compile_filter(expression, self.empty_pcap)

    def list_captures(self) -> list[Capture]:
        return self.table.all()

    def get_capture(self, capture_id: str) -> Capture:
        return self.table.one(capture_id)

    known_captures = list_captures  # its own authority: what it knows is what it has

    def view(self) -> NodeView:
        """This node's inventory as its feed pushed it: what the controller's lists read,
        exactly as they read a remote node's."""
        return self._view

    def sync(self) -> None:
        """Look now: the view holds every change made before this call when it returns."""
        self.feed.tick()

    def _own_update(self, update: InventoryUpdate) -> None:
        if not self._view.apply(update):
            self.feed.resync(self._own_update)

    # ---- commands ----------------------------------------------------------------------

    def record(self, workload_id: str, spec: CaptureSpec, owner: str,
               recording: Recording) -> Capture:
        """A recorder's ring for the container (agent/rings.py)."""
        return self.rings.record(workload_id, spec, owner, recording)

    def freeze(self, capture_id: str, trigger: str, after: float) -> Capture:
        """Freeze a recorder's ring: a snapshot of its window and ``after`` seconds more."""
        return self.rings.trigger(checked_capture_id(capture_id), trigger, after)

    def start(self, workload_id: str, spec: CaptureSpec, owner: str = "",
              recording: Recording | None = None, replacing: str = "") -> Capture:
        """Checks, the record, then tcpdump (capture/runner.py): the record is written while
        tcpdump boots, and tcpdump is told its argv by the runner alone. ``workload_id`` is a
        full id, as the controller resolved it; a name or a short id is ``InvalidArgument``.
        ``recording``: a recorder's ring; ``replacing``: the ring it takes over from."""
        lookup = self.workloads.lookup(workload_id)  # the runtime's word while it boots
        workload = capturable(lookup.first())
        # The capture's own tcpdump compiles the filter (capture/runner.py). Only a start that
        # may delete old captures compiles it first: a typo must never cost a capture.
        if self.reclaim != "none":
            compile_filter(spec.filter, self.empty_pcap)
        if budget.disk_full(self.store.root):
            raise FailedPrecondition(
                f"disk full: less than {limits.DISK_FULL_RESERVE_BYTES // 1024} KiB free where "
                "captures are kept; delete captures or free space first")
        cid = new_capture_id()
        table = self.table
        with table.lock:
            reclaimed = budget.reclaim(table, self.series, spec, cid, self.disk_budget,
                                       self.reclaim, self._info.node, replacing)
            run = TcpdumpRun(spec, self.store.files_dir(cid), self.store.log_path(cid),
                             self.priorities.of(ring=recording is not None))
            capture = Capture(id=cid, agent_id=self._info.id, workload=workload, spec=spec,
                              args=run.args, start_time=time.time(), owner=owner,
                              recording=recording)
            self.store.dir(cid).mkdir(mode=0o700)  # the record is written while tcpdump boots
            self.store.files_dir(cid).mkdir(mode=0o700)
            table.captures[cid] = capture
        try:
            proc = boot(table, self.empty_pcap, capture, run, lookup.confirm)
        except (InvalidArgument, Unconfirmed) as exc:  # a filter tcpdump refused, a workload
            with table.lock:                           # the runtime refused: nothing is kept
                table.captures.pop(cid, None)
                self.store.delete(cid)
            if isinstance(exc, Unconfirmed):
                raise exc.error from None
            raise
        except Exception as exc:
            with table.lock:
                capture.status, capture.stop_time = Status.FAILED, time.time()
                capture.reason = f"error: {getattr(exc, 'message', exc)}"
                table.refresh_files(capture)
                self.store.save(capture)
            raise
        with table.lock:
            if capture.status is Status.RUNNING:
                capture.pid, capture.pid_start = proc.pid, proc.pid_start
                capture.start_time = time.time()
                table.procs[cid] = proc
                # The record written while tcpdump booted already says "running" (recovery
                # finds tcpdump by its -w path); adding the pid is no reason to make the caller
                # wait for an fsync.
                self._records.submit(save_running, table, cid)
                self.netstate.take(cid, proc.popen)  # in the background, never fails a start
                log.info("capture %s started on %s (%s), tcpdump pid %d", cid, workload.name,
                         workload.id[:12], proc.pid,
                         extra=capture_fields("capture.running", cid, workload.name,
                                              self._info.node, owner or None, owner=owner,
                                              pid=proc.pid))
                return dataclasses.replace(table.snapshot(capture), reclaimed=reclaimed)
        run.abandon(grace=limits.STOP_GRACE_S)  # stopped or removed while starting
        return dataclasses.replace(self.get_capture(cid), reclaimed=reclaimed)

    def stop(self, capture_id: str) -> Capture:
        cid = checked_capture_id(capture_id)
        self.supervisor.stop(cid, Reason.USER)
        return self.get_capture(cid)

    def remove(self, capture_id: str) -> None:
        cid = checked_capture_id(capture_id)
        self.supervisor.stop(cid, Reason.USER, drain=False)  # the files go too: nothing to keep
        with self.table.lock:
            gone = self.table.captures.pop(cid, None)
            self.store.delete(cid)
        self._follow.forget(cid)
        self.series.forget(cid)
        log.info("capture %s removed", cid,
                 extra=capture_fields("capture.removed", cid,
                                      gone.workload.name if gone else "", self._info.node,
                                      owner=gone.owner if gone else ""))

    def stream_pcap(self, capture_id: str, request: PcapRequest = PcapRequest()) -> PcapStream:
        """The capture's packets as one request asks: followed live, filtered to one
        conversation, or the ring merged (pcap/ring.py). Read in ``self.chunk`` blocks."""
        cid = checked_capture_id(capture_id)
        with self.table.lock:
            capture = self.table.get(cid)
            live, spec = capture.status is Status.RUNNING, capture.spec
        if request.follow:
            return self._follow.stream(capture.id, self.store.files_dir(capture.id), spec,
                                       lambda: self.table.is_running(capture.id),
                                       request.from_now, self.chunk)
        paths = self.store.ring_files(cid)
        if request.filter:  # one conversation (podcap.insight): filtered on this node
            self.check_filter(request.filter)
            return filtered(paths, request.filter, chunk=self.chunk)
        return ring.merged(paths, live=live, limit=request.limit, offset=request.offset,
                           chunk=self.chunk)

    def document(self, capture_id: str, name: str, params: dict[str, str] | None = None,
                 ) -> dict[str, object]:
        """A JSON document about one capture, by name (see ``self.documents``)."""
        capture = self.table.one(capture_id)
        provider = self.documents.get(name)
        if provider is None:
            raise NotFound(f"no document {name[:40]!r}; known: {', '.join(sorted(self.documents))}")
        return provider(capture, params or {})


def _version() -> str:
    from podcap import __version__
    return __version__
