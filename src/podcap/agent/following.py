"""Who follows which capture, and the flusher that makes following live.

tcpdump writes through a stdio buffer (no ``-U``: it costs drops under load), so a file lags by
up to a buffer; a follower would wait seconds at a low packet rate. SIGUSR2 makes Debian's
tcpdump flush. The flusher looks every ``FOLLOW_FLUSH_INTERVAL_S`` at the captures that have at
least one follower, and sleeps (no wake-ups at all) while nobody follows.

tcpdump flushes from inside its signal handler, which corrupts the file if the signal lands
while tcpdump is writing (``signals.flush``). So a capture is flushed only when it needs it and
it is safe: its ring files have not grown since the last look (a busy tcpdump fills and writes
its buffer by itself, and is the one most likely to be inside fwrite), and tcpdump sleeps in
poll() right now (``signals.waiting_in_poll``). The counts, the number of flushes and the gaps
followers met are served as the capture's ``follow`` document.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from podcap import limits
from podcap.capture import signals
from podcap.capture.tcpdump import RING_PREFIX
from podcap.model import Capture, CaptureSpec
from podcap.pcap.follow import RingFollower
from podcap.pcap.gaps import Gap
from podcap.streams import PcapStream

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
        self._written: dict[str, tuple[int, int]] = {}  # ring files' last write, per capture

    def stream(self, cid: str, files_dir: Path, spec: CaptureSpec,
               running: Callable[[], bool], from_now: bool, chunk: int) -> PcapStream:
        """A follower of the capture's ring (pcap/follow.py), counted from now until the
        reader has really ended."""
        self.add(cid)
        reader = RingFollower(files_dir, spec.file_number, spec.file_size_mb * 1_000_000,
                              running, from_now=from_now, prefix=RING_PREFIX,
                              on_gap=functools.partial(self.gap, cid),
                              on_end=functools.partial(self.remove, cid), chunk=chunk)
        return PcapStream(reader, None)

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
            for table in (self.flushes, self.gaps, self.gap_count, self._written):
                table.pop(cid, None)

    def wake(self) -> None:
        self._wake.set()

    def run(self, targets: Callable[[], dict[str, tuple[int, Path]]], closing: threading.Event,
            period: float = limits.FOLLOW_FLUSH_INTERVAL_S) -> None:
        """The flusher thread: ``targets()`` gives running captures' tcpdump pid and files
        directory by capture id (only those past "listening on": SIGUSR2 would end a tcpdump
        without its handler)."""
        while not closing.is_set():
            with self._lock:
                followed = set(self.followers)
            if not followed:
                self._wake.wait()
                self._wake.clear()
                continue
            flushed = {}
            for cid, (pid, files_dir) in targets().items():
                if cid in followed and self._needs_flush(cid, files_dir) and \
                        signals.waiting_in_poll(pid):
                    signals.flush(pid)
                    flushed[cid] = files_dir
            if flushed:
                closing.wait(limits.FOLLOW_FLUSH_SETTLE_S)  # our flush is not growth: look after
                with self._lock:
                    for cid, files_dir in flushed.items():
                        self.flushes[cid] = self.flushes.get(cid, 0) + 1
                        self._written[cid] = last_write(files_dir)
            closing.wait(period)

    def _needs_flush(self, cid: str, files_dir: Path) -> bool:
        """True when the ring has not been written since the last look: whatever tcpdump
        captured since sits in its buffer. A ring that grew drains its buffer by itself."""
        written = last_write(files_dir)
        with self._lock:
            before, self._written[cid] = self._written.get(cid), written
        return written == before


def last_write(files_dir: Path) -> tuple[int, int]:
    """The newest modification time and size among the ring files: it changes whenever
    tcpdump writes any of them."""
    newest = (0, 0)
    try:
        with os.scandir(files_dir) as entries:
            for entry in entries:
                if entry.name.startswith(RING_PREFIX):
                    st = entry.stat()
                    newest = max(newest, (st.st_mtime_ns, st.st_size))
    except OSError:
        pass
    return newest
