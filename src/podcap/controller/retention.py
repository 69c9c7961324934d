"""Retention: stopped captures older than ``--retention-days`` are deleted, so nobody has to
babysit the disk.

Age is counted from a capture's stop time (a capture that ran for a week is kept N days after
it ended, not after it began); running captures are never touched. The sweep runs in the
controller, so one setting covers every node, and deletes through the service (the agent that
holds the files removes them; the owner row goes; ``capture.expired`` is audited). An agent that
does not answer keeps its captures until a sweep reaches it: its last known state is not enough
to delete on. With several replicas the sweep runs on the leader only, each deletion fenced
(controller/leader.py): no capture is deleted twice, no ``capture.expired`` audited twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from podcap import limits
from podcap.controller.fanout import Unreachable
from podcap.controller.inventory import OwnedCapture
from podcap.controller.leader import Leader, LostLease
from podcap.controller.service import CaptureService
from podcap.errors import NotFound, PodcapError
from podcap.logs import capture_fields
from podcap.model import Status

log = logging.getLogger("podcap.retention")
DAY_S = 86_400.0


@dataclass(frozen=True)
class Policy:
    """What ``GET /api/limits`` and the UI show: retention days (0: off) and the reclaim policy
    of this server's own agent (None on a controller without one: each ``podcap agent`` has its
    own ``--reclaim``)."""

    retention_days: float = 0.0
    reclaim: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"retention_days": self.retention_days, "reclaim": self.reclaim}


class RetentionSweeper:
    def __init__(self, service: CaptureService, days: float,
                 interval_s: float = limits.RETENTION_SWEEP_S,
                 clock: Callable[[], float] = time.time, leader: Leader | None = None) -> None:
        self._service = service
        self._leader = leader
        self.days = days
        self._interval = interval_s
        self._clock = clock  # tests may move time on
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RetentionSweeper:
        log.info("retention: stopped captures are deleted %g days after they stop (a sweep "
                 "every %g s)", self.days, self._interval)
        self._thread = threading.Thread(target=self._run, name="podcap-retention", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def sweep(self) -> list[str]:
        """One pass: the ids deleted."""
        why = f"stopped more than {self.days:g} days ago (--retention-days {self.days:g})"
        expired, unreachable = expire(self._service, self._clock() - self.days * DAY_S, why,
                                      self._leader)
        for owned in expired:
            c = owned.capture
            log.info("retention: capture %s of %s deleted: stopped %s, %s", c.id,
                     c.workload.name, _utc(c.stop_time or 0), why,
                     extra=capture_fields("capture.expired", c.id, c.workload.name,
                                          c.workload.node, None, namespace=owned.namespace,
                                          bytes=c.stats.bytes))
        if unreachable:
            log.info("retention: not answering, swept next time: %s",
                     ", ".join(u.node for u in unreachable))
        return [o.capture.id for o in expired]

    def _run(self) -> None:
        while True:  # the first pass at once: a restart after a long stop catches up
            while self._leader is not None and not self._leader.is_leader:
                if self._stopping.wait(1.0):  # another replica sweeps
                    return
            try:
                self.sweep()
            except LostLease as exc:
                log.info("retention: %s", exc)
            except Exception:  # the sweeper outlives any one bad pass
                log.exception("retention sweep failed; retrying in %g s", self._interval)
            if self._stopping.wait(self._interval):
                return


def expire(service: CaptureService, cutoff: float, why: str, leader: Leader | None = None
           ) -> tuple[list[OwnedCapture], list[Unreachable]]:
    """Delete every stopped capture that stopped before ``cutoff``, audited as
    ``capture.expired``. Captures of agents that do not answer are left for the next call:
    their last known state is not enough to delete on."""
    every, unreachable = service.inventory.captures()
    expired: list[OwnedCapture] = []
    for aid, owned in every:
        c = owned.capture
        if owned.stale or c.status is Status.RUNNING or (c.stop_time or cutoff) >= cutoff:
            continue
        agent = service.agents.get(aid)
        if leader is not None:  # LostLease ends the pass: the new leader sweeps
            leader.check(f"retention delete of capture {c.id}")
        try:
            agent.remove(c.id)
        except NotFound:
            pass  # gone already: forget it all the same
        except PodcapError as exc:
            log.warning("retention: capture %s not deleted now (%s); next sweep", c.id,
                        exc.message)
            continue
        agent.view().forget(c.id)
        service.owners.forget(c.id)
        service.audit.record("capture.expired", source="retention", capture_id=c.id,
                             workload=c.workload.name, namespace=owned.namespace,
                             nbytes=c.stats.bytes, detail=why)
        expired.append(owned)
    return expired, unreachable


def _utc(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))
