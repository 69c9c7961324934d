"""Recovery after an agent restart, in-process against real tcpdump processes.

A tcpdump is re-adopted only with its /proc start time recorded (pid + start time name one
process for the machine's uptime), and only when that start time is the one the record holds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from podcap.agent.manager import Agent
from podcap.agent.recovery import find_tcpdumps
from podcap.agent.store import CaptureStore
from podcap.agent.workloads import WorkloadView
from podcap.capture import tcpdump
from podcap.ids import new_capture_id
from podcap.model import Capture, CaptureSpec, Status, Workload
from podcap.runtime.base import proc_start_time, process_alive
from tests.support import wait_for


@contextmanager
def orphan_tcpdump(out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real tcpdump writing ``out`` in its own session, as one the old agent left running."""
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent.parent / "tcpdump.log"
    with open(log, "ab") as err:
        proc = subprocess.Popen([tcpdump.TCPDUMP, "-i", "lo", "-n", "-Z", "root", "-w", str(out),
                                 "udp port 7996"], stdin=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    start = None
    try:
        wait_for(lambda: b"listening on" in log.read_bytes(), what="tcpdump to listen")
        start = proc_start_time(proc.pid)
        yield proc
    finally:
        if proc.poll() is None and process_alive(proc.pid, start):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def running_record(store: CaptureStore, pid: int | None, pid_start: int | None) -> str:
    me = os.getpid()  # the "container": alive for the whole test, so the watcher leaves it be
    workload = Workload(id="a" * 64, name="recovery", runtime="docker", node="n",
                        state="running", pid=me, pid_start=proc_start_time(me))
    cid = new_capture_id()
    store.create(Capture(id=cid, agent_id="agent", workload=workload, spec=CaptureSpec(),
                         pid=pid, pid_start=pid_start, start_time=1.0))
    return cid


def on_disk(store: CaptureStore, cid: str) -> dict:
    return json.loads((store.dir(cid) / "capture.json").read_text())


@contextmanager
def restarted_agent(data: Path) -> Iterator[Agent]:
    agent = Agent(data, WorkloadView([]), node="n", agent_id="agent").open()
    try:
        yield agent
    finally:
        agent.close(stop_captures=False)


def test_scan_finds_our_tcpdump_with_its_real_start_time(tmp_path: Path) -> None:
    root = tmp_path / "captures"
    with orphan_tcpdump(root / "c1" / "files" / "capture.pcap0") as ours, \
            orphan_tcpdump(tmp_path / "elsewhere" / "files" / "x.pcap"):
        found = find_tcpdumps(root)
        assert found == {"c1": (ours.pid, proc_start_time(ours.pid))}
        assert found["c1"][1] is not None


@pytest.mark.parametrize("recorded_pid", [False, True], ids=["died-before-pid", "with-pid"])
def test_readopted_record_holds_the_real_start_time(tmp_path: Path, recorded_pid: bool) -> None:
    """Whether the old agent died before or after writing tcpdump's pid, the re-adopted record
    names that tcpdump by pid and /proc start time."""
    data = tmp_path / "data"
    store = CaptureStore(data / "captures")
    cid = running_record(store, None, None)
    with orphan_tcpdump(store.files_dir(cid) / "capture.pcap") as proc:
        real = proc_start_time(proc.pid)
        if recorded_pid:
            record = store.load_all()[0]
            record.pid, record.pid_start = proc.pid, real
            store.save(record)
        with restarted_agent(data) as agent:
            adopted = agent.get_capture(cid)
            assert adopted.status is Status.RUNNING
            assert (adopted.pid, adopted.pid_start) == (proc.pid, real)
            assert (on_disk(store, cid)["pid"], on_disk(store, cid)["pid_start"]) == (
                proc.pid, real)
            stopped = agent.stop(cid)  # the adopted process is the one stopped
        assert stopped.status is Status.STOPPED and stopped.reason == "stopped by user"
        assert proc.wait(5) is not None


def test_tcpdump_whose_start_time_does_not_match_is_not_adopted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = CaptureStore(data / "captures")
    cid = running_record(store, None, None)
    with orphan_tcpdump(store.files_dir(cid) / "capture.pcap") as proc:
        record = store.load_all()[0]
        record.pid, record.pid_start = proc.pid, proc_start_time(proc.pid) + 1  # another process
        store.save(record)
        with restarted_agent(data) as agent:
            after = agent.get_capture(cid)
        assert after.status is not Status.RUNNING
        assert after.reason == "tcpdump ended while the agent was down"
        assert proc.wait(5) is not None  # the stray writer was stopped, not left running


def test_a_long_running_tcpdumps_log_stays_short(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Each counters request adds a line to tcpdump's log (a recorder's ring runs for weeks):
    past the limit the log is emptied but for the last counters, tcpdump goes on appending to
    it, the live counters are still read, and the stop still gets tcpdump's final ones."""
    from podcap import limits

    monkeypatch.setattr(limits, "TCPDUMP_LOG_MAX_BYTES", 600)
    data = tmp_path / "data"
    store = CaptureStore(data / "captures")
    cid = running_record(store, None, None)
    log = store.log_path(cid)
    with orphan_tcpdump(store.files_dir(cid) / "capture.pcap") as proc, \
            restarted_agent(data) as agent:
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(5):
                s.sendto(b"x", ("127.0.0.1", 7996))
        sizes = []
        for _ in range(20):  # ~20 lines of ~90 bytes: three times the limit
            agent.watcher.refresh_live()
            sizes.append(log.stat().st_size)
        assert max(sizes) <= 600 + 200 and min(sizes) < 300, sizes
        assert b"listening on" not in log.read_bytes()  # emptied at least once
        wait_for(lambda: (agent.watcher.refresh_live(), agent.get_capture(cid).stats)[1]
                 .captured == 5, timeout=10, what="the counters read from the short log")
        stopped = agent.stop(cid)
        assert stopped.stats.captured == 5 and stopped.reason == "stopped by user"
        assert proc.wait(5) is not None
