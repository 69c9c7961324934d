"""The node's disk budget: does a new capture fit, and, with ``--reclaim oldest``, which stopped
captures must go to make room. Pure, so the agent decides under its lock and deletes only what
this names, and only once the new capture is known to fit."""

from __future__ import annotations

from collections.abc import Collection

from podcap import limits
from podcap.errors import FailedPrecondition
from podcap.model import Capture, CaptureSpec, Status


def make_room(captures: Collection[Capture], spec: CaptureSpec, budget: int,
              reclaim: str) -> list[Capture]:
    """The stopped captures to delete (oldest stop first; none unless ``reclaim`` is
    "oldest"), or ``FailedPrecondition`` saying what to change. A running capture counts
    with its whole ring (what it may still write), a stopped one with what it holds."""
    running = [c for c in captures if c.status is Status.RUNNING]
    if len(running) >= limits.MAX_RUNNING_CAPTURES:
        raise FailedPrecondition(
            f"{len(running)} captures are running on this node, the maximum is "
            f"{limits.MAX_RUNNING_CAPTURES}; stop one first")
    used = sum(c.spec.max_bytes if c.status is Status.RUNNING else c.stats.bytes
               for c in captures)
    victims: list[Capture] = []
    if reclaim == "oldest":
        stopped = sorted((c for c in captures if c.status is not Status.RUNNING),
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
