"""A capture's start past its checks (``Agent.start``): tcpdump spawned, then, while it boots,
the workload confirmed by the runtime's fresh answer (agent/lookup.py) and the record written;
then its "listening on"; and, once it runs, the record saved with its pid.

Apart from agent/manager.py because it is one job with its own order: the record must be on
disk before tcpdump listens (recovery finds tcpdump by its ``-w`` path), and the pid is saved
later by a thread kept for it, so a start never waits for an fsync it does not need.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from podcap.agent.table import CaptureTable, Proc
from podcap.capture.runner import TcpdumpRun
from podcap.model import Capture, Status, Workload
from podcap.runtime.base import process_alive

log = logging.getLogger("podcap.agent")


def boot(table: CaptureTable, empty_pcap: Path, capture: Capture, run: TcpdumpRun,
         confirm: Callable[[Workload], Workload]) -> Proc:
    """tcpdump spawned, the workload confirmed by the runtime and the record written while
    it boots, then its "listening on". ``confirm`` is agent/lookup.py's: the runtime's answer,
    or ``Unconfirmed`` (tcpdump is then stopped before it listens)."""
    workload = capture.workload
    pid, pid_start = workload.pid or 0, workload.pid_start
    popen = run.spawn(pid, lambda: process_alive(pid, pid_start), workload.name)
    try:
        fresh = confirm(workload)
        with table.lock:  # tcpdump takes ~15 ms to listen: the record is written now
            capture.workload = fresh
            if capture.id in table.captures:
                table.store.save(capture)
        run.wait_listening(empty_pcap)
    except BaseException:
        run.abandon()
        raise
    return Proc.child(popen)


def save_running(table: CaptureTable, cid: str) -> None:
    """The record with its pid; after a stop or remove, the record is theirs to write."""
    with table.lock:
        capture = table.captures.get(cid)
        if capture is not None and capture.status is Status.RUNNING:
            try:
                table.store.save(capture)
            except OSError:
                log.exception("capture %s: record not updated", cid)
