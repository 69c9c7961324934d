"""What the agent pushes to the controller's view of it (views.py): its workloads and
captures, a snapshot to each new subscriber, then only what changed.

One thread looks, and sends the differences from what it sent last:
- captures, every ``INVENTORY_CAPTURE_POLL_S`` (a read of the table in memory): a new capture,
  a status change or a removal goes at once; counters of running captures at most once per
  ``INVENTORY_COUNTERS_S``;
- workloads, when the runtime says something happened (Docker's event stream, through
  ``watch``; a relist every ``INVENTORY_WATCHED_RELIST_S`` in case one was missed), and
  every ``INVENTORY_RELIST_S`` otherwise (containerd's CRI has no event stream
  we read: a relist that sends only the differences).

Every update carries the next number of one sequence; a subscriber that saw a gap asks for a
snapshot (``resync``). ``tick`` looks at once: a start that names a container the view does
not hold yet makes the controller ask for one (``sync``) before it says "not found".
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from podcap import limits
from podcap.errors import PodcapError
from podcap.model import Capture, Stats, Status, Workload
from podcap.views import Counters, InventoryUpdate, Sink

log = logging.getLogger("podcap.agent")


def _shape(c: Capture) -> Capture:
    """A capture without its counters: what must reach the controller at once when it
    changes."""
    return dataclasses.replace(c, stats=Stats(), files=0, reclaimed=[])


class InventoryFeed:
    def __init__(self, list_workloads: Callable[[], list[Workload]],
                 list_captures: Callable[[], list[Capture]],
                 watch: Callable[[Callable[[], None], threading.Event], None] | None = None,
                 relist_s: float = limits.INVENTORY_RELIST_S) -> None:
        self._relist_s = relist_s
        self._list_workloads = list_workloads
        self._list_captures = list_captures
        self._watch = watch
        self._lock = threading.RLock()  # one look at a time; updates leave in order
        self._sinks: list[Sink] = []
        self._seq = 0
        self._workloads: dict[str, Workload] = {}
        self._captures: dict[str, Capture] = {}
        self._counted: dict[str, float] = {}  # capture id -> when its counters were last sent
        self._relisted = 0.0
        self._woken = threading.Event()
        self._closing = threading.Event()
        self._looked = False

    # ---- subscribers -----------------------------------------------------------------

    def subscribe(self, sink: Sink) -> Callable[[], None]:
        with self._lock:
            if not self._looked:
                self._look(force_workloads=True)
            self._sinks.append(sink)
            sink(self._snapshot())

        def end() -> None:
            with self._lock:
                if sink in self._sinks:
                    self._sinks.remove(sink)
        return end

    def resync(self, sink: Sink) -> None:
        with self._lock:
            sink(self._snapshot())

    def tick(self) -> None:
        with self._lock:
            self._look(force_workloads=True)

    # ---- the thread --------------------------------------------------------------------

    def run(self, closing: threading.Event) -> None:
        """Until ``closing``: look every capture poll, relist workloads when woken or due."""
        if self._watch is not None:
            threading.Thread(target=self._watch, args=(self._woken.set, closing),
                             name="podcap-events", daemon=True).start()
        while not closing.is_set():
            woken = self._woken.wait(limits.INVENTORY_CAPTURE_POLL_S)
            if closing.is_set():
                return
            self._woken.clear()
            try:
                with self._lock:
                    due = time.monotonic() - self._relisted >= self._relist_s
                    self._look(force_workloads=woken or due)
            except Exception:  # the feed must outlive one bad look
                log.exception("inventory feed error")

    def wake(self) -> None:
        self._woken.set()

    # ---- internals ---------------------------------------------------------------------

    def _snapshot(self) -> InventoryUpdate:
        return InventoryUpdate(self._seq, True, tuple(self._workloads.values()),
                               captures=tuple(self._captures.values()))

    def _look(self, force_workloads: bool) -> None:
        """Hold ``_lock``. What changed since the last look, as one delta to every sink."""
        self._looked = True
        added: list[Workload] = []
        gone: list[str] = []
        if force_workloads:
            self._relisted = time.monotonic()
            try:
                now = {w.id: w for w in self._list_workloads()}
            except PodcapError as exc:  # the runtime is away: keep what was sent
                log.warning("inventory: workloads not listed: %s", exc.message)
                now = self._workloads
            added = [w for wid, w in now.items() if self._workloads.get(wid) != w]
            gone = [wid for wid in self._workloads if wid not in now]
            self._workloads = now
        changed, counted, ended = self._capture_changes()
        if not (added or gone or changed or counted or ended):
            return
        self._seq += 1
        update = InventoryUpdate(self._seq, False, tuple(added), tuple(gone), tuple(changed),
                                 tuple(ended), tuple(counted))
        for sink in list(self._sinks):
            try:
                sink(update)
            except Exception:
                log.exception("inventory subscriber failed")

    def _capture_changes(self) -> tuple[list[Capture], list[Counters], list[str]]:
        """Captures new or changed (whole), running ones whose counters alone moved (their
        numbers, at most once per ``INVENTORY_COUNTERS_S``), and the ids of those gone."""
        now = {c.id: c for c in self._list_captures()}
        moment = time.monotonic()
        changed: list[Capture] = []
        counted: list[Counters] = []
        for cid, c in now.items():
            held = self._captures.get(cid)
            if held == c:
                continue
            if held is not None and _shape(held) == _shape(c) and c.status is Status.RUNNING:
                if moment - self._counted.get(cid, 0.0) < limits.INVENTORY_COUNTERS_S:
                    continue  # sent less than a second ago: next time
                counted.append(Counters(cid, c.stats, c.files))
            else:
                changed.append(c)
            self._captures[cid] = c
            self._counted[cid] = moment
        ended = [cid for cid in self._captures if cid not in now]
        for cid in ended:
            del self._captures[cid]
            self._counted.pop(cid, None)
        return changed, counted, ended
