"""The recorders' snapshots, as the background round (recorder_watch.py) finds them.

A stopped ring with a trigger is a snapshot: noted (a row, an audit line) and given an owner
row when the agent made it (a successor ring, too, gets one); one the agent froze by itself (a
container's exit) inside the member's cooldown is deleted again; past ``max_snapshots`` the
oldest go, audited; a ring that ended without a trigger (a clean exit, a shutdown) is removed.
Apart from the round's membership and thresholds because it is the one job that writes
snapshot rows and deletes snapshots.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from podcap.controller.db import RecorderSnapshot, RecorderTrigger
from podcap.controller.inventory import OwnedCapture
from podcap.controller.principal import Principal
from podcap.errors import PodcapError
from podcap.model import Status

if TYPE_CHECKING:
    from podcap.controller.recorder_watch import RecorderWatcher
    from podcap.controller.recorders import RecorderView

log = logging.getLogger("podcap.recorders")


class SnapshotKeeper:
    def __init__(self, watcher: RecorderWatcher) -> None:
        self._w = watcher

    def note(self, view: RecorderView, who: Principal) -> None:
        """One round's look at a recorder's rings and snapshots."""
        self._note_owners(view)
        self._note_snapshots(view, who)

    def _note_owners(self, view: RecorderView) -> None:
        """Rings the agent started (a successor) have no owner row yet: the recorder's."""
        owners = self._w._r.service.owners
        for ring in view.rings:
            if not ring.owned.owner:
                owners.add(ring.capture_id, ring.agent_id, view.row.owner, ring.owned.namespace)

    def _note_snapshots(self, view: RecorderView, who: Principal) -> None:
        r = self._w._r
        every, _ = r.service.inventory.captures()
        for aid, owned in every:
            c = owned.capture
            if c.recording is None or c.recording.recorder != view.id or c.recording_now:
                continue
            if not c.snapshot:  # a ring that ended without a trigger: nothing to keep
                if c.status is not Status.RUNNING:
                    self._w.drop_ring(c.id, who)
                continue
            if not owned.owner:
                r.service.owners.add(c.id, aid, view.row.owner, owned.namespace)
            if any(row is not None and row.capture_id == c.id for row, _ in view.snapshots):
                continue
            self._new_snapshot(view, aid, owned, who)
        self._keep_limit(view, who)

    def _new_snapshot(self, view: RecorderView, aid: str, owned: OwnedCapture,
                      who: Principal) -> None:
        r = self._w._r
        c = owned.capture
        rec = c.recording
        assert rec is not None
        now = time.time()
        with r.sessions() as db:
            froze = db.scalar(select(RecorderTrigger).where(
                RecorderTrigger.capture_id == c.id, RecorderTrigger.outcome == "frozen"))
        source = froze.source if froze is not None else "exit"
        if froze is None:  # the agent froze it by itself (the container ended)
            cooling = self._w.cooling(view, c.workload.id, rec.triggered or now)
            with r.sessions() as db, db.begin():
                db.add(RecorderTrigger(recorder_id=view.id, time=rec.triggered or now,
                                       source="exit", workload_id=c.workload.id,
                                       workload_name=c.workload.name[:255], capture_id=c.id,
                                       outcome="cooldown" if cooling else "frozen",
                                       detail=rec.trigger[:1024]))
            r.triggers[("exit", "cooldown" if cooling else "frozen")] += 1
            if cooling:
                self._w.drop_ring(c.id, who)
                r.service.audit.record("recorder.suppressed", username="(container event)",
                                       capture_id=c.id, workload=c.workload.name,
                                       namespace=owned.namespace,
                                       detail=f"recorder {view.id}: {rec.trigger}: inside the "
                                       f"cooldown of {view.config.cooldown_s} s; deleted")
                return
        with r.sessions() as db, db.begin():
            db.merge(RecorderSnapshot(
                capture_id=c.id, recorder_id=view.id, agent_id=aid, workload_id=c.workload.id,
                workload_name=c.workload.name[:255], namespace=owned.namespace,
                node=c.workload.node[:253], source=source, reason=rec.trigger[:1024],
                triggered=rec.triggered or now, created=now))
        view.snapshots.append((None, owned))
        r.service.audit.record("recorder.snapshot", username=view.row.owner, capture_id=c.id,
                               workload=c.workload.name, namespace=owned.namespace,
                               nbytes=c.stats.bytes,
                               detail=f"recorder {view.id} ({view.row.name}): {rec.trigger}")

    def _keep_limit(self, view: RecorderView, who: Principal) -> None:
        r = self._w._r
        with r.sessions() as db:
            rows = list(db.scalars(select(RecorderSnapshot).where(
                RecorderSnapshot.recorder_id == view.id).order_by(RecorderSnapshot.triggered)))
        held = {o.capture.id: o for _, o in view.snapshots}
        rows = [s for s in rows if s.capture_id in held]
        for old in rows[:max(0, len(rows) - view.config.max_snapshots)]:
            self._w.fence(f"recorder snapshot deletion {old.capture_id}")  # once, by the leader
            try:
                r.service.remove(who, old.capture_id)
            except PodcapError as exc:
                log.warning("recorder %s: snapshot %s not deleted: %s", view.row.name,
                            old.capture_id, exc.message)
                continue
            with r.sessions() as db, db.begin():
                db.execute(delete(RecorderSnapshot).where(
                    RecorderSnapshot.capture_id == old.capture_id))
            r.service.audit.record("recorder.snapshot.delete", username=view.row.owner,
                                   capture_id=old.capture_id, workload=old.workload_name,
                                   namespace=old.namespace,
                                   detail=f"recorder {view.id}: more than "
                                   f"{view.config.max_snapshots} snapshots; the oldest goes")
