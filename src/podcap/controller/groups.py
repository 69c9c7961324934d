"""Capture groups: one selector, one capture per matching running container on every node,
one status, one stop, one delete, one download (a pcapng merged by timestamp).

This module is a group's life through the API: create, list, get, stop, delete, with the
rights of captures (stop and delete need write, the download needs the download right).
Around it, one file per job: what a group is made of (selector, members, which containers are
taken or skipped, who may see a group) in group_members.py; members joining in group_joins.py;
the watcher thread in group_watch.py; the merged download in group_download.py (written by
group_pcapng.py). Members are ordinary captures (owner rows, quotas, audit, /v1 lists them as
sniffers).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from functools import partial

from sqlalchemy import delete, select
from sqlalchemy.orm import sessionmaker

from podcap import limits
from podcap.controller import group_download
from podcap.controller.db import CaptureGroup, GroupMember
from podcap.controller.fanout import Unreachable
from podcap.controller.group_download import Followers
from podcap.controller.group_joins import start_members
from podcap.controller.group_members import (
    Group,
    Member,
    Selector,
    candidate,
    group_id,
    may_see,
    member_row,
    split,
)
from podcap.controller.group_watch import GroupWatcher
from podcap.controller.inventory import OwnedCapture
from podcap.controller.leader import Leader, Solo
from podcap.controller.principal import Principal
from podcap.controller.service import CaptureService
from podcap.errors import FailedPrecondition, Hidden, InvalidArgument, NotFound, PodcapError
from podcap.model import CaptureSpec, Status

log = logging.getLogger("podcap.groups")


class GroupService:
    def __init__(self, service: CaptureService, sessions: sessionmaker,
                 watch_interval: float = limits.GROUP_WATCH_INTERVAL_S,
                 leader: Leader | None = None) -> None:
        self.service = service
        self.sessions = sessions
        self.leader: Leader = leader or Solo(sessions)  # whose watcher works (leader.py)
        self.lock = threading.Lock()  # one join round at a time: no member starts twice
        self.followers = Followers()
        self._watcher = GroupWatcher(self, watch_interval).start()

    def close(self) -> None:
        self._watcher.stop()

    # ---- the API --------------------------------------------------------------------------

    def create(self, who: Principal, selector: Selector, spec: CaptureSpec) -> Group:
        who.require_write()
        listing = self.service.workloads(who)
        matched = [p for p in listing.items if candidate(p) and selector.matches(p)]
        if not matched:  # as a start's miss: a container a moment old may not be pushed yet
            self.service.inventory.sync()
            listing = self.service.workloads(who)
            matched = [p for p in listing.items if candidate(p) and selector.matches(p)]
        if not matched:
            away = ""
            if listing.unreachable:
                away = "; nodes not answering: " + ", ".join(u.node for u in listing.unreachable)
            raise InvalidArgument(f"selector {selector} matches no running container{away}")
        capturable, skipped = split(matched)
        if not capturable:
            raise FailedPrecondition(
                f"selector {selector} matches only containers that cannot be captured: "
                + ", ".join(f"{p.workload.name} ({why})" for p, why in skipped))
        if len(capturable) > limits.GROUP_MEMBERS_MAX:
            raise InvalidArgument(f"selector {selector} matches {len(capturable)} containers; "
                                  f"a group holds at most {limits.GROUP_MEMBERS_MAX}: narrow it")
        if spec.filter.strip():  # one bad filter refused once, not once per member
            self.service.check_filter(spec.filter)
        now = time.time()
        row = CaptureGroup(id=secrets.token_hex(12), owner=who.username,
                           selector=json.dumps(selector.to_dict()),
                           spec=json.dumps(asdict(spec)), created=now, stopped=None,
                           stop_reason="")
        with self.lock:
            rows, first_error = start_members(self, who, row, spec, capturable, now,
                                              fence=False)
            if not any(r.capture_id for r in rows):
                raise first_error or FailedPrecondition("no member capture could start")
            rows += [member_row(row.id, p, "", why, now) for p, why in skipped]
            with self.sessions() as db, db.begin():
                db.add(row)
                db.add_all(rows)
        self.service.audit.record("group.start", username=who.username, source=who.source,
                                  ok=True, detail=f"group {row.id}: {selector}")
        return self.get(who, row.id)

    def groups(self, who: Principal) -> list[Group]:
        with self.sessions() as db:
            rows = list(db.scalars(select(CaptureGroup).order_by(CaptureGroup.created)))
            members = list(db.scalars(select(GroupMember)))
        listing = self.service.captures(who)
        live = {o.capture.id: o for o in listing.items}
        by_group: dict[str, list[GroupMember]] = {}
        for m in members:
            by_group.setdefault(m.group_id, []).append(m)
        found = [self._view(r, by_group.get(r.id, []), live, listing.unreachable) for r in rows]
        return [g for g in reversed(found) if may_see(who, g)]

    def get(self, who: Principal, gid: str) -> Group:
        row, members = self.rows(group_id(gid))
        listing = self.service.captures(who)
        group = self._view(row, members, {o.capture.id: o for o in listing.items},
                           listing.unreachable)
        if not may_see(who, group):
            raise Hidden(f"capture group {gid} not found", who.username)
        return group

    def stop(self, who: Principal, gid: str) -> Group:
        group = self.get(who, gid)
        who.require_write()
        self._stop_group(who, group, "stopped by user")
        return self.get(who, gid)

    def remove(self, who: Principal, gid: str) -> None:
        group = self.get(who, gid)
        who.require_write()
        with self.lock:
            with self.sessions() as db, db.begin():
                db.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
                db.execute(delete(CaptureGroup).where(CaptureGroup.id == group.id))
            for m in group.members:  # one that cannot be removed now stays a plain capture
                if m.capture is not None:
                    self.quietly(partial(self.service.remove, who, m.row.capture_id))
        self.service.audit.record("group.delete", username=who.username, source=who.source,
                                  ok=True, detail=f"group {group.id}")

    def pcapng(self, who: Principal, gid: str, follow: bool = False,
               from_now: bool = False) -> tuple[Group, Iterator[bytes], Callable[[], None]]:
        """The merged download (group_download.py): (group, bytes, close)."""
        return group_download.pcapng(self, who, gid, follow, from_now)

    def tick(self) -> None:
        """One watcher round now (group_watch.py)."""
        self._watcher.tick()

    # ---- shared with the jobs around it -----------------------------------------------------

    def _stop_group(self, who: Principal, group: Group, reason: str) -> None:
        """Mark it stopped under the join lock (a join in progress finishes first, or sees the
        mark), then stop every running member, a few at a time (each stop drains tcpdump)."""
        with self.lock:
            self.finish(group.id, reason)
        group = self.get(who, group.id)
        running = [m.row.capture_id for m in group.members
                   if m.capture is not None and m.capture.capture.status is Status.RUNNING]
        with ThreadPoolExecutor(limits.GROUP_START_WORKERS,
                                thread_name_prefix="podcap-group-stop") as pool:
            list(pool.map(lambda cid: self.quietly(partial(self.service.stop, who, cid)),
                          running))
        self.service.audit.record("group.stop", username=who.username, source=who.source,
                                  ok=True, detail=f"group {group.id}: {reason}")

    def finish(self, gid: str, reason: str) -> None:
        with self.sessions() as db, db.begin():
            row = db.get(CaptureGroup, gid, with_for_update=True)  # a join records after
            if row is not None and row.stopped is None:
                row.stopped = time.time()
                row.stop_reason = reason

    def rows(self, gid: str) -> tuple[CaptureGroup, list[GroupMember]]:
        with self.sessions() as db:
            row = db.get(CaptureGroup, gid)
            if row is None:
                raise NotFound(f"capture group {gid} not found")
            members = list(db.scalars(select(GroupMember).where(GroupMember.group_id == gid)))
        return row, members

    def _view(self, row: CaptureGroup, members: list[GroupMember],
              live: dict[str, OwnedCapture], unreachable: list[Unreachable]) -> Group:
        members = sorted(members, key=lambda m: (m.joined, m.namespace, m.pod, m.name))
        return Group(row, Selector.from_json(row.selector),
                     CaptureSpec.from_dict(json.loads(row.spec)),
                     [Member(m, live.get(m.capture_id)) for m in members if m.capture_id],
                     [m for m in members if not m.capture_id], unreachable)

    @staticmethod
    def quietly(action: Callable[[], object]) -> None:
        try:
            action()
        except PodcapError as exc:
            log.warning("capture group: %s", exc.message)
