"""Flight recorders (issue 21): a standing rule that keeps a ring of every matching container's
recent packets, and freezes it into a snapshot when something goes wrong.

This module is a recorder's life through the API (create, list, show, change, delete) and its
triggers: by hand, an Alertmanager alert (controller/alertmanager.py reads the webhook), a
rate or drop threshold (the watcher). Around it: what a recorder is (recorder_model.py); the
background round that keeps members recording and takes note of snapshots
(recorder_watch.py, one entry point: ``RecorderService.tick``); the freeze itself on the
agent (agent/rings.py). Rings and snapshots are ordinary captures with owner rows, quotas and
audit; a snapshot is a stopped capture whose reason is its trigger.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import sessionmaker

from podcap import errors, limits
from podcap.controller.db import Recorder, RecorderSnapshot, RecorderTrigger
from podcap.controller.inventory import OwnedCapture
from podcap.controller.leader import Leader, Solo
from podcap.controller.principal import Principal
from podcap.controller.recorder_model import RecorderConfig, recorder_id
from podcap.controller.recorder_watch import RecorderWatcher, owner_of
from podcap.controller.service import CaptureService
from podcap.errors import FailedPrecondition, Hidden, InvalidArgument, NotFound, PodcapError
from podcap.model import Workload

log = logging.getLogger("podcap.recorders")

SOURCES = ("admin", "alert", "exit", "rate", "drops")


@dataclass(frozen=True)
class Ring:
    """A member: the ring capture on its agent."""

    agent_id: str
    owned: OwnedCapture

    @property
    def capture_id(self) -> str:
        return self.owned.capture.id


@dataclass
class RecorderView:
    row: Recorder
    config: RecorderConfig
    rings: list[Ring]
    snapshots: list[tuple[RecorderSnapshot | None, OwnedCapture]]
    triggers: list[RecorderTrigger]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (workload name, why)

    @property
    def id(self) -> str:
        return self.row.id


@dataclass(frozen=True)
class Outcome:
    capture_id: str
    workload_name: str
    outcome: str  # frozen | extended | cooldown | duplicate | failed
    detail: str = ""


class RecorderService:
    def __init__(self, service: CaptureService, sessions: sessionmaker,
                 watch_interval: float = limits.RECORDER_WATCH_INTERVAL_S,
                 background: bool = True, leader: Leader | None = None) -> None:
        self.service = service
        self.sessions = sessions
        self.leader: Leader = leader or Solo(sessions)  # whose round works (leader.py)
        self.trigger_lock = threading.Lock()  # one trigger at a time: no member frozen twice
        self.triggers: Counter[tuple[str, str]] = Counter()  # (source, outcome): the metrics
        self.watcher = RecorderWatcher(self, watch_interval)
        if background:  # the round works on the replica that leads (leader.py)
            self.watcher.start()

    def close(self) -> None:
        self.watcher.stop()

    def tick(self) -> None:
        """One background round (recorder_watch.py): members join and leave, snapshots are
        noted, limits kept, thresholds looked at. The one entry point of background work."""
        self.watcher.tick()

    # ---- the API --------------------------------------------------------------------------

    def create(self, who: Principal, config: RecorderConfig) -> RecorderView:
        who.require_write()
        if config.filter.strip():
            self.service.check_filter(config.filter)
        if not who.can_see(config.selector.namespace):
            raise InvalidArgument("a user scoped to namespaces must name one of them in the "
                                  "recorder's selector (namespace)")
        with self.sessions() as db, db.begin():
            if db.scalar(select(Recorder).where(Recorder.name == config.name)) is not None:
                raise FailedPrecondition(f"a recorder named {config.name} exists already")
            row = config.to_row(secrets.token_hex(12), who.username, time.time())
            db.add(row)
        self.service.audit.record("recorder.create", username=who.username, source=who.source,
                                  detail=f"recorder {row.id} ({row.name}): {config.selector}")
        self.watcher.round_for(row.id)  # its members start now, not at the next round
        return self.get(who, row.id)

    def recorders(self, who: Principal) -> list[RecorderView]:
        with self.sessions() as db:
            rows = list(db.scalars(select(Recorder).order_by(Recorder.created)))
        views = [self._view(r) for r in rows]
        return [v for v in views if may_see(who, v)]

    def get(self, who: Principal, rid: str) -> RecorderView:
        view = self._view(self.row(recorder_id(rid)))
        if not may_see(who, view):
            raise Hidden(f"recorder {rid} not found", who.username)
        return view

    def update(self, who: Principal, rid: str, changes: dict[str, object]) -> RecorderView:
        view = self.get(who, rid)
        who.require_write()
        unknown = set(changes) - {"enabled", "after_s", "cooldown_s", "max_snapshots",
                                  "rate_pps", "drops_per_s", "alert_labels", "alertnames"}
        if unknown:
            raise InvalidArgument(f"{', '.join(sorted(unknown))}: cannot be changed on a "
                                  "recorder (its rings would differ); make a new one")
        config = RecorderConfig.of({**view.config.to_dict(), **view.config.selector.to_dict(),
                                    **changes})
        with self.sessions() as db, db.begin():
            row = db.get(Recorder, view.id)
            if row is None:
                raise NotFound(f"recorder {rid} not found")
            config.fill(row)
        self.service.audit.record("recorder.update", username=who.username, source=who.source,
                                  detail=f"recorder {view.id}: {sorted(changes)}")
        self.watcher.round_for(view.id)
        return self.get(who, view.id)

    def remove(self, who: Principal, rid: str) -> None:
        """Its rings go; its snapshots stay, as the ordinary stopped captures they are."""
        view = self.get(who, rid)
        who.require_write()
        with self.sessions() as db, db.begin():
            db.execute(delete(Recorder).where(Recorder.id == view.id))
            db.execute(delete(RecorderSnapshot).where(RecorderSnapshot.recorder_id == view.id))
            db.execute(delete(RecorderTrigger).where(RecorderTrigger.recorder_id == view.id))
        for ring in view.rings:
            self.watcher.drop_ring(ring.owned.capture.id, who)
        self.service.audit.record("recorder.delete", username=who.username, source=who.source,
                                  detail=f"recorder {view.id} ({view.row.name}); "
                                  f"{len(view.snapshots)} snapshots kept as captures")

    # ---- triggers -------------------------------------------------------------------------

    def trigger(self, who: Principal, rid: str, workloads: list[str] | None = None,
                after: int | None = None) -> list[Outcome]:
        """By hand: every member (or those named) frozen, ``triggered by <user>``."""
        view = self.get(who, rid)
        who.require_write()
        rings = view.rings
        if workloads:
            rings = [r for r in rings if any(q in (r.owned.capture.workload.id,
                                                   r.owned.capture.workload.name)
                                             or r.owned.capture.workload.id.startswith(q)
                                             for q in workloads)]
            if not rings:
                raise InvalidArgument(f"no member of recorder {view.row.name} is "
                                      f"{', '.join(workloads)[:200]}")
        if not rings:
            raise FailedPrecondition(f"recorder {view.row.name} has no member recording now")
        return self.freeze(view, rings, "admin", f"triggered by {who.username}",
                           f"by {who.username}", username=who.username,
                           source_addr=who.source, after=after)

    def freeze(self, view: RecorderView, rings: list[Ring], source: str, reason: str,
               detail: str, key: str = "", username: str = "", source_addr: str = "",
               after: int | None = None) -> list[Outcome]:
        """Freeze these rings of ``view``: a freeze under way is extended; a member in its
        cooldown is left alone; an alert delivered again (``key``) is a duplicate. One trigger
        row per member, one audit row per trigger."""
        after_s = view.config.after_s if after is None else after
        now = time.time()
        outcomes: list[Outcome] = []
        with self.trigger_lock:
            for ring in rings:
                c = ring.owned.capture
                outcome = self._one(view, ring, reason, key, after_s, now)
                outcomes.append(outcome)
                with self.sessions() as db, db.begin():
                    db.add(RecorderTrigger(
                        recorder_id=view.id, time=now, source=source, workload_id=c.workload.id,
                        workload_name=c.workload.name[:255], capture_id=c.id,
                        outcome=outcome.outcome, detail=(outcome.detail or detail)[:1024],
                        key=key[:255]))
                self.triggers[(source, outcome.outcome)] += 1
        counts = Counter(o.outcome for o in outcomes)
        self.service.audit.record(
            "recorder.trigger", username=username or f"({source})", source=source_addr,
            ok=not counts.get("failed"),
            detail=f"recorder {view.id} ({view.row.name}): {reason}; " + ", ".join(
                f"{n} {what}" for what, n in sorted(counts.items())))
        return outcomes

    def _one(self, view: RecorderView, ring: Ring, reason: str, key: str, after_s: int,
             now: float) -> Outcome:
        c = ring.owned.capture
        name = c.workload.name
        if key and self.watcher.seen(view.id, key, c.workload.id):
            return Outcome(c.id, name, "duplicate", "this alert was delivered before")
        rec = c.recording
        pending = rec is not None and rec.until is not None and rec.until > now
        if not pending and self.watcher.cooling(view, c.workload.id, now):
            return Outcome(c.id, name, "cooldown",
                           f"frozen less than {view.config.cooldown_s} s ago")
        try:
            ring_now = self.service.agents.get(ring.agent_id).freeze(c.id, reason, after_s)
        except errors.AlreadyExists:  # the freeze closed on its way: its cooldown has begun
            return Outcome(c.id, name, "cooldown", "its freeze ended as this trigger came")
        except PodcapError as exc:
            return Outcome(c.id, name, "failed", exc.message)
        self.service.agents.get(ring.agent_id).view().observe(ring_now)
        log.info("recorder %s: ring %s of %s %s: %s", view.row.name, c.id, name,
                 "extended" if pending else "frozen", reason)
        return Outcome(c.id, name, "extended" if pending else "frozen")

    def alert(self, alerts: list[dict[str, str]], key_of: list[str], source_addr: str
              ) -> dict[str, int]:
        """Firing alerts (their labels) from Alertmanager: each freezes the members it names
        in every enabled recorder (recorder_model.RecorderConfig.names)."""
        found: Counter[str] = Counter()
        views = [self._view(r) for r in self._rows() if r.enabled]
        for labels, key in zip(alerts, key_of, strict=True):
            name = labels.get("alertname", "") or "(no alertname)"
            for view in views:
                rings = [r for r in view.rings if view.config.names(
                    labels, self.service.inventory.namespaced(r.owned.capture.workload))]
                if not rings:
                    continue
                for o in self.freeze(view, rings, "alert", f"triggered: alert {name}"[:255],
                                     f"alert {name} {labels}"[:1024], key=key,
                                     username="(alertmanager)", source_addr=source_addr):
                    found[o.outcome] += 1
        return dict(found)

    # ---- reading ---------------------------------------------------------------------------

    def row(self, rid: str) -> Recorder:
        with self.sessions() as db:
            row = db.get(Recorder, rid)
        if row is None:
            raise NotFound(f"recorder {rid} not found")
        return row

    def _rows(self) -> list[Recorder]:
        with self.sessions() as db:
            return list(db.scalars(select(Recorder).order_by(Recorder.created)))

    def _view(self, row: Recorder) -> RecorderView:
        every, _ = self.service.inventory.captures()
        rings, snapshots = [], []
        with self.sessions() as db:
            rows = {s.capture_id: s for s in db.scalars(select(RecorderSnapshot).where(
                RecorderSnapshot.recorder_id == row.id))}
            triggers = list(db.scalars(select(RecorderTrigger).where(
                RecorderTrigger.recorder_id == row.id).order_by(
                RecorderTrigger.id.desc()).limit(20)))
        for aid, owned in every:
            rec = owned.capture.recording
            if rec is None or rec.recorder != row.id:
                continue
            if owned.capture.recording_now:
                rings.append(Ring(aid, owned))
            elif owned.capture.snapshot:
                snapshots.append((rows.get(owned.capture.id), owned))
        snapshots.sort(key=lambda s: s[1].capture.stop_time or 0, reverse=True)
        rings.sort(key=lambda r: (r.owned.namespace, r.owned.capture.workload.name))
        return RecorderView(row, RecorderConfig.from_row(row), rings, snapshots, triggers,
                            self.watcher.skipped_of(row.id))


def may_see(who: Principal, view: RecorderView) -> bool:
    """Its owner, admins and users of every namespace, and users of its namespace."""
    if who.username == view.row.owner or who.sees_every_namespace:
        return True
    return bool(view.config.selector.namespace) and who.can_see(view.config.selector.namespace)


def workload_label(w: Workload) -> str:
    return f"{w.namespace}/{w.pod_name}" if w.pod_name else w.name


__all__ = ["SOURCES", "Outcome", "RecorderService", "RecorderView", "Ring", "owner_of"]
