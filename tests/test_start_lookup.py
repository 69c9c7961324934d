"""A start spawns tcpdump on the agent's last listing and has the runtime's fresh answer confirm
it while tcpdump boots (agent/lookup.py).

What must hold: tcpdump is spawned before the runtime's answer arrives when the listing holds
the container; a listing the runtime no longer agrees with (a paused container, one restarted
or removed since it was listed) never yields a capture of anything but the container as it is
now, and a refused start leaves nothing behind: no tcpdump, no record, no directory.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podcap.agent.lookup import StartLookup, Unconfirmed
from podcap.agent.manager import Agent
from podcap.agent.recovery import find_tcpdumps
from podcap.agent.workloads import WorkloadView
from podcap.capture import runner
from podcap.errors import FailedPrecondition, NotFound
from podcap.model import CaptureSpec, Status
from podcap.runtime.docker import DockerRuntime
from tests.support import remove_container, run_container, unique


@pytest.fixture()
def box() -> Iterator:
    c = run_container(unique("lookup"), ["sleep", "300"])
    try:
        c.reload()
        yield c
    finally:
        remove_container(c)


@pytest.fixture()
def agent(tmp_path: Path) -> Iterator[Agent]:
    """Not opened: no feed relists behind the test's back, so its listing stays as it made
    it (the stale listing a start may meet in the moment before the feed catches up)."""
    a = Agent(tmp_path / "data", WorkloadView([DockerRuntime()]), "node", "agent-1")
    try:
        yield a
    finally:
        a.close()


def _nothing_left(agent: Agent) -> None:
    assert agent.list_captures() == []
    assert list(agent.store.root.iterdir()) == []
    assert find_tcpdumps(agent.store.root) == {}


def test_tcpdump_is_spawned_before_the_runtime_answers(
        agent: Agent, box, monkeypatch: pytest.MonkeyPatch) -> None:
    agent.workloads.list()
    runtime = agent.workloads.runtimes[0]
    real_get, real_spawn = runtime.get, runner.TcpdumpRun.spawn
    seen: dict[str, float] = {}

    def slow_get(wid: str):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        answer = real_get(wid)
        seen["answered"] = time.monotonic()
        return answer

    def spawn(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen["spawned"] = time.monotonic()
        return real_spawn(self, *args, **kwargs)

    monkeypatch.setattr(runtime, "get", slow_get)
    monkeypatch.setattr(runner.TcpdumpRun, "spawn", spawn)
    capture = agent.start(box.id, CaptureSpec())
    try:
        assert capture.status is Status.RUNNING
        assert seen["spawned"] < seen["answered"] - 0.2
        assert capture.workload.pid == box.attrs["State"]["Pid"]
    finally:
        agent.remove(capture.id)


def test_a_container_paused_since_it_was_listed_is_refused_and_nothing_kept(
        agent: Agent, box) -> None:
    agent.workloads.list()
    listed = agent.workloads.lookup(box.id).listed
    assert listed is not None and listed.cap_sniff  # the listing still says running
    box.pause()
    try:
        with pytest.raises(FailedPrecondition, match="is not running"):
            agent.start(box.id, CaptureSpec())
        _nothing_left(agent)
    finally:
        box.unpause()


def test_a_container_restarted_since_it_was_listed_is_captured_as_it_is_now(
        agent: Agent, box) -> None:
    agent.workloads.list()
    old_pid = box.attrs["State"]["Pid"]
    box.restart(timeout=0)
    box.reload()
    assert box.attrs["State"]["Pid"] != old_pid
    assert agent.workloads.lookup(box.id).listed is None  # its listed process is gone
    capture = agent.start(box.id, CaptureSpec())
    try:
        proc = agent.table.procs[capture.id]
        assert os.readlink(f"/proc/{proc.pid}/ns/net") == \
            os.readlink(f"/proc/{box.attrs['State']['Pid']}/ns/net")
        assert capture.workload.pid == box.attrs["State"]["Pid"]
    finally:
        agent.remove(capture.id)


def test_a_container_removed_since_it_was_listed_is_not_found(agent: Agent, box) -> None:
    agent.workloads.list()
    remove_container(box)
    with pytest.raises(NotFound):
        agent.start(box.id, CaptureSpec())
    _nothing_left(agent)


def test_an_answer_about_another_process_is_not_a_confirmation(agent: Agent, box) -> None:
    """The runtime's answer must be the process tcpdump was spawned on: same pid, start time
    and namespace; any other is refused, whatever else it says."""
    fresh = agent.workloads.get(box.id)
    for field, other in (("pid", (fresh.pid or 0) + 1), ("pid_start", (fresh.pid_start or 0) + 1),
                         ("netns", (fresh.netns or 0) + 1)):
        used = dataclasses.replace(fresh, **{field: other})
        lookup = StartLookup(used, lambda: fresh)
        with pytest.raises(Unconfirmed) as refused:
            lookup.confirm(used)
        assert "restarted while the capture started" in refused.value.error.message
    assert agent.workloads.lookup(box.id).confirm(fresh) == fresh


def test_an_abandoned_tcpdump_is_gone_when_abandon_returns(tmp_path: Path) -> None:
    """One that does not end on SIGINT within the grace (a tcpdump still booting on a loaded
    machine) is killed, and waited for: a refused start must leave no process behind."""
    import signal
    import subprocess

    from podcap.capture.runner import TcpdumpRun

    run = TcpdumpRun(CaptureSpec(), tmp_path / "files", tmp_path / "log")
    run.popen = subprocess.Popen(["sleep", "30"], start_new_session=True,
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        run.abandon(grace=0.1)
        assert run.popen.poll() == -signal.SIGKILL
    finally:
        if run.popen.poll() is None:
            run.popen.kill()
            run.popen.wait()
