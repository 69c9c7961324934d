"""After a restart: re-adopt the tcpdump processes a previous agent left running, close the
records whose tcpdump ended meanwhile, and stop the strays.

A tcpdump of ours writes ``-w <captures>/<capture id>/files/...``; scanning /proc for that
argument finds it whether the old agent recorded its pid or died first.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from podcap.agent.supervisor import Supervisor
from podcap.agent.table import CaptureTable, Proc
from podcap.capture.signals import terminate
from podcap.logs import capture_fields
from podcap.model import Status
from podcap.runtime.base import proc_start_time, process_alive, processes

log = logging.getLogger("podcap.agent")


def recover(table: CaptureTable, supervisor: Supervisor, node: str) -> None:
    """Load every record into ``table``; running ones get their tcpdump back (pid and start
    time match) or are closed with what tcpdump last printed."""
    leftovers = find_tcpdumps(table.store.root)
    for capture in table.store.load_all():
        table.captures[capture.id] = capture
        if capture.status is not Status.RUNNING:
            continue
        found = leftovers.get(capture.id)
        if found is not None and capture.pid_start not in (None, found[1]):
            found = None  # not the tcpdump this record started: stopped below as a stray
        elif found is not None:
            del leftovers[capture.id]
        if found is not None:
            table.procs[capture.id] = Proc(pid=found[0], pid_start=found[1])
            capture.pid, capture.pid_start = found
            table.store.save(capture)
            log.info("capture %s re-adopted (tcpdump pid %d)", capture.id, found[0],
                     extra=capture_fields("capture.readopted", capture.id,
                                          capture.workload.name, node,
                                          owner=capture.owner, pid=found[0]))
        else:
            supervisor.finish(capture.id, "tcpdump ended while the agent was down",
                              stop_time=_mtime(table.store.log_path(capture.id)))
    for cid, (pid, start) in leftovers.items():
        log.warning("stopping stray tcpdump pid %d of unknown capture %s", pid, cid)
        terminate(pid, alive=functools.partial(process_alive, pid, start))


def find_tcpdumps(captures_root: Path) -> dict[str, tuple[int, int | None]]:
    """{capture id: (pid, start time)} of live tcpdump processes writing under the root."""
    found: dict[str, tuple[int, int | None]] = {}
    prefix = str(captures_root) + "/"
    for pid, argv in processes():
        if not argv or not argv[0].endswith(b"tcpdump") or b"-w" not in argv:
            continue
        at = argv.index(b"-w") + 1
        out = argv[at].decode(errors="replace") if at < len(argv) else ""
        if not out.startswith(prefix):
            continue
        cid = out[len(prefix):].split("/", 1)[0]
        start = proc_start_time(pid)
        if process_alive(pid, start):
            found[cid] = (pid, start)
    return found


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
