"""Where an agent's controllers are (transport/grpc/uplinks.py): a list, a name resolving to
several replicas, one family per name, and a failed look-up that changes nothing."""

from __future__ import annotations

from podcap.transport.grpc.uplinks import resolve_name, targets


def test_a_list_and_names_become_one_target_per_replica() -> None:
    table = {"ctl.podcap": ["10.0.0.7", "10.0.0.8"], "one": ["10.0.0.9"]}
    resolve = lambda host: table.get(host, [])  # noqa: E731
    assert targets("ctl.podcap:10444", resolve) == ["10.0.0.7:10444", "10.0.0.8:10444"]
    assert targets("10.1.1.1:1,one:2, 10.1.1.1:1", resolve) == ["10.1.1.1:1", "10.0.0.9:2"]
    assert targets("[fd00::1]:10444", resolve) == ["[fd00::1]:10444"]
    assert targets("gone:10444", resolve) is None  # the caller keeps what it has


def test_localhost_is_one_controller_not_one_per_family() -> None:
    assert resolve_name("localhost") == ["127.0.0.1"]
    assert resolve_name("no-such-name.invalid") == []
