"""Quotas (controller/quotas.py) without a server: which captures count toward which limit, by
how much, where the limit is (at it is allowed, past it is refused) and what the refusal says.
tests/security/test_quotas.py proves the same through the API with real captures."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest

from podcap.controller import quotas as quotas_module
from podcap.controller.quotas import Held, Quotas, default_node_buffer
from podcap.errors import ResourceExhausted
from podcap.model import CaptureSpec, Status

MB = 1_000_000
KIB = 1024
OFF = dict.fromkeys(("user_captures", "user_disk_bytes", "user_buffer_bytes",
                     "namespace_captures", "namespace_disk_bytes", "namespace_buffer_bytes",
                     "node_buffer_bytes"), 0)
# One file of 1 MB, 256 KiB of kernel buffer: max_bytes 1,000,000, buffer 262,144 bytes.
SMALL = CaptureSpec(file_number=1, file_size_mb=1, buffer_kib=256)


def only(**limits: int) -> Quotas:
    """Every limit off but the ones named."""
    return Quotas(**{**OFF, **limits})


def running(owner: str = "alice", namespace: str = "a", agent: str = "n1",
            spec: CaptureSpec = SMALL) -> Held:
    return Held(owner, namespace, agent, spec, Status.RUNNING.value, bytes=123)


def stopped(nbytes: int, owner: str = "alice", namespace: str = "a", agent: str = "n1") -> Held:
    return Held(owner, namespace, agent, SMALL, Status.STOPPED.value, bytes=nbytes)


def refused(q: Quotas, held: list[Held], owner: str = "alice", namespace: str = "a",
            agent: str = "n1", spec: CaptureSpec = SMALL) -> str:
    with pytest.raises(ResourceExhausted) as info:
        q.check(owner, namespace, agent, spec, held)
    assert info.value.retry_after is None
    return str(info.value)


def test_defaults_and_as_dict() -> None:
    assert Quotas().as_dict() == {
        "quota_user_captures": 32, "quota_user_disk_bytes": 4 * 1024**3,
        "quota_user_buffer_bytes": 512 * 1024**2, "quota_namespace_captures": 64,
        "quota_namespace_disk_bytes": 8 * 1024**3, "quota_namespace_buffer_bytes": 1024**3,
        "quota_node_buffer_bytes": 0}


def test_user_captures_at_the_limit_pass_and_past_it_are_refused() -> None:
    q = only(user_captures=2)
    q.check("alice", "a", "n1", SMALL, [running()])  # 2 with this one: allowed
    assert refused(q, [running(), running(namespace="b", agent="n2")]) == (
        "quota reached: user alice: running captures would be 3 with this capture, limit 2 "
        "(quota_user_captures, PODCAP_QUOTA_USER_CAPTURES); stop or delete a capture, or ask "
        "for less (buffer_kib, file_size_mb, file_number)")
    # Another user's captures are not alice's; a stopped one runs nothing.
    q.check("alice", "a", "n1", SMALL, [running(owner="bob"), running(owner="bob"),
                                         stopped(5), running()])


def test_user_disk_counts_a_running_ring_whole_and_a_stopped_capture_its_bytes() -> None:
    q = only(user_disk_bytes=3 * MB)
    q.check("alice", "a", "n1", SMALL, [running(), stopped(MB)])  # 1 + 1 + 1 MB
    message = refused(q, [running(), stopped(MB + 1)])
    assert message.startswith(f"quota reached: user alice: disk would be {3 * MB + 1} with "
                              f"this capture, limit {3 * MB} (quota_user_disk_bytes, "
                              "PODCAP_QUOTA_USER_DISK_BYTES)")
    q.check("alice", "a", "n1", SMALL, [stopped(2 * MB, owner="bob"), running(owner="bob")])


def test_user_buffer_counts_running_captures_only() -> None:
    q = only(user_buffer_bytes=2 * 256 * KIB)
    q.check("alice", "a", "n1", SMALL, [running(), stopped(0), stopped(0)])
    assert refused(q, [running(), running(namespace="z")]).startswith(
        f"quota reached: user alice: kernel buffer would be {3 * 256 * KIB} with this "
        f"capture, limit {2 * 256 * KIB} (quota_user_buffer_bytes, ")


def test_namespace_captures_count_every_owner_of_the_namespace() -> None:
    q = only(namespace_captures=2)
    q.check("alice", "a", "n1", SMALL, [running(owner="bob"), running(namespace="b")])
    assert refused(q, [running(owner="bob"), running(owner="carol")]).startswith(
        "quota reached: namespace a: running captures would be 3 with this capture, limit 2 "
        "(quota_namespace_captures, PODCAP_QUOTA_NAMESPACE_CAPTURES)")


def test_namespace_disk_counts_another_users_ring() -> None:
    q = only(namespace_disk_bytes=2 * MB)
    q.check("alice", "a", "n1", SMALL, [running(owner="bob"), running(namespace="b")])
    assert refused(q, [running(owner="bob"), stopped(1, owner="carol")]).startswith(
        f"quota reached: namespace a: disk would be {2 * MB + 1} with this capture, limit "
        f"{2 * MB} (quota_namespace_disk_bytes, ")


def test_namespace_buffer_and_the_unnamed_namespace() -> None:
    q = only(namespace_buffer_bytes=256 * KIB)
    q.check("alice", "", "n1", SMALL, [running(namespace="a"), stopped(9, namespace="")])
    assert refused(q, [running(owner="bob", namespace="")], namespace="").startswith(
        f"quota reached: namespace (none): kernel buffer would be {2 * 256 * KIB} with this "
        f"capture, limit {256 * KIB} (quota_namespace_buffer_bytes, ")


def test_node_buffer_counts_every_running_capture_of_that_node() -> None:
    q = only(node_buffer_bytes=2 * 256 * KIB)
    q.check("alice", "a", "n1", SMALL, [running(owner="bob", namespace="b"),
                                         running(agent="n2"), stopped(9)])
    assert refused(q, [running(owner="bob", namespace="b"), running(owner="eve")]) == (
        f"quota reached: this node: kernel buffer of running captures would be {3 * 256 * KIB} "
        f"with this capture, limit {2 * 256 * KIB} (quota_node_buffer_bytes, "
        "PODCAP_QUOTA_NODE_BUFFER_BYTES); stop or delete a capture, or ask for less "
        "(buffer_kib, file_size_mb, file_number)")


def test_the_new_capture_itself_counts() -> None:
    big = CaptureSpec(file_number=3, file_size_mb=2, buffer_kib=1024)
    only(user_disk_bytes=6 * MB, user_buffer_bytes=KIB * KIB, user_captures=1).check(
        "alice", "a", "n1", big, [])
    assert "disk would be 6000001" in refused(only(user_disk_bytes=6 * MB), [stopped(1)],
                                              spec=big)
    assert "kernel buffer would be 1310720" in refused(only(user_buffer_bytes=KIB * KIB),
                                                       [running()], spec=big)
    assert "running captures would be 2 with" in refused(only(user_captures=1),
                                                          [running()], spec=big)


def test_the_first_limit_passed_is_the_one_named() -> None:
    q = only(user_captures=1, namespace_captures=1, user_disk_bytes=1)
    assert "user alice: running captures" in refused(q, [running()])
    assert "user alice: disk" in refused(only(user_disk_bytes=1, namespace_disk_bytes=1), [])


def test_zero_turns_every_limit_off() -> None:
    only().check("alice", "a", "n1", SMALL, [running()] * 100 + [stopped(10**15)])


def test_node_budget_is_a_quarter_of_memtotal() -> None:
    kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal:"))
    assert default_node_buffer() == kib * 1024 // 4


@pytest.mark.parametrize("content", ["", "MemFree: 10 kB\n", "MemTotal: lots kB\n",
                                     "MemTotal:\n"])


def test_node_budget_is_a_gib_when_meminfo_says_nothing_usable(
        content: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "meminfo"
    fake.write_text(content)
    real_open = builtins.open
    monkeypatch.setattr(quotas_module, "open",
                        lambda path, *a, **k: real_open(fake if path == "/proc/meminfo"
                                                        else path, *a, **k),
                        raising=False)
    assert default_node_buffer() == 1024**3


def test_node_budget_reads_the_memtotal_line(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "meminfo"
    fake.write_text("MemFree: 4 kB\nMemTotal: 1000 kB\nMemAvailable: 8 kB\n")
    real_open = builtins.open
    monkeypatch.setattr(quotas_module, "open",
                        lambda path, *a, **k: real_open(fake if path == "/proc/meminfo"
                                                        else path, *a, **k),
                        raising=False)
    assert default_node_buffer() == 256_000
    assert type(default_node_buffer()) is int  # it is shown and compared as bytes


def test_another_users_ring_fills_the_namespace() -> None:
    """The namespace disk quota sums every owner's captures in the namespace, not the caller's
    own: otherwise each user of a team could fill the team's disk share once more."""
    quotas = Quotas(**{**OFF, "namespace_disk_bytes": 6_000_000})
    theirs = Held("alice", "team", "a1", CaptureSpec(file_size_mb=5, file_number=1),
                  "running", 0)
    mine = CaptureSpec(file_size_mb=2, file_number=1)
    with pytest.raises(ResourceExhausted, match="namespace team: disk.*quota_namespace_disk"):
        quotas.check("bob", "team", "a1", mine, [theirs])  # 5 MB ring + 2 MB > 6 MB
    quotas.check("bob", "elsewhere", "a1", mine, [theirs])  # another namespace: fits
