"""The end of a running tcpdump, whoever ends it: the drain and stop podcap makes, and the
record of an end (final counters, files, reason), written once.

A stop drains first (every packet received before now reaches the file), then SIGINTs the
group; an end podcap did not make with SIGINT may leave half a record, so the newest ring file
is cut after its last whole one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from podcap import limits
from podcap.agent.table import CaptureTable, Proc
from podcap.capture import signals
from podcap.capture.tcpdump_log import exit_reason, parse_stats
from podcap.insight.series import LiveSeries
from podcap.logs import capture_fields
from podcap.model import TRIGGERED, Reason, Status
from podcap.pcap.repair import repair_tail

log = logging.getLogger("podcap.agent")

# Ends where podcap SIGINTed tcpdump, which then flushed whole records.
_SIGINT_ENDS = frozenset({Reason.USER, Reason.DURATION, Reason.CONTAINER_EXITED,
                          Reason.DISK_BUDGET, Reason.AGENT_SHUTDOWN})


class Supervisor:
    def __init__(self, table: CaptureTable, series: LiveSeries, node: str) -> None:
        self.table = table
        self.series = series
        self.node = node
        # (capture id, reason) -> the reason its end is recorded with, asked once its tcpdump
        # is gone: a recorder's ring says what triggered it (agent/rings.py)
        self.on_end: Callable[[str, str], str] | None = None

    def stop(self, cid: str, reason: str, drain: bool = True) -> None:
        """Drain (every packet received before now reaches the file), SIGINT, then record."""
        table = self.table
        with table.lock:
            if table.get(cid).status is not Status.RUNNING:
                return
            proc = table.procs.get(cid)
            first = proc is not None and not proc.stopping
            if proc is not None:
                proc.stopping = True
        if proc is not None:
            if first:
                if drain and reason != Reason.DISK_FULL:  # a full disk: stop writing now
                    signals.drain(proc.pid, table.store.log_path(cid))
                signals.terminate(proc.pid, alive=proc.alive)
            _wait_reaped(proc)
        whole = reason in _SIGINT_ENDS or str(reason).startswith(TRIGGERED)
        if self.on_end is not None:
            reason = self.on_end(cid, reason)
        self.finish(cid, reason, whole=whole)

    def stop_all(self, stops: list[tuple[str, str]]) -> None:
        """Stops in parallel: each drain may take a second, and they overlap."""
        threads = [threading.Thread(target=self.stop, args=stop, daemon=True) for stop in stops]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def ended_by_itself(self, cid: str, proc: Proc) -> None:
        reason, failed = exit_reason(proc.exit_code(), self.table.store.log_path(cid))
        self.finish(cid, reason, Status.FAILED if failed else Status.STOPPED)

    def finish(self, cid: str, reason: str, status: Status = Status.STOPPED,
               stop_time: float | None = None, whole: bool | None = None) -> None:
        """Record the end of a capture once: final statistics, file count, reason. ``whole``:
        tcpdump ended by podcap's SIGINT, which flushes whole records (default: by reason)."""
        table = self.table
        with table.lock:
            capture = table.captures.get(cid)
            if capture is None or capture.status is not Status.RUNNING:
                return
            table.procs.pop(cid, None)
            final = parse_stats(table.store.log_path(cid))
            if final is not None:
                capture.stats = final
            if not (reason in _SIGINT_ENDS if whole is None else whole):  # killed, a full disk
                self._repair_newest(cid)
            table.refresh_files(capture)
            capture.status, capture.reason = status, str(reason)
            capture.stop_time = stop_time or time.time()
            try:
                table.store.save(capture)
            except OSError as exc:  # e.g. a full disk: the previous record stays whole
                log.error("capture %s: record not saved (%s); the one on disk says %s", cid,
                          exc, "running")
            log.info("capture %s %s: %s (%d packets)", cid, status, capture.reason,
                     capture.stats.captured,
                     extra=capture_fields("capture.end", cid, capture.workload.name,
                                          self.node, owner=capture.owner,
                                          status=str(status),
                                          reason=capture.reason,
                                          packets=capture.stats.captured))
        self.series.keep(cid)

    def _repair_newest(self, cid: str) -> None:
        """Only the file tcpdump was writing can end inside a record: the others were closed
        whole at each rotation."""
        paths = self.table.store.ring_files(cid)
        if paths and (cut := repair_tail(paths[-1])):
            log.warning("capture %s: cut %d bytes of a half-written record off %s", cid, cut,
                        paths[-1].name)


def _wait_reaped(proc: Proc, timeout: float = limits.STOP_GRACE_S + 2) -> None:
    deadline = time.monotonic() + timeout
    while proc.alive() and time.monotonic() < deadline:
        time.sleep(0.02)
