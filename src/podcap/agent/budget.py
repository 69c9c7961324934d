"""The node's disk budget: does a new capture fit, and, with ``--reclaim oldest``, which stopped
captures must go to make room. ``make_room`` is pure, so the agent decides under its lock;
``reclaim`` deletes only what it names, and only once the new capture is known to fit."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Collection
from pathlib import Path

from podcap import limits
from podcap.agent.table import CaptureTable
from podcap.errors import FailedPrecondition
from podcap.insight.series import LiveSeries
from podcap.logs import capture_fields
from podcap.model import Capture, CaptureSpec, Status

log = logging.getLogger("podcap.agent")


def make_room(captures: Collection[Capture], spec: CaptureSpec, budget: int,
              reclaim: str, replacing: str = "") -> list[Capture]:
    """The stopped captures to delete (oldest stop first; none unless ``reclaim`` is
    "oldest"), or ``FailedPrecondition`` saying what to change. A running capture counts
    with its whole ring (what it may still write), a stopped one with what it holds; so does
    ``replacing``, a recorder's ring that stops as soon as its successor listens."""
    captures = [dataclasses.replace(c, status=Status.STOPPED) if c.id == replacing else c
                for c in captures]
    running = [c for c in captures if c.status is Status.RUNNING]
    if len(running) >= limits.MAX_RUNNING_CAPTURES:
        raise FailedPrecondition(
            f"{len(running)} captures are running on this node, the maximum is "
            f"{limits.MAX_RUNNING_CAPTURES}; stop one first")
    used = sum(c.spec.max_bytes if c.status is Status.RUNNING else c.stats.bytes
               for c in captures)
    victims: list[Capture] = []
    if reclaim == "oldest":
        stopped = sorted((c for c in captures if c.status is not Status.RUNNING
                          and c.id != replacing),
                         key=lambda c: (c.stop_time or c.start_time, c.start_time))
        for old in stopped:
            if used + spec.max_bytes <= budget:
                break
            victims.append(old)
            used -= old.stats.bytes
    if used + spec.max_bytes > budget:
        raise FailedPrecondition(
            f"disk budget: this capture may use up to {spec.max_bytes / 1e6:.0f} MB "
            f"({spec.file_number} files x {spec.file_size_mb} MB), but "
            f"{used / 1e6:.0f} MB of the node's {budget / 1e6:.0f} MB budget are taken"
            + (" by running captures" if reclaim == "oldest" else "")
            + "; delete old captures or lower file_size_mb or file_number"
            + ("" if reclaim == "oldest" else " (or start the agent with --reclaim oldest)"))
    return victims


def disk_full(root: Path) -> bool:
    """Less than the full-disk reserve free where captures are kept: no start at all."""
    return shutil.disk_usage(root).free < limits.DISK_FULL_RESERVE_BYTES


def reclaim(table: CaptureTable, series: LiveSeries, spec: CaptureSpec, for_cid: str,
            budget: int, policy: str, node: str, replacing: str = "") -> list[str]:
    """Refuse a start that does not fit the node's disk budget, or with ``policy`` "oldest"
    first delete the oldest stopped captures (``make_room``). Hold ``table.lock``. Returns the
    ids deleted, so the controller can audit them."""
    victims = make_room(list(table.captures.values()), spec, budget, policy, replacing)
    for old in victims:  # only once the new capture is known to fit
        table.captures.pop(old.id, None)
        table.store.delete(old.id)
        series.forget(old.id)
        log.warning("capture %s deleted to make room for capture %s (--reclaim oldest: "
                    "%s, stopped %s, %d bytes)", old.id, for_cid, old.workload.name,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(old.stop_time or 0)),
                    old.stats.bytes,
                    extra=capture_fields("capture.reclaimed", old.id, old.workload.name,
                                         node, owner=old.owner, for_capture=for_cid,
                                         bytes=old.stats.bytes))
    return [old.id for old in victims]
