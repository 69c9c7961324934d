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
from podcap.agent.recovery import find_tcpdumps
from podcap.agent.store import CaptureStore
from podcap.agent.workloads import WorkloadView
from podcap.capture import ring, tcpdump
from podcap.errors import FailedPrecondition, NotFound
from podcap.model import AgentInfo, Capture, CaptureSpec, Reason, Stats, Status, Workload
from podcap.runtime.base import proc_start_time, process_alive
from podcap.streams import PcapRequest, PcapStream
from podcap.types import capture_id, new_capture_id

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
                 min_free_bytes: int = limits.MIN_FREE_BYTES_DEFAULT) -> None:
        self.info = AgentInfo(id=agent_id, node=node,
                              runtimes=tuple(r.name for r in workloads.runtimes),
                              version=_version(), started=time.time())
        self.workloads = workloads
        self.store = CaptureStore(data_dir / "captures")
        self.empty_pcap = tcpdump.write_empty_pcap(data_dir / "empty-sll2.pcap")
        self.disk_budget = disk_budget
        self.min_free_bytes = min_free_bytes
        self._lock = threading.RLock()
        self._captures: dict[str, Capture] = {}
        self._procs: dict[str, _Proc] = {}
        self._closing = threading.Event()
        self._monitor: threading.Thread | None = None
        # name -> provider of a JSON document about a capture (served by ``document``)
        self.documents: dict[str, Callable[[Capture, dict[str, str]], dict[str, object]]] = {}

    # ---- life of the agent -------------------------------------------------------------

    def open(self) -> Agent:
        self._recover()
        self._monitor = threading.Thread(target=self._watch, name="podcap-monitor", daemon=True)
        self._monitor.start()
        return self

    def close(self, stop_captures: bool = True) -> None:
        """Graceful shutdown stops running captures (reason "agent shut down"); a crash does
        not get here, and the next start re-adopts what still runs."""
        self._closing.set()
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

    def start(self, workload_id: str, spec: CaptureSpec) -> Capture:
        workload = self.workloads.get(workload_id)
        if not workload.cap_sniff:
            raise FailedPrecondition(
                f"Unable to capture the container traffic: {workload.name} is "
                f"{workload.cap_sniff_reason}")
        tcpdump.compile_filter(spec.filter, self.empty_pcap)
        cid = new_capture_id()
        with self._lock:
            self._check_budget(spec)
            files_dir = self.store.files_dir(cid)
            capture = Capture(id=cid, agent_id=self.info.id, workload=workload, spec=spec,
                              args=tcpdump.tcpdump_args(spec, files_dir)[1:],
                              start_time=time.time())
            self.store.create(capture)
            self._captures[cid] = capture
        try:
            proc = self._spawn(capture)
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
                self.store.save(capture)
                log.info("capture %s started on %s (%s), tcpdump pid %d", cid, workload.name,
                         workload.id[:12], proc.pid)
                return self._snapshot(capture)
        tcpdump.terminate(proc.pid, alive=proc.alive)  # stopped or removed while starting
        return self.capture(cid)

    def stop(self, cid: str) -> Capture:
        cid = capture_id(cid)
        self._stop(cid, Reason.USER)
        return self.capture(cid)

    def remove(self, cid: str) -> None:
        cid = capture_id(cid)
        self._stop(cid, Reason.USER, drain=False)  # the files go too: nothing to keep
        with self._lock:
            self._captures.pop(cid, None)
            self.store.delete(cid)
        log.info("capture %s removed", cid)

    def stream_pcap(self, cid: str, request: PcapRequest = PcapRequest(),
                    chunk: int = limits.DOWNLOAD_CHUNK_BYTES) -> PcapStream:
        with self._lock:
            live = self._get(cid).status is Status.RUNNING
        paths = ring.ring_files(self.store.files_dir(cid), tcpdump.RING_PREFIX)
        return ring.merged(paths, live=live, limit=request.limit, chunk=chunk)

    def document(self, cid: str, name: str, params: dict[str, str]) -> dict[str, object]:
        """A JSON document about one capture, by name (see ``self.documents``)."""
        with self._lock:
            capture = self._snapshot(self._get(cid))
        provider = self.documents.get(name)
        if provider is None:
            raise NotFound(f"no document {name[:40]!r}; known: {', '.join(sorted(self.documents))}")
        return provider(capture, params)

    # ---- internals ---------------------------------------------------------------------

    def _get(self, cid: str) -> Capture:
        capture = self._captures.get(capture_id(cid))
        if capture is None:
            raise NotFound(f"capture {cid} not found")
        return capture

    def _snapshot(self, capture: Capture) -> Capture:
        return dataclasses.replace(capture, stats=dataclasses.replace(capture.stats))

    def _check_budget(self, spec: CaptureSpec) -> None:
        running = [c for c in self._captures.values() if c.status is Status.RUNNING]
        if len(running) >= limits.MAX_RUNNING_CAPTURES:
            raise FailedPrecondition(
                f"{len(running)} captures are running on this node, the maximum is "
                f"{limits.MAX_RUNNING_CAPTURES}; stop one first")
        used = sum(c.spec.max_bytes if c.status is Status.RUNNING else c.stats.bytes
                   for c in self._captures.values())
        if used + spec.max_bytes > self.disk_budget:
            raise FailedPrecondition(
                f"disk budget: this capture may use up to {spec.max_bytes / 1e6:.0f} MB "
                f"({spec.file_number} files x {spec.file_size_mb} MB), but "
                f"{used / 1e6:.0f} MB of the node's {self.disk_budget / 1e6:.0f} MB budget "
                "are taken; delete old captures or lower file_size_mb or file_number")

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
        tcpdump.wait_listening(popen, log_path)
        return _Proc(pid=popen.pid, pid_start=proc_start_time(popen.pid), popen=popen)

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
                if drain:
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
            self._refresh_files(capture)
            capture.status, capture.reason = status, str(reason)
            capture.stop_time = stop_time or time.time()
            self.store.save(capture)
            log.info("capture %s %s: %s (%d packets)", cid, status, capture.reason,
                     capture.stats.captured)

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
        low_disk = shutil.disk_usage(self.store.root).free < self.min_free_bytes
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
                elif low_disk:
                    due.append((cid, Reason.DISK_BUDGET))
        return due

    def _ended_by_itself(self, cid: str, proc: _Proc) -> None:
        code = proc.exit_code()
        if code == 0:
            self._finish(cid, "tcpdump exited")
        else:
            text = tcpdump.error_text(self.store.log_path(cid))
            self._finish(cid, f"error: {text}", Status.FAILED)

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
                log.info("capture %s re-adopted (tcpdump pid %d)", capture.id, found[0])
            else:
                self._finish(capture.id, "tcpdump ended while the agent was down",
                             stop_time=_mtime(self.store.log_path(capture.id)))
        for cid, (pid, start) in leftovers.items():
            log.warning("stopping stray tcpdump pid %d of unknown capture %s", pid, cid)
            tcpdump.terminate(pid, alive=functools.partial(process_alive, pid, start))


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _version() -> str:
    from podcap import __version__
    return __version__

