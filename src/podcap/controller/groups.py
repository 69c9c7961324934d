"""Capture groups: one selector, one capture per matching running container on every node,
one status, one stop, one delete, one download (a pcapng merged by timestamp).

What a group is made of (selector, members, which containers are taken or skipped, who may see
a group) is in controller/group_members.py; this module runs groups:

- **Members** are ordinary captures (owner rows, quotas, audit, /v1 lists them as sniffers).
  A watcher thread looks for new matching containers every ``GROUP_WATCH_INTERVAL_S`` and
  starts them with the time left of the group's duration, with the rights the owner has at
  that moment (its user row is read each time).
- **Rights**: stop and delete need write, the download needs the download right, as for
  captures.
- **Download**: one pcapng merged by timestamp, plain or followed live
  (controller/group_pcapng.py); this module opens the members' streams and names them.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from functools import partial

from sqlalchemy import delete, select
from sqlalchemy.orm import sessionmaker

from podcap import __version__, limits
from podcap.controller.auth import Principal
from podcap.controller.db import CaptureGroup, GroupMember, User
from podcap.controller.fanout import Listing, Unreachable
from podcap.controller.group_members import (
    COULD_NOT_START,
    Group,
    Member,
    Selector,
    candidate,
    group_id,
    may_see,
    member_row,
    netns_of,
    retryable,
    split,
)
from podcap.controller.group_pcapng import DEFAULT_SNAPLEN, Followed, Section, Source, merged
from podcap.controller.inventory import OwnedCapture, PlacedWorkload
from podcap.controller.netstate_note import netstate_note
from podcap.controller.service import CaptureService
from podcap.errors import (
    FailedPrecondition,
    Hidden,
    InvalidArgument,
    NotFound,
    PodcapError,
)
from podcap.model import CaptureSpec, Status
from podcap.streams import PcapRequest, PcapStream

log = logging.getLogger("podcap.groups")



class GroupService:
    def __init__(self, service: CaptureService, sessions: sessionmaker,
                 watch_interval: float = limits.GROUP_WATCH_INTERVAL_S) -> None:
        self.service = service
        self._sessions = sessions
        self._interval = watch_interval
        self._lock = threading.Lock()  # one join round at a time: no member starts twice
        self._stop = threading.Event()
        self._followers: dict[str, set[threading.Event]] = {}  # group id -> woken on a join
        self._watcher = threading.Thread(target=self._watch, name="podcap-groups", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()

    # ---- the API --------------------------------------------------------------------------

    def create(self, who: Principal, selector: Selector, spec: CaptureSpec) -> Group:
        who.require_write()
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
        with self._lock:
            rows, first_error = self._start_members(who, row, spec, capturable, now)
            if not any(r.capture_id for r in rows):
                raise first_error or FailedPrecondition("no member capture could start")
            rows += [member_row(row.id, p, "", why, now) for p, why in skipped]
            with self._sessions() as db, db.begin():
                db.add(row)
                db.add_all(rows)
        self.service.audit.record("group.start", username=who.username, source=who.source,
                                  ok=True, detail=f"group {row.id}: {selector}")
        return self.get(who, row.id)

    def groups(self, who: Principal) -> list[Group]:
        with self._sessions() as db:
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
        row, members = self._rows(group_id(gid))
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
        with self._lock:
            with self._sessions() as db, db.begin():
                db.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
                db.execute(delete(CaptureGroup).where(CaptureGroup.id == group.id))
            for m in group.members:  # one that cannot be removed now stays a plain capture
                if m.capture is not None:
                    self._quietly(partial(self.service.remove, who, m.row.capture_id))
        self.service.audit.record("group.delete", username=who.username, source=who.source,
                                  ok=True, detail=f"group {group.id}")

    def pcapng(self, who: Principal, gid: str, follow: bool = False,
               from_now: bool = False) -> tuple[Group, Iterator[bytes], Callable[[], None]]:
        """The merged download (controller/group_pcapng.py): (group, bytes, close). Every
        member's stream is opened before the first byte goes out, so the section header can
        name what is missing."""
        group = self.get(who, gid)
        who.require_download()
        if from_now and not follow:
            raise InvalidArgument("from=now applies to follow=true only")
        section = Section(_section_comments(group), group.spec.snaplen or DEFAULT_SNAPLEN)
        seen: set[str] = set()

        def open_new(current: Group, request: PcapRequest) -> list[tuple[Source, PcapStream]]:
            opened: list[tuple[Source, PcapStream]] = []
            try:
                for m in current.members:
                    if m.row.capture_id in seen:
                        continue
                    seen.add(m.row.capture_id)
                    if m.capture is None:
                        section.comments.append(f"missing: {m.if_name}: capture "
                                                f"{m.row.capture_id} is gone")
                        continue
                    try:
                        _, stream = self.service.stream_pcap(who, m.row.capture_id, request)
                    except PodcapError as exc:
                        section.comments.append(f"missing: {m.if_name}: {exc.message}")
                        continue
                    opened.append((self._source(who, group, m), stream))
            except BaseException:
                for _, stream in opened:
                    stream.close()
                raise
            return opened

        if not follow:
            opened = open_new(group, PcapRequest())
            chunks = merged(section, opened)

            def close() -> None:
                chunks.close()
                for _, stream in opened:
                    stream.close()

            return group, chunks, close

        first = [open_new(group, PcapRequest(follow=True, from_now=from_now))]

        def poll() -> tuple[list[tuple[Source, PcapStream]], bool]:
            if first:
                return first.pop(), group.status == str(Status.RUNNING)
            try:
                current = self.get(who, gid)
            except NotFound:  # deleted while followed: what is open drains, then the end
                return [], False
            # A member that joins later began after the follow did: all of it is "from now".
            return open_new(current, PcapRequest(follow=True)), \
                current.status == str(Status.RUNNING)

        wake = threading.Event()
        with self._lock:
            self._followers.setdefault(group.id, set()).add(wake)
        live = Followed(section, poll, wake=wake)

        def stop_following() -> None:
            live.close()
            with self._lock:
                woken = self._followers.get(group.id, set())
                woken.discard(wake)
                if not woken:
                    self._followers.pop(group.id, None)

        return group, live, stop_following

    def _source(self, who: Principal, group: Group, m: Member) -> Source:
        comments = [f"capture {m.row.capture_id} on {m.row.node}"]
        note = netstate_note(self.service, who, m.row.capture_id)
        if note:
            comments.append(note)
        return Source(m.row.capture_id, m.if_name, m.if_description, tuple(comments),
                      initial=m.row.joined <= group.row.created)  # one clock reading at start

    # ---- joining ---------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the watcher must outlive one bad round
                log.exception("capture group watcher round failed")

    def tick(self) -> None:
        """One round: end groups past their duration, start newly matching containers."""
        with self._sessions() as db:
            running = list(db.scalars(select(CaptureGroup).where(
                CaptureGroup.stopped.is_(None))))
        listings: dict[str, Listing[PlacedWorkload]] = {}  # one listing per owner and round
        for row in running:
            try:
                owner = self._owner(row.owner)
                group_row, members = self._rows(row.id)
                spec = CaptureSpec.from_dict(json.loads(row.spec))
                now = time.time()
                if owner is None or (spec.duration and now >= row.created + spec.duration):
                    self._finish(row.id, "duration reached" if owner else
                                 f"owner {row.owner} is gone or may no longer capture")
                    continue
                if owner.username not in listings:
                    listings[owner.username] = self.service.workloads(owner)
                self._join(owner, group_row, members, spec, now, listings[owner.username])
            except PodcapError as exc:  # deleted meanwhile, a node away: the next round retries
                log.warning("capture group %s: %s", row.id, exc.message)

    def _join(self, who: Principal, row: CaptureGroup, members: list[GroupMember],
              spec: CaptureSpec, now: float, listing: Listing[PlacedWorkload]) -> None:
        selector = Selector.from_json(row.selector)
        known = {m.workload_id for m in members if not retryable(m, now)}
        new = [p for p in listing.items if candidate(p) and p.workload.id not in known
               and selector.matches(p)]
        if not new:
            return
        taken = {(m.agent_id, m.workload_id) for m in members if m.capture_id}
        capturable, skipped = split(new, netns_of(listing.items, taken))
        if spec.duration:
            left = int(row.created + spec.duration - now)
            if left < 1:
                return
            spec = replace(spec, duration=left)
        room = limits.GROUP_MEMBERS_MAX - sum(1 for m in members if m.capture_id)
        over = capturable[max(room, 0):]
        capturable = capturable[:max(room, 0)]
        skipped += [(p, f"the group already has {limits.GROUP_MEMBERS_MAX} members")
                    for p in over]
        with self._lock:
            with self._sessions() as db:
                current = db.get(CaptureGroup, row.id)
                if current is None or current.stopped is not None:
                    return
            rows, _ = self._start_members(who, row, spec, capturable, now)
            rows += [member_row(row.id, p, "", why, now) for p, why in skipped]
            with self._sessions() as db, db.begin():
                if db.get(CaptureGroup, row.id) is None:  # deleted meanwhile: undo
                    for r in rows:
                        if r.capture_id:
                            self._quietly(partial(self.service.remove, who, r.capture_id))
                    return
                for r in rows:
                    db.merge(r)  # a retried member's row is replaced
            for wake in self._followers.get(row.id, ()):
                wake.set()
        for r in rows:
            log.info("capture group %s: %s joined (%s)", row.id, r.name,
                     f"capture {r.capture_id}" if r.capture_id else r.reason)

    def _start_members(self, who: Principal, row: CaptureGroup, spec: CaptureSpec,
                       placed: list[PlacedWorkload], now: float
                       ) -> tuple[list[GroupMember], PodcapError | None]:
        """Start them a few at a time: each start is a round trip to its node."""
        def one(p: PlacedWorkload) -> GroupMember | PodcapError:
            try:
                owned = self.service.start(who, p.workload.id, spec, p.agent_id)
            except PodcapError as exc:
                return exc
            return member_row(row.id, p, owned.capture.id, "", now)

        rows: list[GroupMember] = []
        first_error: PodcapError | None = None
        with ThreadPoolExecutor(limits.GROUP_START_WORKERS,
                                thread_name_prefix="podcap-group-start") as pool:
            for p, done in zip(placed, pool.map(one, placed), strict=True):
                if isinstance(done, PodcapError):
                    first_error = first_error or done
                    done = member_row(row.id, p, "", COULD_NOT_START + done.message, now)
                rows.append(done)
        return rows, first_error

    # ---- internals --------------------------------------------------------------------------

    def _stop_group(self, who: Principal, group: Group, reason: str) -> None:
        """Mark it stopped under the join lock (a join in progress finishes first, or sees the
        mark), then stop every running member, a few at a time (each stop drains tcpdump)."""
        with self._lock:
            self._finish(group.id, reason)
        group = self.get(who, group.id)
        running = [m.row.capture_id for m in group.members
                   if m.capture is not None and m.capture.capture.status is Status.RUNNING]
        with ThreadPoolExecutor(limits.GROUP_START_WORKERS,
                                thread_name_prefix="podcap-group-stop") as pool:
            list(pool.map(lambda cid: self._quietly(partial(self.service.stop, who, cid)),
                          running))
        self.service.audit.record("group.stop", username=who.username, source=who.source,
                                  ok=True, detail=f"group {group.id}: {reason}")

    def _finish(self, gid: str, reason: str) -> None:
        with self._sessions() as db, db.begin():
            row = db.get(CaptureGroup, gid)
            if row is not None and row.stopped is None:
                row.stopped = time.time()
                row.stop_reason = reason

    def _rows(self, gid: str) -> tuple[CaptureGroup, list[GroupMember]]:
        with self._sessions() as db:
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

    def _owner(self, username: str) -> Principal | None:
        """The owner's rights as they are now; None when it may no longer start captures."""
        with self._sessions() as db:
            user = db.get(User, username)
        if user is None or user.role not in ("admin", "operator"):
            return None
        spaces = frozenset(n for n in user.namespaces.split(",") if n)
        return Principal(user.username, user.role, spaces, bool(user.download),
                         source="capture group")

    @staticmethod
    def _quietly(action: Callable[[], object]) -> None:
        try:
            action()
        except PodcapError as exc:
            log.warning("capture group: %s", exc.message)


def _section_comments(group: Group) -> list[str]:
    stop = group.row.stopped
    lines = [f"podcap capture group {group.id}",
             f"selector: {group.selector}",
             f"start: {_iso(group.row.created)}",
             f"stop: {_iso(stop) if stop else 'still running'}",
             f"podcap version: {__version__}",
             f"members: {len(group.members)}"
             + (f"; skipped: {len(group.skipped)}" if group.skipped else "")]
    lines += [f"skipped: {s.name} ({s.reason})" for s in group.skipped]
    return lines


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
