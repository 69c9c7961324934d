"""Who follows which capture, and the flusher that makes following live.

tcpdump writes through a stdio buffer (no ``-U``: it costs drops under load), so a file lags by
up to a buffer; a follower would wait seconds at a low packet rate. SIGUSR2 makes Debian's
tcpdump flush. The flusher sends it every ``FOLLOW_FLUSH_INTERVAL_S`` to the captures that have
at least one follower, and sleeps (no wake-ups at all) while nobody follows. The counts, the
number of flushes and the gaps followers met are served as the capture's ``follow`` document.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from podcap import limits
from podcap.capture import tcpdump
from podcap.capture.follow import Gap
from podcap.model import Capture

log = logging.getLogger("podcap.agent")

GAPS_KEPT = 100  # per capture: the newest gaps; older ones are only counted


class Following:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.followers: dict[str, int] = {}
        self.flushes: dict[str, int] = {}
        self.gaps: dict[str, list[Gap]] = {}
        self.gap_count: dict[str, int] = {}

    def add(self, cid: str) -> None:
        with self._lock:
            self.followers[cid] = self.followers.get(cid, 0) + 1
        self._wake.set()

    def remove(self, cid: str) -> None:
        with self._lock:
            left = self.followers.get(cid, 0) - 1
            if left > 0:
                self.followers[cid] = left
            else:
                self.followers.pop(cid, None)

    def gap(self, cid: str, gap: Gap) -> None:
        log.warning("capture %s: a follower lost data: %s", cid, gap.text())
        with self._lock:
            kept = self.gaps.setdefault(cid, [])
            kept.append(gap)
            del kept[:-GAPS_KEPT]
            self.gap_count[cid] = self.gap_count.get(cid, 0) + 1

    def document(self, capture: Capture, params: dict[str, str]) -> dict[str, object]:
        cid = capture.id
        with self._lock:
            return {"followers": self.followers.get(cid, 0), "flushes": self.flushes.get(cid, 0),
                    "gap_count": self.gap_count.get(cid, 0),
                    "gaps": [g.as_dict() for g in self.gaps.get(cid, [])]}

    def forget(self, cid: str) -> None:
        with self._lock:
            for table in (self.flushes, self.gaps, self.gap_count):
                table.pop(cid, None)

    def wake(self) -> None:
        self._wake.set()

    def run(self, pids: Callable[[], dict[str, int]], closing: threading.Event) -> None:
        """The flusher thread: ``pids()`` gives running captures' tcpdump pids by capture id
        (only those past "listening on": SIGUSR2 would end a tcpdump without its handler)."""
        while not closing.is_set():
            with self._lock:
                followed = set(self.followers)
            if not followed:
                self._wake.wait()
                self._wake.clear()
                continue
            for cid, pid in pids().items():
                if cid in followed:
                    tcpdump.flush(pid)
                    with self._lock:
                        self.flushes[cid] = self.flushes.get(cid, 0) + 1
            closing.wait(limits.FOLLOW_FLUSH_INTERVAL_S)
