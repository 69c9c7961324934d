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
    Selector,
    candidate,
    member_row,
    netns_of,
    retryable,
    split,
)
from podcap.controller.inventory import PlacedWorkload
from podcap.controller.principal import Principal
from podcap.errors import PodcapError
from podcap.model import CaptureSpec

if TYPE_CHECKING:
    from podcap.controller.groups import GroupService

log = logging.getLogger("podcap.groups")


def join(groups: GroupService, who: Principal, row: CaptureGroup, members: list[GroupMember],
         spec: CaptureSpec, now: float, listing: Listing[PlacedWorkload]) -> None:
    """Start the containers of ``listing`` that match the running group ``row`` and are not
    members yet (or are members to retry), with the time left of its duration."""
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
    with groups.lock:
        with groups.sessions() as db:
            current = db.get(CaptureGroup, row.id)
            if current is None or current.stopped is not None:
                return
        rows, _ = start_members(groups, who, row, spec, capturable, now)
        rows += [member_row(row.id, p, "", why, now) for p, why in skipped]
        with groups.sessions() as db, db.begin():
            if db.get(CaptureGroup, row.id) is None:  # deleted meanwhile: undo
                for r in rows:
                    if r.capture_id:
                        groups.quietly(partial(groups.service.remove, who, r.capture_id))
                return
            for r in rows:
                db.merge(r)  # a retried member's row is replaced
        groups.followers.wake(row.id)
    for r in rows:
        log.info("capture group %s: %s joined (%s)", row.id, r.name,
                 f"capture {r.capture_id}" if r.capture_id else r.reason)


def start_members(groups: GroupService, who: Principal, row: CaptureGroup, spec: CaptureSpec,
                  placed: list[PlacedWorkload], now: float
                  ) -> tuple[list[GroupMember], PodcapError | None]:
    """Start them a few at a time: each start is a round trip to its node."""
    def one(p: PlacedWorkload) -> GroupMember | PodcapError:
        try:
            owned = groups.service.start(who, p.workload.id, spec, p.agent_id)
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
