"""The agent's capture table in memory: every capture it keeps, the tcpdump of each running one,
and the one lock that guards both.

Everything that changes a capture (start, stop, the watcher, recovery, reclaim) takes
``lock``; readers get copies (``snapshot``), so a caller never sees a record mid-change.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
from pathlib import Path

from podcap.agent.store import CaptureStore
from podcap.errors import NotFound
from podcap.ids import capture_id
from podcap.model import Capture, Status
from podcap.pcap import ring
from podcap.runtime.base import proc_start_time, process_alive


@dataclasses.dataclass
class Proc:
    """A running tcpdump: our child (``popen``), or one adopted after a restart."""

    pid: int
    pid_start: int | None
    popen: subprocess.Popen[bytes] | None = None
    stopping: bool = False

    @classmethod
    def child(cls, popen: subprocess.Popen[bytes]) -> Proc:
        return cls(pid=popen.pid, pid_start=proc_start_time(popen.pid), popen=popen)

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return process_alive(self.pid, self.pid_start)

    def exit_code(self) -> int | None:
        return self.popen.returncode if self.popen is not None else None


class CaptureTable:
    def __init__(self, store: CaptureStore) -> None:
        self.store = store
        self.lock = threading.RLock()
        self.captures: dict[str, Capture] = {}
        self.procs: dict[str, Proc] = {}

    def get(self, cid: str) -> Capture:
        """The live record (hold ``lock``); ``NotFound`` for an id this agent does not keep."""
        capture = self.captures.get(capture_id(cid))
        if capture is None:
            raise NotFound(f"capture {cid} not found")
        return capture

    @staticmethod
    def snapshot(capture: Capture) -> Capture:
        return dataclasses.replace(capture, stats=dataclasses.replace(capture.stats),
                                   recording=dataclasses.replace(capture.recording)
                                   if capture.recording is not None else None)

    def all(self) -> list[Capture]:
        with self.lock:
            return [self.snapshot(c) for c in self.captures.values()]

    def one(self, cid: str) -> Capture:
        with self.lock:
            return self.snapshot(self.get(cid))

    def is_running(self, cid: str) -> bool:
        with self.lock:
            capture = self.captures.get(cid)
            return capture is not None and capture.status is Status.RUNNING

    def listening(self) -> dict[str, tuple[int, Path]]:
        """Running tcpdumps not being stopped: pid and files directory by capture id."""
        with self.lock:
            return {cid: (p.pid, self.store.files_dir(cid))
                    for cid, p in self.procs.items() if not p.stopping}

    def refresh_files(self, capture: Capture) -> None:
        """The record's file count and bytes, from the ring on disk."""
        paths = self.store.ring_files(capture.id)
        capture.files = len(paths)
        capture.stats.bytes = ring.total_bytes(paths)
