"""The start path after issue 12: the capture's own tcpdump is the only filter compiler on it.

A bad filter still gives ``InvalidArgument`` with tcpdump's message (the same one the filter
check gives), and leaves nothing behind: no tcpdump, no record, no directory. A good filter costs
no extra ``tcpdump -d``. Also here: the reasons a tcpdump that ended by itself gets, and the
repair of a pcap whose last record was cut.
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest

from podcap.agent.manager import Agent
from podcap.agent.recovery import find_tcpdumps
from podcap.agent.workloads import WorkloadView
from podcap.capture import filters, tcpdump, tcpdump_log
from podcap.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from podcap.model import CaptureSpec, Recording, Status
from podcap.pcap import format
from podcap.pcap.repair import repair_tail
from podcap.runtime.docker import DockerRuntime
from podcap.transport.base import AgentTransport
from tests.support import remove_container, run_container, unique, wait_for


@pytest.fixture(scope="module")
def boxed() -> Iterator[tuple[str, str]]:
    """A running container: (its full id, its name)."""
    c = run_container(unique("start"), ["sleep", "300"])
    try:
        yield c.id, c.name
    finally:
        remove_container(c)


@pytest.fixture(scope="module")
def box(boxed: tuple[str, str]) -> str:
    return boxed[0]


@pytest.fixture()
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = Agent(tmp_path / "data", WorkloadView([DockerRuntime()]), "node", "agent-1").open()
    _: AgentTransport = a  # the agent is its own transport (mypy checks this line)
    try:
        yield a
    finally:
        a.close()


@pytest.fixture()
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every ``tcpdump -d`` the tcpdump module runs from now on."""
    seen: list[list[str]] = []
    real = subprocess.run

    def spy(argv: list[str], *args: object, **kwargs: object) -> object:
        if "-d" in argv:
            seen.append(list(argv))
        return real(argv, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(filters.subprocess, "run", spy)
    return seen


def test_bad_filter_at_start_is_tcpdumps_message_and_leaves_nothing(
        agent: Agent, box: str, compiles: list[list[str]]) -> None:
    with pytest.raises(InvalidArgument) as started:
        agent.start(box, CaptureSpec(filter="tcp port"))
    with pytest.raises(InvalidArgument) as checked:
        agent.check_filter("tcp port")
    assert started.value.message == checked.value.message == \
        "invalid filter: can't parse filter expression: syntax error"
    assert agent.list_captures() == []
    assert list(agent.store.root.iterdir()) == []  # no record, no directory
    assert find_tcpdumps(agent.store.root) == {}


def test_good_filter_starts_without_a_separate_compile(agent: Agent, box: str,
                                                       compiles: list[list[str]]) -> None:
    capture = agent.start(box, CaptureSpec(filter="udp port 4242 or icmp"))
    try:
        assert compiles == []  # only the capture's own tcpdump compiled it
        assert capture.status == "running" and capture.pid
        record = agent.store.dir(capture.id) / "capture.json"
        assert record.is_file()  # written while tcpdump booted
    finally:
        agent.remove(capture.id)
    assert find_tcpdumps(agent.store.root) == {}


def test_the_agent_takes_full_workload_ids_only(agent: Agent, boxed: tuple[str, str]) -> None:
    """Which workload a name or a short id means is the controller's decision
    (controller/resolver.py); the agent refuses both rather than deciding by a rule of its own,
    and a refused start leaves nothing behind."""
    full, name = boxed
    for given in (name, full[:12], full[:63], full.upper(), f"{full}x", ""):
        with pytest.raises(InvalidArgument, match="full workload id"):
            agent.start(given, CaptureSpec())
        with pytest.raises(InvalidArgument, match="full workload id"):
            agent.workloads.get(given)
    with pytest.raises(NotFound):
        agent.start("0" * 64, CaptureSpec())
    assert agent.workloads.get(full).id == full
    assert agent.list_captures() == [] and list(agent.store.root.iterdir()) == []


def test_docker_answers_only_for_the_id_asked(box: str) -> None:
    """Docker's inspect looks a name up before an id prefix: a container named like an id
    that no container has must not stand in for it."""
    impostor = run_container(secrets.token_hex(32), ["sleep", "300"])
    runtime = DockerRuntime()
    try:
        with pytest.raises(NotFound):
            runtime.get(impostor.name)  # 64 hex characters, but a name
        assert runtime.get(impostor.id).id == impostor.id
        assert runtime.get(box).id == box
        with pytest.raises(InvalidArgument):
            runtime.get(box[:12])  # Docker itself would resolve this prefix
    finally:
        runtime.close()
        remove_container(impostor)


def test_filter_check_compiles_once_per_filter(tmp_path: Path,
                                               compiles: list[list[str]]) -> None:
    empty = tcpdump.write_empty_pcap(tmp_path / "empty.pcap")
    expression = f"udp port {os.getpid() % 60000 + 1}"  # not compiled by an earlier test
    filters.compile_filter(expression, empty)
    filters.compile_filter(expression, empty)
    assert len(compiles) == 1
    for _ in range(2):  # failures are never remembered
        with pytest.raises(InvalidArgument):
            filters.compile_filter("udp port", empty)
    assert len(compiles) == 3


def test_exit_reasons(tmp_path: Path) -> None:
    log = tmp_path / "tcpdump.log"
    log.write_bytes(b"tcpdump: listening on any, link-type LINUX_SLL2\n"
                    b"3 packets captured, 3 packets received by filter, 0 packets dropped by "
                    b"kernel\n")
    assert tcpdump_log.exit_reason(-9, log) == ("tcpdump killed by signal 9 (SIGKILL)", True)
    assert tcpdump_log.exit_reason(0, log) == ("tcpdump exited", False)
    assert tcpdump_log.exit_reason(None, log) == ("tcpdump ended without a message (killed?)", True)
    log.write_bytes(b"tcpdump: /data/x/capture.pcap1: No space left on device\n")
    assert tcpdump_log.exit_reason(1, log) == ("disk full", False)
    log.write_bytes(b"tcpdump: any: You don't have permission to perform this capture\n")
    assert tcpdump_log.exit_reason(1, log) == (
        "error: any: You don't have permission to perform this capture", True)


def _pcap(records: list[bytes]) -> bytes:
    out = format.global_header()
    for i, data in enumerate(records):
        out += format.record(1_700_000_000 + i, 0, data)
    return out


def test_repair_tail_cuts_half_a_record_only(tmp_path: Path) -> None:
    whole = _pcap([bytes([i]) * (100 + i) for i in range(50)])
    path = tmp_path / "cut.pcap"
    path.write_bytes(whole + format.record(1, 0, b"x" * 500)[:16 + 123])
    assert repair_tail(path, chunk=64) == 16 + 123  # small reads: records span them
    assert path.read_bytes() == whole
    assert len(list(dpkt.pcap.Reader(io.BytesIO(path.read_bytes())))) == 50
    assert repair_tail(path) == 0  # a whole file is left as it is
    other = tmp_path / "not-a-pcap"
    other.write_bytes(b"hello world, not a pcap at all")
    assert repair_tail(other) == 0 and other.read_bytes().startswith(b"hello")


def test_a_removed_capture_leaves_no_rate_series(agent: Agent, box: str) -> None:
    """The agent keeps a second-by-second series per running capture in memory; removing the
    capture must drop it, or a long-lived agent keeps every deleted capture's series."""
    import time

    capture = agent.start(box, CaptureSpec(filter="icmp"))
    deadline = time.monotonic() + 10
    while not agent.document(capture.id, "series", {})["points"]:
        assert time.monotonic() < deadline, "no series point within 10 s"
        time.sleep(0.2)
    agent.remove(capture.id)
    assert capture.id not in agent.series._series


def test_a_trigger_after_the_freeze_closed_is_told_so_not_failed(agent: Agent, box: str) -> None:
    """The controller sends a trigger while it sees a freeze open; if the freeze closed on the
    way, the answer is AlreadyExists (counted as cooldown), not a failure (agent/rings.py)."""
    spec = CaptureSpec(file_number=2, file_size_mb=1)
    ring = agent.record(box, spec, "admin", Recording("rec-1", 30))
    agent.freeze(ring.id, "triggered by admin", 0.3)
    agent.freeze(ring.id, "triggered by admin", 0.3)  # open: extended
    wait_for(lambda: agent.get_capture(ring.id).status is not Status.RUNNING, what="the snapshot")
    with pytest.raises(AlreadyExists, match="has ended; its snapshot is kept"):
        agent.freeze(ring.id, "triggered: alert X", 0.3)
    plain = agent.start(box, spec)
    agent.stop(plain.id)
    with pytest.raises(FailedPrecondition, match="not a recorder's ring"):
        agent.freeze(plain.id, "triggered by admin", 0.3)
