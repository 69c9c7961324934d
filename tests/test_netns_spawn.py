"""tcpdump spawned straight into the container's network namespace (capture/netns.py).

The agent no longer execs ``nsenter``: a thread of its own enters the namespace by the held fd
and spawns tcpdump there. What must hold: tcpdump is in the container's namespace and is the
agent's own child, exec'd as ``/usr/bin/tcpdump`` with no other program in front of it; the
agent's threads stay in the agent's namespace; tcpdump gets the caller's nice value and none of
the agent's descriptors; an fd that is not a network namespace fails the start with nothing
left running.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podcap import limits
from podcap.agent.manager import Agent
from podcap.agent.workloads import WorkloadView
from podcap.capture import command, netns, runner
from podcap.capture.tcpdump import TCPDUMP
from podcap.errors import CaptureFailed
from podcap.model import CaptureSpec
from podcap.runtime.docker import DockerRuntime
from tests.support import remove_container, run_container, unique, wait_for


@pytest.fixture(scope="module")
def box() -> Iterator[tuple[str, int]]:
    """A running container: (its full id, its pid)."""
    c = run_container(unique("netns"), ["sleep", "300"])
    try:
        c.reload()
        yield c.id, int(c.attrs["State"]["Pid"])
    finally:
        remove_container(c)


@pytest.fixture()
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = Agent(tmp_path / "data", WorkloadView([DockerRuntime()]), "node", "agent-1").open()
    try:
        yield a
    finally:
        a.close()


def _ns(pid: int | str) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def _thread_ns() -> str:
    return os.readlink("/proc/thread-self/ns/net")


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...]."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def _links(pid: int) -> set[str]:
    """The interfaces of the namespace ``pid`` is in, as the kernel lists them."""
    lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    return {line.split(":", 1)[0].strip().split("@")[0] for line in lines}


def _ancestry(pid: int) -> list[str]:
    names = []
    while pid > 1:
        names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        pid = int(_stat(pid)[1])
    return names


def test_tcpdump_runs_in_the_containers_netns_as_the_agents_own_child(
        agent: Agent, box: tuple[str, int]) -> None:
    wid, container_pid = box
    own_ns, own_thread_ns = _ns("self"), _thread_ns()
    capture = agent.start(wid, CaptureSpec())
    try:
        proc = agent.table.procs[capture.id]
        assert proc.popen is not None
        assert _ns(proc.pid) == _ns(container_pid) != own_ns
        assert proc.popen.args[0] == TCPDUMP  # exec'd as itself: no nsenter in front
        assert Path(f"/proc/{proc.pid}/exe").resolve() == Path(TCPDUMP).resolve()
        assert int(_stat(proc.pid)[1]) == os.getpid()  # the agent's child, nothing between
        assert "nsenter" not in _ancestry(proc.pid)
        # No descriptor of the agent's reaches tcpdump: not the namespace fd, not the others.
        fd_dir = f"/proc/{proc.pid}/fd"
        fds = {os.readlink(f"{fd_dir}/{fd}") for fd in os.listdir(fd_dir)}
        assert not any(link.startswith("net:") for link in fds), fds
        # The network-state snapshot ran its commands in the container's namespace too.
        doc = agent.document(capture.id, "netstate")
        assert doc["netns_inode"] == os.stat(f"/proc/{container_pid}/ns/net").st_ino
        assert doc["errors"] == []
        assert {i["ifname"] for i in doc["interfaces"]} == _links(container_pid) != \
            _links(os.getpid())
        # The agent never left its own namespace, nor did the thread that started; a thread
        # that spawns (any snapshot's still under way) is in another only while it spawns.
        assert _ns("self") == own_ns and _thread_ns() == own_thread_ns
        _all_threads_in(own_ns)
    finally:
        agent.remove(capture.id)


def test_tcpdump_gets_the_capture_priority_whatever_the_callers_nice(
        agent: Agent, box: tuple[str, int]) -> None:
    """The child is spawned at the nice value of the thread that asked for the start (the
    spawning thread inherits it), then given the agent's capture priority before it listens
    (capture/priority.py): a start asked from a low-priority thread is no low-priority
    capture."""
    started: list[str] = []

    def start_at_nice_7() -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 7)
        started.append(agent.start(box[0], CaptureSpec()).id)

    t = threading.Thread(target=start_at_nice_7)
    t.start()
    t.join()
    try:
        assert len(started) == 1
        nice = int(_stat(agent.table.procs[started[0]].pid)[16])  # field 19: nice
        assert nice == agent.priorities.capture == limits.CAPTURE_NICE
    finally:
        agent.remove(started[0])


def test_an_fd_that_is_not_a_network_namespace_fails_the_start(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    log = tmp_path / "tcpdump.log"
    before = _thread_ns()
    not_netns = os.open("/proc/self/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
    try:
        proc = runner.start(command.tcpdump_args(CaptureSpec(), files), log, not_netns)
    except CaptureFailed as exc:
        assert re.fullmatch("cannot enter the container's network namespace: setns.*: "
                            "Invalid argument", exc.message), exc.message
    else:  # never leave a tcpdump behind a test that fails
        proc.kill()
        proc.wait(5)
        pytest.fail("tcpdump started although the fd is no network namespace")
    finally:
        os.close(not_netns)
    assert _thread_ns() == before
    assert log.read_bytes() == b"" and list(files.iterdir()) == []  # no tcpdump ever ran


def test_spawn_in_enters_only_the_childs_namespace() -> None:
    """A namespace made without Docker (``unshare -n``): the child is in it, and neither the
    caller's thread nor any other thread of this process is."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "30"])
    try:
        assert _wait_ns_differs(holder.pid), "unshare did not enter a new namespace"
        fd = os.open(f"/proc/{holder.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            child = netns.spawn_in(fd, ["sleep", "30"])
        finally:
            os.close(fd)
        try:
            assert _ns(child.pid) == _ns(holder.pid) != _ns("self") == _thread_ns()
            _all_threads_in(_ns("self"))
        finally:
            child.kill()
            child.wait(5)
    finally:
        holder.kill()
        holder.wait(5)


def _all_threads_in(ns: str) -> None:
    """Every thread of this process is in ``ns``, within a moment: a spawning thread of a
    snapshot still under way (an earlier test's) leaves the namespace it entered by ending."""
    def threads_ns() -> set[str]:
        found = set()
        for tid in os.listdir("/proc/self/task"):
            try:
                found.add(_ns(f"self/task/{tid}"))
            except OSError:  # ended meanwhile
                pass
        return found

    wait_for(lambda: threads_ns() == {ns}, timeout=10, what=f"every thread in {ns}")


def _wait_ns_differs(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
                return _ns(pid) != _ns("self")
        except OSError:
            pass
        time.sleep(0.01)
    return False
