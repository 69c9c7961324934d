"""A recorder's rings on this node (issue 21): how a trigger freezes a ring into a snapshot.

A ring is an ordinary running capture with a ``Recording`` (model.py): tcpdump's ``-C/-W``
ring over the recorder's byte cap, listed as ``recording``. A freeze goes in three steps:

1. **At the trigger** (``trigger``) every file of the ring is renamed, inside the capture's
   own files directory, to a name tcpdump never uses (``capture.pcap1000000`` and up), while
   tcpdump is held still (SIGSTOP until ``/proc`` says it stopped, the renames, SIGCONT; a
   millisecond, which the kernel's packet buffer absorbs).
   Why no packet from before the trigger can be lost: tcpdump reaches a ring file only through
   ``fopen(name, "w")`` at a rotation, and O_TRUNC empties whatever inode *that name* points at
   in that instant. Once renamed, no ring name points at a file holding packets from before the
   trigger, so every later rotation opens a new, empty inode. A rotation cannot race the renames
   (tcpdump is stopped: it opens nothing), and one made before the stop is not a race but the
   ring as it stood. The file tcpdump is writing keeps its descriptor, so what it still holds
   (its stdio buffer, the kernel's ring) lands in the renamed file. Hard links would not do: a
   link shares the very inode that a rotation truncates.
2. **The after period**: the ring runs on into fresh files. A trigger meanwhile extends the
   period (at most ``RECORDER_HOLD_MAX_S`` past the first trigger) and renames the files
   written since, as in 1: the window before the first trigger is what matters, so a second
   trigger never starts a second snapshot.
3. **The end** (``complete``): a successor ring starts for the same container and, once it
   listens, the frozen one is stopped as any capture is (drain, SIGINT: every packet received
   reaches its files). It is now an ordinary stopped capture, the snapshot, whose reason is its
   trigger; no packet of the container falls between the two rings. Files last written
   (mtime) before the window that preceded the trigger are dropped: all their packets are
   older than the window. The snapshot therefore holds the window (as far as the byte cap kept
   it) to the file, plus the after period.

A ring whose container exits non-zero, restarts or is OOM-killed is frozen at once (there is
no after period: nothing is left to capture), its reason in the runtime's words
(``triggered: container exited 137 (OOMKilled)``); a clean exit (0) is no trigger.
A freeze in progress is in the ring's record (``triggered``, ``until``), so an agent killed
during the after period completes it when it comes back.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from podcap import limits
from podcap.agent.supervisor import Supervisor
from podcap.agent.table import CaptureTable, Proc
from podcap.capture.tcpdump import RING_PREFIX
from podcap.errors import AlreadyExists, FailedPrecondition, PodcapError
from podcap.model import Capture, CaptureSpec, Reason, Recording, Status
from podcap.runtime.base import ExitStatus, proc_state

log = logging.getLogger("podcap.agent")

HELD_BASE = 1_000_000  # held files' numbers: longer than any ring index tcpdump writes
SNAPSHOT_FILES_MAX = limits.FILE_NUMBER_MAX  # what a capture record may list
SIGKILLED = 128 + 9  # the exit code of a process killed by SIGKILL: the OOM killer's, or a person's

Starter = Callable[[str, CaptureSpec, str, Recording, str], Capture]


class Rings:
    def __init__(self, table: CaptureTable, supervisor: Supervisor, start: Starter,
                 exit_status: Callable[[str], ExitStatus | None]) -> None:
        self.table = table
        self.supervisor = supervisor
        self._start = start  # Agent.start for a successor: (workload, spec, owner, rec, old)
        self._exit_status = exit_status
        self._completing: set[str] = set()
        self._lock = threading.Lock()

    def record(self, workload_id: str, spec: CaptureSpec, owner: str,
               recording: Recording) -> Capture:
        """A ring for the container: a start, unless this recorder already has a ring running
        for it (a command repeated), which is the answer then."""
        with self.table.lock:
            for c in self.table.captures.values():
                if c.recording_now and c.workload.id == workload_id and c.recording \
                        and c.recording.recorder == recording.recorder:
                    return self.table.snapshot(c)
        return self._start(workload_id, spec, owner,
                           Recording(recording.recorder, recording.window), "")

    # ---- a trigger ---------------------------------------------------------------------

    def trigger(self, cid: str, trigger: str, after: float) -> Capture:
        """Freeze ring ``cid``: its files held now, the snapshot made ``after`` seconds on (a
        freeze under way is extended instead). Returns the ring as it is now."""
        table = self.table
        with table.lock:
            capture = table.get(cid)
            rec = capture.recording
            proc = table.procs.get(cid)
            if rec is None:
                raise FailedPrecondition(f"capture {cid} is not a recorder's ring")
            now = time.time()
            ending = capture.status is not Status.RUNNING or proc is None or proc.stopping
            if rec.triggered is not None and (ending or rec.until is None or rec.until <= now):
                # The controller saw the freeze open; it closed before this reached the node
                # (its snapshot is being made or made): too late to extend, not a failure.
                raise AlreadyExists(f"the freeze of ring {cid} has ended; its snapshot is kept")
            if ending or proc is None:
                raise FailedPrecondition(f"the ring {cid} has ended; it cannot be frozen")
            if rec.until is not None and rec.triggered is not None:
                rec = dataclasses.replace(rec, until=min(
                    max(rec.until, now + after), rec.triggered + limits.RECORDER_HOLD_MAX_S))
            else:
                rec = dataclasses.replace(rec, triggered=now, until=now + after, trigger=trigger)
            self._hold(cid, proc)
            capture.recording = rec
            table.store.save(capture)
            answer = table.snapshot(capture)
        if after <= 0:
            self._complete_soon(cid)
        return answer

    def round(self) -> None:
        """The watcher's look (every 0.5 s): freezes whose after period is over are made."""
        now = time.time()
        with self.table.lock:
            due = [cid for cid, c in self.table.captures.items()
                   if c.status is Status.RUNNING and c.recording is not None
                   and c.recording.until is not None and c.recording.until <= now]
        for cid in due:
            self._complete_soon(cid)

    def _complete_soon(self, cid: str) -> None:
        with self._lock:
            if cid in self._completing:
                return
            self._completing.add(cid)
        threading.Thread(target=self.complete, args=(cid,), name="podcap-freeze",
                         daemon=True).start()

    def complete(self, cid: str) -> None:
        """The end of a freeze: a successor ring listening, then this one stopped (it is the
        snapshot)."""
        try:
            with self.table.lock:
                capture = self.table.captures.get(cid)
                if capture is None or capture.status is not Status.RUNNING \
                        or capture.recording is None:
                    return
                rec, spec = capture.recording, capture.spec
                workload, owner = capture.workload, capture.owner
            try:
                nxt = self._start(workload.id, spec, owner,
                                  Recording(rec.recorder, rec.window), cid)
                log.info("ring %s of recorder %s frozen; ring %s records on", cid,
                         rec.recorder, nxt.id)
            except PodcapError as exc:  # the container went, the budget: the controller retries
                log.warning("ring %s of recorder %s frozen; no successor: %s", cid,
                            rec.recorder, exc.message)
            self.supervisor.stop(cid, rec.trigger)
        finally:
            with self._lock:
                self._completing.discard(cid)

    # ---- the end of a ring (Supervisor.on_end) ------------------------------------------

    def on_end(self, cid: str, reason: str) -> str:
        """The reason a ring's end is recorded with, once its tcpdump is gone: a freeze's
        trigger (its files trimmed to the window), or a container's end that is a trigger."""
        with self.table.lock:
            capture = self.table.captures.get(cid)
            rec = capture.recording if capture is not None else None
            old = self.table.snapshot(capture) if capture is not None else None
        if rec is None or old is None:
            return reason
        if not rec.trigger and reason == Reason.CONTAINER_EXITED:
            trigger = self.exit_trigger(old)
            if trigger:
                rec = dataclasses.replace(rec, triggered=time.time(), until=None,
                                          trigger=trigger)
        if not rec.trigger:
            return reason
        with self.table.lock:
            if capture is not None:
                capture.recording = dataclasses.replace(rec, until=None)
            self._trim(cid, rec)
        return rec.trigger

    def exit_trigger(self, capture: Capture) -> str:
        """How the container ended, as a trigger ("" for a clean exit or when the runtime
        cannot tell). The runtime learns of an exit after the process is gone: it is asked
        again for up to ``RECORDER_EXIT_WAIT_S``."""
        deadline = time.monotonic() + limits.RECORDER_EXIT_WAIT_S
        while True:
            status = self._exit_status(capture.workload.id)
            if status is None:
                return ""  # removed already: nothing says how it ended
            # A SIGKILL (137) is often the OOM killer's, and the runtime may learn that after
            # the exit (Docker's oom event and its die event race on a busy node): ask again.
            oom_may_follow = status.exit_code == SIGKILLED and time.monotonic() < deadline
            if not status.running and not (oom_may_follow and status.reason != "OOMKilled"):
                code = "" if status.exit_code is None else f" {status.exit_code}"
                if status.reason == "OOMKilled":
                    return f"triggered: container exited{code} (OOMKilled)"
                return f"triggered: container exited{code}" if status.exit_code else ""
            if status.pid and status.pid != capture.workload.pid:
                return "triggered: container restarted"
            if time.monotonic() >= deadline:
                return ""
            time.sleep(0.1)

    # ---- files -------------------------------------------------------------------------

    def _hold(self, cid: str, proc: Proc) -> None:
        """Rename the ring's files to held names with tcpdump stopped (see the docstring)."""
        files = self.table.store.files_dir(cid)
        stopped = _pause(proc.pid)
        try:
            ring = [p for p in self.table.store.ring_files(cid) if _ring_index(p) < HELD_BASE]
            held = [p for p in self.table.store.ring_files(cid) if _ring_index(p) >= HELD_BASE]
            room = SNAPSHOT_FILES_MAX - len(held)
            number = max((_ring_index(p) for p in held), default=HELD_BASE - 1) + 1
            for path in ring[-room:] if room > 0 else []:  # oldest first: the next truncated
                os.rename(path, files / f"{RING_PREFIX}{number}")
                number += 1
        finally:
            if stopped:
                os.kill(proc.pid, signal.SIGCONT)

    def _trim(self, cid: str, rec: Recording) -> None:
        """Drop files last written before the window that preceded the trigger (never the
        newest: a snapshot keeps at least one file)."""
        if rec.triggered is None:
            return
        start = rec.triggered - rec.window
        paths = self.table.store.ring_files(cid)
        for path in paths[:-1]:
            try:
                if path.stat().st_mtime < start:
                    path.unlink()
            except OSError:
                continue


def _ring_index(path: Path) -> int:
    digits = path.name[len(RING_PREFIX):]
    return int(digits) if digits.isdecimal() else 0


def _pause(pid: int) -> bool:
    """SIGSTOP, then wait (at most 0.2 s) until the kernel says it stopped."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except OSError:
        return False
    deadline = time.monotonic() + 0.2
    while proc_state(pid) not in ("T", "t", None, "Z") and time.monotonic() < deadline:
        time.sleep(0.0005)
    return True
