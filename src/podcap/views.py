"""One node's inventory as the controller holds it, and the updates that keep it right.

Lists used to ask every agent, and every agent its runtime, on every request (bench figure 6:
110 ms p50 with 10 nodes; a list at 500 nodes would not answer). Now each agent pushes: a
snapshot when its session opens, then deltas as things change (agent/feed.py), each with the
next number of the agent's sequence, in the manner of Kubernetes' list-then-watch. The
controller keeps one ``NodeView`` per agent and answers every list from it without a call.

A delta whose number is not the next one is refused (``apply`` returns False) and the view
waits for a snapshot, which its owner asks for: a lost delta can leave a view behind for one
round trip, never wrong for good. The answer to a command (a start, a stop) is applied at
once (``observe``), so a list right after a start shows the capture; the agent's own deltas
then confirm it. A capture never goes back to running once it has ended, whatever order the
two arrive in.

Both kinds of agent feed a view the same way: the in-process agent (``podcap serve``) feeds
its own from its feed, a remote agent's is fed by its session (transport/grpc/remote.py).
This module is a leaf: it knows the model and nothing of gRPC, the agent or the controller.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from podcap import limits
from podcap.model import Capture, Stats, Status, Workload

_VERSIONS = itertools.count(1)  # one clock for every view: a list's "changed since" token


def next_version() -> int:
    return next(_VERSIONS)


@dataclass(frozen=True)
class Counters:
    """What moves every second in a running capture: sent alone when nothing else changed."""

    capture_id: str
    stats: Stats
    files: int


@dataclass(frozen=True)
class InventoryUpdate:
    """A snapshot (everything the node has; ``*_gone`` empty) or a delta (what was added or
    changed, and the ids of what went). ``seq`` numbers the agent's updates: a delta is
    ``seq`` = the previous update's + 1; a snapshot carries the number the next delta
    follows."""

    seq: int
    snapshot: bool
    workloads: tuple[Workload, ...] = ()
    workloads_gone: tuple[str, ...] = ()
    captures: tuple[Capture, ...] = ()
    captures_gone: tuple[str, ...] = ()
    counters: tuple[Counters, ...] = ()  # a delta's running captures whose counters alone moved

    @property
    def empty(self) -> bool:
        return not (self.snapshot or self.workloads or self.workloads_gone or self.captures
                    or self.captures_gone or self.counters)


Sink = Callable[[InventoryUpdate], None]


class Feed(Protocol):
    """What pushes a node's inventory (agent/feed.py): each subscriber gets a snapshot first,
    then every delta in order."""

    def subscribe(self, sink: Sink) -> Callable[[], None]:
        """Snapshot, then deltas to ``sink``; the returned callable ends the subscription."""
        ...

    def resync(self, sink: Sink) -> None:
        """A fresh snapshot to ``sink`` (it saw a gap), in order with the deltas."""
        ...

    def tick(self) -> None:
        """Look now, and send what changed, before returning."""
        ...


@dataclass(frozen=True)
class ViewState:
    """A copy of one view, read at once: what a list is made from."""

    workloads: tuple[Workload, ...]
    captures: tuple[Capture, ...]
    synced: bool  # a snapshot arrived and no gap is open
    synced_at: float  # wall clock of the last update applied (0: never)
    version: int
    workloads_version: int  # moves only when the workloads do (counters move every second)


class NodeView:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workloads: dict[str, Workload] = {}
        self._captures: dict[str, Capture] = {}
        self._seq: int | None = None  # None: waiting for a snapshot
        self.synced_at = 0.0
        self.version = next_version()
        self.workloads_version = self.version
        self.gaps = 0  # deltas refused because one before them was missing
        self.updates = 0  # updates applied
        self._state: ViewState | None = None
        # Captures deleted by a command: an update the agent made before it deleted one may
        # still arrive and would list it again (a zombie that flickered in lists); ignored
        # until an update says it is gone. Ids are never reused; oldest dropped past a bound.
        self._forgotten: dict[str, None] = {}

    def apply(self, update: InventoryUpdate) -> bool:
        """False when ``update`` is a delta that does not follow the last one: the caller asks
        for a snapshot, and deltas are refused until it comes."""
        with self._lock:
            if update.snapshot:
                self._workloads = {w.id: w for w in update.workloads}
                old, self._captures = self._captures, {}
                held = {c.id for c in update.captures}
                self._forgotten = {cid: None for cid in self._forgotten if cid in held}
                for c in update.captures:
                    if c.id not in self._forgotten:
                        self._captures[c.id] = _later(old.get(c.id), c)
            else:
                if self._seq is None or update.seq != self._seq + 1:
                    if self._seq is not None:  # a gap: lists show it waiting from now on
                        self.gaps += 1
                        self._seq = None
                        self._changed()
                    return False
                for wid in update.workloads_gone:
                    self._workloads.pop(wid, None)
                self._workloads.update((w.id, w) for w in update.workloads)
                for cid in update.captures_gone:
                    self._captures.pop(cid, None)
                    self._forgotten.pop(cid, None)
                for c in update.captures:
                    if c.id not in self._forgotten:
                        self._captures[c.id] = _later(self._captures.get(c.id), c)
                for k in update.counters:
                    counted = self._captures.get(k.capture_id)
                    # One that ended keeps its final numbers (these are older); one deleted is
                    # not listed again.
                    if counted is not None and counted.status is Status.RUNNING:
                        self._captures[k.capture_id] = dataclasses.replace(
                            counted, stats=k.stats, files=k.files)
            self._seq = update.seq
            if update.snapshot or update.workloads or update.workloads_gone:
                self.workloads_version = next_version()
            self.synced_at = time.time()
            self.updates += 1
            self._changed()
            return True

    def observe(self, capture: Capture) -> None:
        """A command's answer about one capture: at least as new as the last update. An answer
        about a removed one (a stop that crossed the remove) does not list it again."""
        with self._lock:
            if capture.id in self._forgotten:
                return
            self._captures[capture.id] = _later(self._captures.get(capture.id), capture)
            self._changed()

    def forget(self, capture_id: str) -> None:
        """A command deleted it: gone from lists now, whatever older updates still say."""
        with self._lock:
            self._forgotten[capture_id] = None
            while len(self._forgotten) > limits.VIEW_FORGOTTEN_MAX:
                del self._forgotten[next(iter(self._forgotten))]
            if self._captures.pop(capture_id, None) is not None:
                self._changed()

    def touch(self) -> None:
        """Something about the view that lists show changed (its node went away or came
        back): a new version, so a "changed since" token moves."""
        with self._lock:
            self._changed()

    def unsynced(self) -> None:
        """Its session ended: the next one begins with a snapshot."""
        with self._lock:
            self._seq = None
            self._changed()

    def state(self) -> ViewState:
        """The view as one consistent copy (made once per change, shared by readers)."""
        with self._lock:
            if self._state is None:
                self._state = ViewState(tuple(self._workloads.values()),
                                        tuple(self._captures.values()), self._seq is not None,
                                        self.synced_at, self.version, self.workloads_version)
            return self._state

    @property
    def seq(self) -> int | None:
        """The number of the last update applied (None: waiting for a snapshot)."""
        return self._seq

    def capture(self, capture_id: str) -> Capture | None:
        with self._lock:
            return self._captures.get(capture_id)

    def _changed(self) -> None:
        self.version = next_version()
        self._state = None


def _later(held: Capture | None, incoming: Capture) -> Capture:
    """A capture that ended never runs again: a late 'running' loses to the end it missed."""
    if held is not None and held.status is not Status.RUNNING \
            and incoming.status is Status.RUNNING:
        return held
    return incoming
