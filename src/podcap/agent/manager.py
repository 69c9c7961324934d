"""The capture lifecycle on one node: start, watch, stop, remove, recover, stream.

The agent is the authority on a capture's process and files. Every state change is written to
the store before it is reported, and a restarted agent (kill -9 included) re-adopts the tcpdump
processes it left running, or records truthfully that they ended.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from podcap import limits
from podcap.agent import budget, netstate
from podcap.agent.following import Following
from podcap.agent.recovery import find_tcpdumps
from podcap.agent.store import CaptureStore
from podcap.agent.workloads import WorkloadView
from podcap.capture import ring, tcpdump
from podcap.capture.follow import RingFollower
from podcap.errors import FailedPrecondition, InvalidArgument, NotFound
from podcap.ids import capture_id, new_capture_id
from podcap.insight.filtered import filtered
from podcap.insight.series import LiveSeries
from podcap.insight.summary import Insight
from podcap.logs import capture_fields
from podcap.model import AgentInfo, Capture, CaptureSpec, Reason, Stats, Status, Workload
from podcap.runtime.base import proc_start_time, process_alive
from podcap.streams import PcapRequest, PcapStream

log = logging.getLogger("podcap.agent")


@dataclasses.dataclass
class _Proc:
    """A running tcpdump: our child (``popen``), or one adopted after a restart."""

    pid: int
    pid_start: int | None
    popen: subprocess.Popen[bytes] | None = None
    stopping: bool = False

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return process_alive(self.pid, self.pid_start)

    def exit_code(self) -> int | None:
        return self.popen.returncode if self.popen is not None else None


class Agent:
    def __init__(self, data_dir: Path, workloads: WorkloadView, node: str, agent_id: str,
                 disk_budget: int = limits.DISK_BUDGET_DEFAULT,
                 min_free_bytes: int = limits.MIN_FREE_BYTES_DEFAULT,
                 reclaim: str = "none") -> None:
        self.info = AgentInfo(id=agent_id, node=node,
                              runtimes=tuple(r.name for r in workloads.runtimes),
                              version=_version(), started=time.time(),
                              disk_budget=disk_budget, reclaim=reclaim)
        self.workloads = workloads
        self.store = CaptureStore(data_dir / "captures")
        self.empty_pcap = tcpdump.write_empty_pcap(data_dir / "empty-sll2.pcap")
        self.disk_budget = disk_budget
        self.min_free_bytes = min_free_bytes
        if reclaim not in limits.RECLAIM_POLICIES:
            raise ValueError(f"reclaim must be one of {', '.join(limits.RECLAIM_POLICIES)}")
        self.reclaim = reclaim  # "oldest": a start over the disk budget deletes old captures
        self._lock = threading.RLock()
        self._captures: dict[str, Capture] = {}
        self._procs: dict[str, _Proc] = {}
        self._closing = threading.Event()
        self._monitor: threading.Thread | None = None
        self._follow = Following()  # followers per capture, flushes, gaps (agent/following.py)
        # name -> provider of a JSON document about a capture (served by ``document``)
        self.documents: dict[str, Callable[[Capture, dict[str, str]], dict[str, object]]] = {}
        self.netstate = netstate.Snapshots(self.store.dir, self._lock,
                                           lambda cid: cid in self._captures)
        self.documents["netstate"] = self.netstate.document
        self.insight = Insight(self.store)  # what the files hold (podcap.insight)
        # tcpdump's counters, a point a second; an ended capture's are kept beside it
        self.series = LiveSeries(dir_of=self.store.dir)
        self.documents["summary"] = self.insight.summary
        self.documents["series"] = self.series.document
        self.documents["follow"] = self._follow.document

    # ---- life of the agent -------------------------------------------------------------

    def open(self) -> Agent:
        self._recover()
        self._monitor = threading.Thread(target=self._watch, name="podcap-monitor", daemon=True)
        self._monitor.start()
        threading.Thread(target=self._follow.run, args=(self._flushable, self._closing),
                         name="podcap-flusher", daemon=True).start()
        return self

    def close(self, stop_captures: bool = True) -> None:
        """Graceful shutdown stops running captures (reason "agent shut down"); a crash does
        not get here, and the next start re-adopts what still runs."""
        self._closing.set()
        self._follow.wake()
        if self._monitor:
            self._monitor.join(timeout=5)
        if stop_captures:
            self._stop_all([(c.id, Reason.AGENT_SHUTDOWN) for c in self.captures()
                            if c.status is Status.RUNNING])
        self.workloads.close()

    # ---- queries -----------------------------------------------------------------------

    def list_workloads(self) -> list[Workload]:
        return self.workloads.list()

    def check_filter(self, expression: str) -> None:
        CaptureSpec(filter=expression)  # length and character rules first
        tcpdump.compile_filter(expression, self.empty_pcap)

    def captures(self) -> list[Capture]:
        with self._lock:
            return [self._snapshot(c) for c in self._captures.values()]

    def capture(self, cid: str) -> Capture:
        with self._lock:
            return self._snapshot(self._get(cid))

    # ---- commands ----------------------------------------------------------------------

    def start(self, workload_id: str, spec: CaptureSpec, owner: str = "") -> Capture:
        workload = self.workloads.get(workload_id)
        if not workload.cap_sniff:
            raise FailedPrecondition(
                f"Unable to capture the container traffic: {workload.name} is "
                f"{workload.cap_sniff_reason}")
        # The capture's own tcpdump compiles the filter (see _spawn). Only a start that may
        # delete old captures compiles it first: a typo must never cost a capture.
        if self.reclaim != "none":
            tcpdump.compile_filter(spec.filter, self.empty_pcap)
        if self._disk_full():
            raise FailedPrecondition(
                f"disk full: less than {limits.DISK_FULL_RESERVE_BYTES // 1024} KiB free where "
                "captures are kept; delete captures or free space first")
        cid = new_capture_id()
        with self._lock:
            reclaimed = self._check_budget(spec, cid)
            files_dir = self.store.files_dir(cid)
            capture = Capture(id=cid, agent_id=self.info.id, workload=workload, spec=spec,
                              args=tcpdump.tcpdump_args(spec, files_dir)[1:],
                              start_time=time.time(), owner=owner)
            self.store.dir(cid).mkdir(mode=0o700)  # the record is written while tcpdump boots
            files_dir.mkdir(mode=0o700)
            self._captures[cid] = capture
        try:
            proc = self._spawn(capture)
        except InvalidArgument:  # a filter tcpdump refused: nothing ran, nothing is kept
            with self._lock:
                self._captures.pop(cid, None)
                self.store.delete(cid)
            raise
        except Exception as exc:
            with self._lock:
                capture.status, capture.stop_time = Status.FAILED, time.time()
                capture.reason = f"error: {getattr(exc, 'message', exc)}"
                self._refresh_files(capture)
                self.store.save(capture)
            raise
        with self._lock:
            if capture.status is Status.RUNNING:
                capture.pid, capture.pid_start = proc.pid, proc.pid_start
                capture.start_time = time.time()
                self._procs[cid] = proc
                # The record written while tcpdump booted already says "running" (recovery
                # finds tcpdump by its -w path); adding the pid is no reason to make the caller
                # wait for an fsync.
                threading.Thread(target=self._save_running, args=(cid,), daemon=True,
                                 name="podcap-record").start()
                self.netstate.take(cid, proc.popen)  # in the background, never fails a start
                log.info("capture %s started on %s (%s), tcpdump pid %d", cid, workload.name,
                         workload.id[:12], proc.pid,
                         extra=capture_fields("capture.running", cid, workload.name,
                                              self.info.node, owner or None, owner=owner,
                                              pid=proc.pid))
                return dataclasses.replace(self._snapshot(capture), reclaimed=reclaimed)
        tcpdump.terminate(proc.pid, alive=proc.alive)  # stopped or removed while starting
        return dataclasses.replace(self.capture(cid), reclaimed=reclaimed)

    def stop(self, cid: str) -> Capture:
        cid = capture_id(cid)
        self._stop(cid, Reason.USER)
        return self.capture(cid)

    def remove(self, cid: str) -> None:
        cid = capture_id(cid)
        self._stop(cid, Reason.USER, drain=False)  # the files go too: nothing to keep
        with self._lock:
            gone = self._captures.pop(cid, None)
            self.store.delete(cid)
        self._follow.forget(cid)
        self.series.forget(cid)
        log.info("capture %s removed", cid,
                 extra=capture_fields("capture.removed", cid,
                                      gone.workload.name if gone else "", self.info.node,
                                      owner=gone.owner if gone else ""))

    def stream_pcap(self, cid: str, request: PcapRequest = PcapRequest(),
                    chunk: int = limits.DOWNLOAD_CHUNK_BYTES) -> PcapStream:
        if request.follow:
            return self._follow_stream(cid, request, chunk)
        with self._lock:
            live = self._get(cid).status is Status.RUNNING
        paths = ring.ring_files(self.store.files_dir(cid), tcpdump.RING_PREFIX)
        if request.filter:  # one conversation (podcap.insight): filtered on this node
            self.check_filter(request.filter)
            return filtered(paths, request.filter, chunk=chunk)
        return ring.merged(paths, live=live, limit=request.limit, offset=request.offset,
                           chunk=chunk)

    def document(self, cid: str, name: str, params: dict[str, str]) -> dict[str, object]:
        """A JSON document about one capture, by name (see ``self.documents``)."""
        with self._lock:
            capture = self._snapshot(self._get(cid))
        provider = self.documents.get(name)
        if provider is None:
            raise NotFound(f"no document {name[:40]!r}; known: {', '.join(sorted(self.documents))}")
        return provider(capture, params)

    # ---- live follow (capture/follow.py, agent/following.py) ---------------------------

    def _follow_stream(self, cid: str, request: PcapRequest, chunk: int) -> PcapStream:
        with self._lock:
            spec = self._get(cid).spec
        self._follow.add(cid)

        def running() -> bool:
            with self._lock:
                capture = self._captures.get(cid)
                return capture is not None and capture.status is Status.RUNNING

        reader = RingFollower(self.store.files_dir(cid), spec.file_number,
                              spec.file_size_mb * 1_000_000, running,
                              from_now=request.from_now, prefix=tcpdump.RING_PREFIX,
                              on_gap=functools.partial(self._follow.gap, cid),
                              on_end=functools.partial(self._follow.remove, cid), chunk=chunk)
        return PcapStream(reader, None)  # the count drops when the reader has really ended

    def _flushable(self) -> dict[str, tuple[int, Path]]:
        with self._lock:
            return {cid: (p.pid, self.store.files_dir(cid))
                    for cid, p in self._procs.items() if not p.stopping}

    # ---- internals ---------------------------------------------------------------------

    def _get(self, cid: str) -> Capture:
        capture = self._captures.get(capture_id(cid))
        if capture is None:
            raise NotFound(f"capture {cid} not found")
        return capture

    def _snapshot(self, capture: Capture) -> Capture:
        return dataclasses.replace(capture, stats=dataclasses.replace(capture.stats))

    def _check_budget(self, spec: CaptureSpec, for_cid: str) -> list[str]:
        """Refuse a start that does not fit the node's disk budget, or with ``reclaim``
        "oldest" first delete the oldest stopped captures (agent/budget.py). Returns the ids
        deleted, so the controller can audit them."""
        victims = budget.make_room(list(self._captures.values()), spec, self.disk_budget,
                                   self.reclaim)
        for old in victims:  # only once the new capture is known to fit
            self._captures.pop(old.id, None)
            self.store.delete(old.id)
            self.series.forget(old.id)
            log.warning("capture %s deleted to make room for capture %s (--reclaim oldest: "
                        "%s, stopped %s, %d bytes)", old.id, for_cid, old.workload.name,
                        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(old.stop_time or 0)),
                        old.stats.bytes,
                        extra=capture_fields("capture.reclaimed", old.id, old.workload.name,
                                             self.info.node, owner=old.owner,
                                             for_capture=for_cid,
                                             bytes=old.stats.bytes))
        return [old.id for old in victims]

    def _spawn(self, capture: Capture) -> _Proc:
        workload = capture.workload
        log_path = self.store.log_path(capture.id)
        try:
            netns_fd = os.open(f"/proc/{workload.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise FailedPrecondition(
                f"Unable to capture the container traffic: {workload.name} exited") from exc
        try:
            # The fd is open: if the pid still has its start time, the fd is its namespace.
            if not process_alive(workload.pid or 0, workload.pid_start):
                raise FailedPrecondition(
                    f"Unable to capture the container traffic: {workload.name} exited")
            argv = tcpdump.capture_argv(netns_fd, capture.spec, self.store.files_dir(capture.id))
            popen = tcpdump.start(argv, log_path, netns_fd)
        finally:
            os.close(netns_fd)
        try:
            with self._lock:  # tcpdump takes ~15 ms to listen: the record is written meanwhile
                if capture.id in self._captures:
                    self.store.save(capture)
            tcpdump.wait_listening(popen, log_path, expression=capture.spec.filter,
                                   empty_pcap=self.empty_pcap)
        except BaseException:
            if popen.poll() is None:  # never leave a tcpdump behind a failed start
                tcpdump.terminate(popen.pid, grace=0.5, alive=lambda: popen.poll() is None)
            raise
        return _Proc(pid=popen.pid, pid_start=proc_start_time(popen.pid), popen=popen)

    def _save_running(self, cid: str) -> None:
        with self._lock:  # after a stop or remove, the record is theirs to write or delete
            capture = self._captures.get(cid)
            if capture is not None and capture.status is Status.RUNNING:
                try:
                    self.store.save(capture)
                except OSError:
                    log.exception("capture %s: record not updated", cid)

    def _disk_full(self) -> bool:
        return shutil.disk_usage(self.store.root).free < limits.DISK_FULL_RESERVE_BYTES

    def _stop(self, cid: str, reason: str, drain: bool = True) -> None:
        """Drain (every packet received before now reaches the file), SIGINT, then record."""
        with self._lock:
            if self._get(cid).status is not Status.RUNNING:
                return
            proc = self._procs.get(cid)
            first = proc is not None and not proc.stopping
            if proc is not None:
                proc.stopping = True
        if proc is not None:
            if first:
                if drain and reason != Reason.DISK_FULL:  # a full disk: stop writing now
                    tcpdump.drain(proc.pid, self.store.log_path(cid))
                tcpdump.terminate(proc.pid, alive=proc.alive)
            self._wait_reaped(proc)
        self._finish(cid, reason)

    def _stop_all(self, stops: list[tuple[str, str]]) -> None:
        """Stops in parallel: each drain may take a second, and they overlap."""
        threads = [threading.Thread(target=self._stop, args=stop, daemon=True) for stop in stops]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _wait_reaped(self, proc: _Proc, timeout: float = limits.STOP_GRACE_S + 2) -> None:
        deadline = time.monotonic() + timeout
        while proc.alive() and time.monotonic() < deadline:
            time.sleep(0.02)

    def _finish(self, cid: str, reason: str, status: Status = Status.STOPPED,
                stop_time: float | None = None) -> None:
        """Record the end of a capture once: final statistics, file count, reason."""
        with self._lock:
            capture = self._captures.get(cid)
            if capture is None or capture.status is not Status.RUNNING:
                return
            self._procs.pop(cid, None)
            final = tcpdump.parse_stats(self.store.log_path(cid))
            if final is not None:
                capture.stats = final
            if reason not in _SIGINT_ENDS:  # killed, or a full disk: a record may be cut
                self._repair_newest(cid)
            self._refresh_files(capture)
            capture.status, capture.reason = status, str(reason)
            capture.stop_time = stop_time or time.time()
            try:
                self.store.save(capture)
            except OSError as exc:  # e.g. a full disk: the previous record stays whole
                log.error("capture %s: record not saved (%s); the one on disk says %s", cid,
                          exc, "running")
            log.info("capture %s %s: %s (%d packets)", cid, status, capture.reason,
                     capture.stats.captured,
                     extra=capture_fields("capture.end", cid, capture.workload.name,
                                          self.info.node, owner=capture.owner,
                                          status=str(status),
                                          reason=capture.reason,
                                          packets=capture.stats.captured))
        self.series.keep(cid)

    def _repair_newest(self, cid: str) -> None:
        """Only the file tcpdump was writing can end inside a record: the others were closed
        whole at each rotation."""
        paths = ring.ring_files(self.store.files_dir(cid), tcpdump.RING_PREFIX)
        if paths and (cut := tcpdump.repair_tail(paths[-1])):
            log.warning("capture %s: cut %d bytes of a half-written record off %s", cid, cut,
                        paths[-1].name)

    def _refresh_files(self, capture: Capture) -> None:
        paths = ring.ring_files(self.store.files_dir(capture.id), tcpdump.RING_PREFIX)
        capture.files = len(paths)
        capture.stats.bytes = ring.total_bytes(paths)

    # ---- the watcher: durations, container exits, disk floor, live counters -------------

    def _watch(self) -> None:
        last_stats = 0.0
        while not self._closing.wait(limits.MONITOR_INTERVAL_S):
            try:
                now = time.monotonic()
                if now - last_stats >= limits.STATS_INTERVAL_S:
                    self._refresh_live()
                    last_stats = now
                due = self._due()
                if due:  # in the background: the watcher keeps its pace while they drain
                    threading.Thread(target=self._stop_all, args=(due,), daemon=True).start()
            except Exception:  # the watcher must outlive any one bad capture
                log.exception("capture monitor error")

    def _due(self) -> list[tuple[str, str]]:
        due: list[tuple[str, str]] = []
        free = shutil.disk_usage(self.store.root).free
        low_disk = free < self.min_free_bytes
        full = free < limits.DISK_FULL_RESERVE_BYTES
        with self._lock:
            for cid, proc in list(self._procs.items()):
                capture = self._captures[cid]
                if proc.stopping:
                    continue
                if not proc.alive():
                    self._ended_by_itself(cid, proc)
                elif capture.deadline is not None and time.time() >= capture.deadline:
                    due.append((cid, Reason.DURATION))
                elif not process_alive(capture.workload.pid or 0, capture.workload.pid_start):
                    due.append((cid, Reason.CONTAINER_EXITED))
                elif full:  # tcpdump ignores write errors: stop it before it loses data
                    due.append((cid, Reason.DISK_FULL))
                elif low_disk:
                    due.append((cid, Reason.DISK_BUDGET))
        return due

    def _ended_by_itself(self, cid: str, proc: _Proc) -> None:
        reason, failed = tcpdump.exit_reason(proc.exit_code(), self.store.log_path(cid))
        self._finish(cid, reason, Status.FAILED if failed else Status.STOPPED)

    def _refresh_live(self) -> None:
        with self._lock:
            running = [(cid, p.pid) for cid, p in self._procs.items() if not p.stopping]
        for _, pid in running:
            tcpdump.request_stats(pid)
        time.sleep(0.05)  # tcpdump answers SIGUSR1 from its capture loop, within milliseconds
        with self._lock:
            for cid, _ in running:
                capture = self._captures.get(cid)
                if capture is None or capture.status is not Status.RUNNING:
                    continue
                stats = tcpdump.parse_stats(self.store.log_path(cid)) or Stats()
                stats.bytes = capture.stats.bytes
                capture.stats = stats
                self._refresh_files(capture)
                self.series.record(cid, time.time(), capture.stats, self.store.files_dir(cid))
                self.insight.keep_current(cid)  # reads a rotated file once a summary was asked

    # ---- recovery after a restart -----------------------------------------------------

    def _recover(self) -> None:
        leftovers = find_tcpdumps(self.store.root)
        for capture in self.store.load_all():
            self._captures[capture.id] = capture
            if capture.status is not Status.RUNNING:
                continue
            found = leftovers.get(capture.id)
            if found is not None and capture.pid_start not in (None, found[1]):
                found = None  # not the tcpdump this record started: stopped below as a stray
            elif found is not None:
                del leftovers[capture.id]
            if found is not None:
                self._procs[capture.id] = _Proc(pid=found[0], pid_start=found[1])
                capture.pid, capture.pid_start = found
                self.store.save(capture)
                log.info("capture %s re-adopted (tcpdump pid %d)", capture.id, found[0],
                         extra=capture_fields("capture.readopted", capture.id,
                                              capture.workload.name, self.info.node,
                                              owner=capture.owner, pid=found[0]))
            else:
                self._finish(capture.id, "tcpdump ended while the agent was down",
                             stop_time=_mtime(self.store.log_path(capture.id)))
        for cid, (pid, start) in leftovers.items():
            log.warning("stopping stray tcpdump pid %d of unknown capture %s", pid, cid)
            tcpdump.terminate(pid, alive=functools.partial(process_alive, pid, start))


# Ends where podcap SIGINTed tcpdump, which then flushed whole records.
_SIGINT_ENDS = frozenset({Reason.USER, Reason.DURATION, Reason.CONTAINER_EXITED,
                          Reason.DISK_BUDGET, Reason.AGENT_SHUTDOWN})


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _version() -> str:
    from podcap import __version__
    return __version__

