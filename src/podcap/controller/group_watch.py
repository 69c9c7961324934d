"""The group watcher: a thread that every ``GROUP_WATCH_INTERVAL_S`` ends groups past their
duration and has newly matching containers join, with the rights the owner has at that moment
(its user row is read each round, so it works after a restart and loses them when the owner is
demoted or deleted). It runs on every replica and works on the one that leads
(controller/leader.py); each member it starts is fenced there (group_joins.py).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy import select

from podcap.controller.db import CaptureGroup, User
from podcap.controller.fanout import Listing
from podcap.controller.group_joins import join
from podcap.controller.inventory import PlacedWorkload
from podcap.controller.leader import LostLease, loop
from podcap.controller.principal import Principal
from podcap.errors import PodcapError
from podcap.model import CaptureSpec

if TYPE_CHECKING:
    from podcap.controller.groups import GroupService

log = logging.getLogger("podcap.groups")


class GroupWatcher:
    def __init__(self, groups: GroupService, interval: float) -> None:
        self._groups = groups
        self._interval = interval
        self._stop = threading.Event()

    def start(self) -> GroupWatcher:
        loop(self._groups.leader, "groups", self._interval, self.tick, self._stop)
        return self

    def stop(self) -> None:
        self._stop.set()

    def tick(self) -> None:
        """One round: end groups past their duration, start newly matching containers."""
        groups = self._groups
        with groups.sessions() as db:
            running = list(db.scalars(select(CaptureGroup).where(
                CaptureGroup.stopped.is_(None))))
        listings: dict[str, Listing[PlacedWorkload]] = {}  # one listing per owner and round
        for row in running:
            try:
                owner = self._owner(row.owner)
                group_row, members = groups.rows(row.id)
                spec = CaptureSpec.from_dict(json.loads(row.spec))
                now = time.time()
                if owner is None or (spec.duration and now >= row.created + spec.duration):
                    groups.finish(row.id, "duration reached" if owner else
                                  f"owner {row.owner} is gone or may no longer capture")
                    continue
                if owner.username not in listings:
                    listings[owner.username] = groups.service.workloads(owner)
                join(groups, owner, group_row, members, spec, now, listings[owner.username])
            except PodcapError as exc:  # deleted meanwhile, a node away: the next round retries
                log.warning("capture group %s: %s", row.id, exc.message)
            except LostLease:
                raise  # another replica leads now: this round ends here

    def _owner(self, username: str) -> Principal | None:
        """The owner's rights as they are now; None when it may no longer start captures."""
        with self._groups.sessions() as db:
            user = db.get(User, username)
        if user is None or user.role not in ("admin", "operator"):
            return None
        spaces = frozenset(n for n in user.namespaces.split(",") if n)
        return Principal(user.username, user.role, spaces, bool(user.download),
                         source="capture group")
