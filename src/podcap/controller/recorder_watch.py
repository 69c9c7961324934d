"""The recorders' background round (every ``RECORDER_WATCH_INTERVAL_S``), one entry point:
``tick``. It runs on the replica that leads (controller/leader.py: ``leader.loop``), each ring
start, removal and freeze checked against the lease first; triggers themselves are answered by
whichever controller receives them.

Each round, for every recorder:
- **members**: every matching running container (the owner's view, the group rule: one per
  network namespace) that has no ring gets one (a failed start is tried again every
  ``RECORDER_RETRY_S``); a ring whose container no longer matches, or whose recorder is
  disabled, deleted or lost its owner's rights, is removed; a container that stops takes its
  ring with it (the agent ends it);
- **snapshots** (recorder_snapshots.py): stopped rings with a trigger noted, owned, and kept
  to ``max_snapshots``; a ring that ended without a trigger is removed;
- **thresholds**: a ring whose packets/s or kernel drops/s reached the recorder's threshold
  (from the counters its agent pushes each second) is frozen.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy import select

from podcap import limits
from podcap.controller.db import Recorder, RecorderTrigger, User
from podcap.controller.group_members import candidate, split
from podcap.controller.leader import loop
from podcap.controller.principal import Principal
from podcap.controller.recorder_model import RecorderConfig
from podcap.controller.recorder_snapshots import SnapshotKeeper
from podcap.errors import PodcapError
from podcap.model import Recording

if TYPE_CHECKING:
    from podcap.controller.recorders import RecorderService, RecorderView

log = logging.getLogger("podcap.recorders")

# Deletes the round makes for a recorder whose owner can no longer act.
KEEPER = Principal(username="podcap-recorder", role="admin", source="recorder")


class RecorderWatcher:
    def __init__(self, recorders: RecorderService, interval: float) -> None:
        self._r = recorders
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one round at a time: no ring starts twice
        self._failed: dict[tuple[str, str, str], tuple[float, str]] = {}
        self._skipped: dict[str, list[tuple[str, str]]] = {}
        self._counts: dict[str, tuple[float, int, int]] = {}  # ring -> (time, captured, drops)
        self.snapshots = SnapshotKeeper(self)  # noted, owned, limited (recorder_snapshots.py)

    def start(self) -> RecorderWatcher:
        loop(self._r.leader, "recorders", self._interval, self.tick, self._stop)
        return self

    def stop(self) -> None:
        self._stop.set()

    def fence(self, what: str) -> None:
        """LostLease (the round ends) when another replica leads now."""
        self._r.leader.check(what)

    def tick(self, only: str | None = None) -> None:
        r = self._r
        with self._lock:
            with r.sessions() as db:
                rows = {row.id: row for row in db.scalars(select(Recorder))}
            for row in rows.values():
                if only not in (None, row.id):
                    continue
                try:
                    self._round(row)
                except PodcapError as exc:  # a node away, a database hiccup: next round
                    log.warning("recorder %s: %s", row.name, exc.message)
            if only is None:
                self._orphans(set(rows))

    def round_for(self, rid: str) -> None:
        self.tick(only=rid)

    # ---- one recorder ------------------------------------------------------------------

    def _round(self, row: Recorder) -> None:
        r = self._r
        view = r._view(row)
        owner = owner_of(r.sessions, row.owner)
        self.snapshots.note(view, owner or KEEPER)
        if not row.enabled or owner is None:
            for ring in view.rings:
                self.drop_ring(ring.capture_id, owner or KEEPER)
            self._skipped[row.id] = [("", "disabled" if owner else
                                      f"owner {row.owner} is gone or may no longer capture")]
            return
        self._members(view, owner)
        self._thresholds(view)

    def _members(self, view: RecorderView, owner: Principal) -> None:
        r = self._r
        listing = r.service.workloads(owner)
        matched = [p for p in listing.items if candidate(p) and view.config.selector.matches(p)]
        capturable, skipped = split(matched)
        over = capturable[limits.RECORDER_MEMBERS_MAX:]
        capturable = capturable[:limits.RECORDER_MEMBERS_MAX]
        skipped += [(p, f"the recorder has {limits.RECORDER_MEMBERS_MAX} members") for p in over]
        wanted = {(p.agent_id, p.workload.id) for p in capturable}
        # running containers only: one that stopped takes its ring with it (the agent's
        # doing: an exit may be a trigger)
        listed = {(p.agent_id, p.workload.id) for p in listing.items if candidate(p)}
        stale = {u.agent_id for u in listing.unreachable}
        have: dict[tuple[str, str], list[str]] = {}
        freezing = set()  # a freeze under way: the agent ends it, its successor takes over
        for ring in sorted(view.rings, key=lambda g: g.owned.capture.start_time):
            rec = ring.owned.capture.recording
            if rec is not None and rec.until is not None:
                freezing.add(ring.capture_id)
            key = (ring.agent_id, ring.owned.capture.workload.id)
            have.setdefault(key, []).append(ring.capture_id)
        for key, ids in have.items():
            for extra in ids[:-1]:  # two rings for one container (a freeze cut short): one
                if extra not in freezing:
                    self.fence(f"recorder ring removal {extra}")
                    self.drop_ring(extra, owner)
            if key not in wanted and key in listed and key[0] not in stale \
                    and ids[-1] not in freezing:
                self.fence(f"recorder ring removal {ids[-1]}")
                self.drop_ring(ids[-1], owner)  # no longer matches
        now = time.time()
        spec = view.config.spec()
        notes: list[tuple[str, str]] = [(p.workload.name, why) for p, why in skipped]
        for p in capturable:
            key = (p.agent_id, p.workload.id)
            if key in have:
                continue
            failed = self._failed.get((view.id, *key))
            if failed is not None and now - failed[0] < limits.RECORDER_RETRY_S:
                notes.append((p.workload.name, failed[1]))
                continue
            self.fence(f"recorder ring start {p.workload.name} in {view.row.name}")
            try:
                r.service.start(owner, p.workload.id, spec, p.agent_id,
                                recording=Recording(view.id, view.config.window_s))
                self._failed.pop((view.id, *key), None)
                log.info("recorder %s: %s joined", view.row.name, p.workload.name)
            except PodcapError as exc:
                self._failed[(view.id, *key)] = (now, "could not start: " + exc.message)
                notes.append((p.workload.name, "could not start: " + exc.message))
        self._skipped[view.id] = notes

    def _thresholds(self, view: RecorderView) -> None:
        config = view.config
        now = time.time()
        for ring in view.rings:
            c = ring.owned.capture
            before = self._counts.get(c.id)
            self._counts[c.id] = (now, c.stats.captured, c.stats.dropped)
            if before is None or not (config.rate_pps or config.drops_per_s):
                continue
            elapsed = now - before[0]
            if elapsed <= 0 or (c.recording and c.recording.until):
                continue
            rate = (c.stats.captured - before[1]) / elapsed
            drops = (c.stats.dropped - before[2]) / elapsed
            if (config.rate_pps and rate >= config.rate_pps) or \
                    (config.drops_per_s and drops >= config.drops_per_s):
                self.fence(f"recorder freeze of ring {c.id}")
            if config.rate_pps and rate >= config.rate_pps:
                self._r.freeze(view, [ring], "rate", f"triggered: {rate:.0f} packets/s "
                               f"(threshold {config.rate_pps})", "rate threshold")
            elif config.drops_per_s and drops >= config.drops_per_s:
                self._r.freeze(view, [ring], "drops", f"triggered: {drops:.0f} kernel drops/s "
                               f"(threshold {config.drops_per_s})", "drop threshold")

    def _orphans(self, known: set[str]) -> None:
        """Rings of recorders that are gone (deleted while a node was away)."""
        every, _ = self._r.service.inventory.captures()
        for _, owned in every:
            rec = owned.capture.recording
            if rec is not None and rec.recorder not in known and owned.capture.recording_now \
                    and not owned.stale:
                self.fence(f"recorder ring removal {owned.capture.id}")
                self.drop_ring(owned.capture.id, KEEPER)

    # ---- shared with the service -------------------------------------------------------

    def drop_ring(self, cid: str, who: Principal) -> None:
        try:
            self._r.service.remove(who, cid)
        except PodcapError as exc:
            try:
                self._r.service.remove(KEEPER, cid)
            except PodcapError:
                log.warning("ring %s not removed: %s", cid, exc.message)
        self._counts.pop(cid, None)

    def seen(self, rid: str, key: str, workload_id: str) -> bool:
        with self._r.sessions() as db:
            return db.scalar(select(RecorderTrigger.id).where(
                RecorderTrigger.recorder_id == rid, RecorderTrigger.key == key,
                RecorderTrigger.workload_id == workload_id,
                RecorderTrigger.outcome != "failed").limit(1)) is not None

    def cooling(self, view: RecorderView, workload_id: str, now: float) -> bool:
        """Frozen (by any trigger) within its after period plus the cooldown before ``now``."""
        config: RecorderConfig = view.config
        with self._r.sessions() as db:
            last = db.scalar(select(RecorderTrigger.time).where(
                RecorderTrigger.recorder_id == view.id,
                RecorderTrigger.workload_id == workload_id,
                RecorderTrigger.outcome == "frozen", RecorderTrigger.time < now).order_by(
                RecorderTrigger.time.desc()).limit(1))
        return last is not None and now < last + config.after_s + config.cooldown_s

    def skipped_of(self, rid: str) -> list[tuple[str, str]]:
        return list(self._skipped.get(rid, []))


def owner_of(sessions: object, username: str) -> Principal | None:
    """The owner's rights as they are now; None when it may no longer start captures."""
    with sessions() as db:  # type: ignore[operator]
        user = db.get(User, username)
    if user is None or user.role not in ("admin", "operator"):
        return None
    spaces = frozenset(n for n in user.namespaces.split(",") if n)
    return Principal(user.username, user.role, spaces, bool(user.download), source="recorder")
