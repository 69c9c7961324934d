"""The watcher thread: every 0.5 s it ends the captures that are due (duration reached,
container gone, tcpdump ended by itself, disk below the floor or full); every second it asks
each running tcpdump for its counters and keeps them (the record, the rate series, insight),
and keeps its log short (it gains a line each time).

Stops it finds run in a background thread, so the watcher keeps its pace while they drain.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable

from podcap import limits
from podcap.agent.supervisor import Supervisor
from podcap.agent.table import CaptureTable
from podcap.capture import signals
from podcap.capture.tcpdump_log import keep_short, parse_stats
from podcap.insight.series import LiveSeries
from podcap.insight.summary import Insight
from podcap.model import Reason, Stats, Status
from podcap.runtime.base import process_alive

log = logging.getLogger("podcap.agent")


class Watcher:
    def __init__(self, table: CaptureTable, supervisor: Supervisor, series: LiveSeries,
                 insight: Insight, min_free_bytes: int) -> None:
        self.table = table
        self.supervisor = supervisor
        self.series = series
        self.insight = insight
        self.min_free_bytes = min_free_bytes
        self.rounds: list[Callable[[], None]] = []  # also looked at every round (rings' freezes)

    def run(self, closing: threading.Event) -> None:
        """The thread's loop, until ``closing`` is set."""
        last_stats = 0.0
        while not closing.wait(limits.MONITOR_INTERVAL_S):
            try:
                now = time.monotonic()
                if now - last_stats >= limits.STATS_INTERVAL_S:
                    self.refresh_live()
                    last_stats = now
                for look in self.rounds:
                    look()
                due = self.due()
                if due:  # in the background: the watcher keeps its pace while they drain
                    threading.Thread(target=self.supervisor.stop_all, args=(due,),
                                     daemon=True).start()
            except Exception:  # the watcher must outlive any one bad capture
                log.exception("capture monitor error")

    def due(self) -> list[tuple[str, str]]:
        """The running captures to stop now, with why; a tcpdump that ended by itself is
        recorded on the spot."""
        table = self.table
        due: list[tuple[str, str]] = []
        free = shutil.disk_usage(table.store.root).free
        low_disk = free < self.min_free_bytes
        full = free < limits.DISK_FULL_RESERVE_BYTES
        with table.lock:
            for cid, proc in list(table.procs.items()):
                capture = table.captures[cid]
                if proc.stopping:
                    continue
                if not proc.alive():
                    self.supervisor.ended_by_itself(cid, proc)
                elif capture.deadline is not None and time.time() >= capture.deadline:
                    due.append((cid, Reason.DURATION))
                elif not process_alive(capture.workload.pid or 0, capture.workload.pid_start):
                    due.append((cid, Reason.CONTAINER_EXITED))
                elif full:  # tcpdump ignores write errors: stop it before it loses data
                    due.append((cid, Reason.DISK_FULL))
                elif low_disk:
                    due.append((cid, Reason.DISK_BUDGET))
        return due

    def refresh_live(self) -> None:
        """SIGUSR1 to every running tcpdump, then its counters into the record and series."""
        table = self.table
        running = table.listening()
        for pid, _ in running.values():
            signals.request_stats(pid)
        time.sleep(0.05)  # tcpdump answers SIGUSR1 from its capture loop, within milliseconds
        with table.lock:
            for cid in running:
                capture = table.captures.get(cid)
                if capture is None or capture.status is not Status.RUNNING:
                    continue
                log_path = table.store.log_path(cid)
                stats = parse_stats(log_path) or Stats()
                proc = table.procs.get(cid)
                # a stop marks itself under this lock before its drain reads the log
                if proc is not None and not proc.stopping:
                    keep_short(log_path, limits.TCPDUMP_LOG_MAX_BYTES)
                stats.bytes = capture.stats.bytes
                capture.stats = stats
                table.refresh_files(capture)
                self.series.record(cid, time.time(), capture.stats, table.store.files_dir(cid))
                self.insight.keep_current(cid)  # reads a rotated file once a summary was asked
