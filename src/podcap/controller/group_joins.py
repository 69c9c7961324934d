"""Members joining a group: its first members at creation, and containers that match later
(or whose start failed, retried) found by the watcher. Members are ordinary captures started
through the service (owner rows, quotas, audit), a few at a time: each start is a round trip
to its node. Joins run one at a time (the group service's lock), so no member starts twice.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from podcap import limits
from podcap.controller.db import CaptureGroup, GroupMember
from podcap.controller.fanout import Listing
from podcap.controller.group_members import (
    COULD_NOT_START,
    STARTING,
    Selector,
    candidate,
    member_row,
    netns_of,
    retryable,
    split,
)
from podcap.controller.inventory import PlacedWorkload
from podcap.controller.leader import LostLease
from podcap.controller.principal import Principal
from podcap.errors import PodcapError
from podcap.model import CaptureSpec

if TYPE_CHECKING:
    from podcap.controller.groups import GroupService

log = logging.getLogger("podcap.groups")


def join(groups: GroupService, who: Principal, row: CaptureGroup, members: list[GroupMember],
         spec: CaptureSpec, now: float, listing: Listing[PlacedWorkload]) -> None:
    """Start the containers of ``listing`` that match the running group ``row`` and are not
    members yet (or are members to retry), with the time left of its duration.

    Across replicas (controller/leader.py) each step is fenced: the members are first
    *claimed* (a row naming this leader's epoch, in a transaction that proves the lease), each
    start is checked against the lease just before it goes, and the captures are recorded in
    a fenced transaction that takes only rows this epoch still claims. A claim of an older
    epoch that never got its capture is void: its leader lost the lease before starting, and
    its late start, if it wakes up, is refused by the fence."""
    leader = groups.leader
    epoch = leader.epoch
    selector = Selector.from_json(row.selector)
    known = {m.workload_id for m in members if not retryable(m, now) and not void(m, epoch)}
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
    with groups.lock:
        claimed = _claim(groups, row.id, capturable, epoch, now)
        if claimed is None:
            return
        rows, _ = start_members(groups, who, row, spec, claimed, now, epoch=epoch)
        for r in rows:
            r.claim_epoch = epoch
        rows += [member_row(row.id, p, "", why, now) for p, why in skipped]
        try:
            _record(groups, who, row.id, rows, epoch)
        except LostLease:  # started, then lost the lease: the new leader starts its own
            for r in rows:
                if r.capture_id:
                    groups.quietly(partial(groups.service.remove, who, r.capture_id))
            raise
        groups.followers.wake(row.id)
    for r in rows:
        log.info("capture group %s: %s joined (%s)", row.id, r.name,
                 f"capture {r.capture_id}" if r.capture_id else r.reason)


def void(m: GroupMember, epoch: int) -> bool:
    """A claim made under an older epoch whose start never landed."""
    return not m.capture_id and m.reason == STARTING and m.claim_epoch < epoch


def _claim(groups: GroupService, gid: str, placed: list[PlacedWorkload], epoch: int,
           now: float) -> list[PlacedWorkload] | None:
    """Claim ``placed`` for this epoch (None when the group is gone or stopped): each a row
    that is new, void, or to retry; one held by a live claim or a capture is left alone."""
    mine: list[PlacedWorkload] = []
    with groups.leader.fenced(f"claim members of group {gid}", epoch) as db:
        current = db.get(CaptureGroup, gid)
        if current is None or current.stopped is not None:
            return None
        for p in placed:
            held = db.get(GroupMember, (gid, p.workload.id), with_for_update=True)
            if held is not None and not (void(held, epoch) or retryable(held, now)):
                continue
            claim = member_row(gid, p, "", STARTING, now)
            claim.claim_epoch = epoch
            db.merge(claim)
            mine.append(p)
    return mine


def _record(groups: GroupService, who: Principal, gid: str, rows: list[GroupMember],
            epoch: int) -> None:
    """Write the members' rows where this epoch's claim still stands (a row that meanwhile
    holds a capture or a live claim of someone else is left alone, and a capture started for
    it here removed); a group deleted meanwhile gets its new captures removed, one stopped
    meanwhile gets them stopped."""
    undo: list[str] = []
    stop: list[str] = []
    with groups.leader.fenced(f"record members of group {gid}", epoch) as db:
        current = db.get(CaptureGroup, gid, with_for_update=True)
        for r in rows:
            held = db.get(GroupMember, (gid, r.workload_id))
            ours = held is not None and held.claim_epoch == epoch and not held.capture_id
            taken = held is not None and not ours and (
                bool(held.capture_id) or (held.reason == STARTING and not void(held, epoch)))
            if current is None or taken:
                if r.capture_id:
                    undo.append(r.capture_id)
                continue
            if current.stopped is not None and r.capture_id:
                stop.append(r.capture_id)
            db.merge(r)  # a retried member's row is replaced
    for cid in undo:
        groups.quietly(partial(groups.service.remove, who, cid))
    for cid in stop:
        groups.quietly(partial(groups.service.stop, who, cid))


def start_members(groups: GroupService, who: Principal, row: CaptureGroup, spec: CaptureSpec,
                  placed: list[PlacedWorkload], now: float, fence: bool = True,
                  epoch: int | None = None) -> tuple[list[GroupMember], PodcapError | None]:
    """Start them a few at a time: each start is a round trip to its node. The watcher's are
    fenced by the leader just before each goes (controller/leader.py); a group's creation,
    which any replica serves, starts its first members itself."""
    def one(p: PlacedWorkload) -> GroupMember | PodcapError:
        try:
            if fence:
                groups.leader.check(f"member start {p.workload.name} in group {row.id}",
                                    epoch)
            owned = groups.service.start(who, p.workload.id, spec, p.agent_id)
        except PodcapError as exc:
            return exc
        except LostLease as exc:
            return PodcapError(str(exc))
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
