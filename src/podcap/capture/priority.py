"""The CPU priority of a capture's tcpdump: what decides its drops when the node is saturated.

A tcpdump drops packets only when it is not scheduled soon enough to empty its kernel buffer,
and on a busy node it competes with the workloads, with the agent, and with the other tcpdumps
of the same container (a recorder's ring beside a person's capture: BENCHMARKS.md figure 13).
So a person's capture runs above the workloads and the rings (``limits.CAPTURE_NICE``, the
agent's ``--capture-priority``): beside it a recorder's ring (``limits.RING_NICE``, the
workloads' priority) is the one that drops, and says so in its own counters.

A nice value alone is not enough where the kernel groups tasks by session (autogroup,
``/proc/sys/kernel/sched_autogroup_enabled``, on by default on desktop and many server
kernels): each tcpdump is the leader of its own session (capture/runner.py), and tasks of
different groups share the CPU by their *group's* nice, not their own. So the value is given
to both: the process (which decides among tasks of one group or one cgroup: the agent's
threads, its followers, other tcpdumps under the same cgroup) and its session's autogroup
(which decides against other sessions, e.g. workloads in the root cgroup). Between cgroups
(Kubernetes pods) neither applies: there the agent's pod's CPU weight decides
(docs/OPERATIONS.md).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from podcap import limits

log = logging.getLogger("podcap.agent")

AUTOGROUP_ENABLED = "/proc/sys/kernel/sched_autogroup_enabled"


@dataclass(frozen=True)
class Priorities:
    """An agent's nice values: a person's capture's and a recorder ring's."""

    capture: int = limits.CAPTURE_NICE
    ring: int = limits.RING_NICE

    def of(self, ring: bool) -> int:
        return self.ring if ring else self.capture


def apply(pid: int, nice: int) -> None:
    """Give process ``pid`` (a tcpdump just spawned, its session's only process) the CPU
    priority ``nice``: its own and its session's autogroup's. Best effort: a capture that
    cannot be prioritised (a negative value needs CAP_SYS_NICE, which the Kubernetes agent
    does not hold) still captures, and the agent's log says why, once."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError as exc:
        _warn_once(f"cannot give tcpdump nice {nice}: {exc.strerror}; it runs at the "
                   "agent's own (--capture-priority / --ring-priority)")
        return
    if not _autogroups():
        return
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
    except OSError as exc:
        _warn_once(f"cannot give tcpdump's session group nice {nice}: {exc.strerror}")


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


def _autogroups() -> bool:
    try:
        with open(AUTOGROUP_ENABLED) as f:
            return f.read().strip() == "1"
    except OSError:
        return False
