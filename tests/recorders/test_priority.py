"""tcpdump's CPU priority (capture/priority.py): a person's capture runs above the workloads, a
recorder's ring below them, so at saturation the capture of a container goes first and the
ring drops instead (BENCHMARKS.md figures 1 and 13). Read from the real tcpdumps' /proc."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from podcap import limits
from podcap.capture.priority import AUTOGROUP_ENABLED
from tests.groups.group_support import pod, tag
from tests.recorders.rec_support import create, members, tcpdump_of
from tests.support import Server, remove_container, running_server

RING_NICE = 15  # not the default: proves the agent option reaches the ring's tcpdump
SCHED_OTHER = 0


@pytest.fixture(scope="module")
def pserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("prio"),
                        ["--ring-priority", str(RING_NICE)]) as srv:
        yield srv


def nice_and_policy(pid: int) -> tuple[int, int]:
    """Fields 19 (nice) and 41 (policy) of /proc/<pid>/stat, after the command's parentheses."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    return int(fields[19 - 3]), int(fields[41 - 3])


def autogroup_nice(pid: int) -> int | None:
    """The nice of the process's session group, where the kernel groups by session."""
    if Path(AUTOGROUP_ENABLED).read_text().strip() != "1":
        return None
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


def test_a_capture_runs_above_the_workloads_and_a_ring_below(pserver: Server) -> None:
    t = tag()
    box = pod("prio", {"app": t})
    try:
        with pserver.client() as c:
            rec = create(c, name=f"p-{t}", workloads=[box.id], window_s=30, bytes_mb=2)
            ring = members(c, rec["id"], 1)[0]["capture_id"]
            r = c.post("/api/captures", json={"workload_id": box.id})
            assert r.status_code == 201, r.text
            capture = r.json()["capture"]["id"]
            ring_pid, capture_pid = tcpdump_of(ring), tcpdump_of(capture)
            assert nice_and_policy(capture_pid) == (limits.CAPTURE_NICE, SCHED_OTHER)
            assert nice_and_policy(ring_pid) == (RING_NICE, SCHED_OTHER)
            if autogroup_nice(capture_pid) is not None:  # tcpdump leads its own session
                assert autogroup_nice(capture_pid) == limits.CAPTURE_NICE
                assert autogroup_nice(ring_pid) == RING_NICE
            assert c.delete(f"/api/recorders/{rec['id']}").status_code == 204
            assert c.delete(f"/api/captures/{capture}").status_code == 204
    finally:
        remove_container(box)
