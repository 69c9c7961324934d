"""Where an agent's controllers are (transport/grpc/uplinks.py): a list, a name resolving to
several replicas, one family per name, and a failed look-up that changes nothing."""

from __future__ import annotations

import threading
import time

from podcap.transport.grpc.uplinks import resolve_name, targets
from tests.support import wait_for


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


class FakeUplink:
    """Stands in for a session: records that it ran and was stopped (no network here)."""

    made: list[FakeUplink] = []

    def __init__(self, transport: object, address: str, identity: object,
                 feed: object = None) -> None:
        self.address = address
        self.stopped = threading.Event()
        FakeUplink.made.append(self)

    def run(self) -> None:
        self.stopped.wait(10)

    def stop(self) -> None:
        self.stopped.set()


def test_a_replica_that_appears_gets_a_session_and_one_that_goes_loses_it(monkeypatch) -> None:
    from podcap.transport.grpc import uplinks

    monkeypatch.setattr(uplinks, "Uplink", FakeUplink)
    FakeUplink.made = []
    answers = {"ctl": ["10.0.0.1"]}
    ups = uplinks.Uplinks(object(), "ctl:10444", object(),  # type: ignore[arg-type]
                          resolve=lambda host: answers.get(host, []), every_s=0.05)
    runner = threading.Thread(target=ups.run)
    runner.start()
    try:
        wait_for(lambda: set(ups.uplinks) == {"10.0.0.1:10444"}, timeout=5)
        answers["ctl"] = ["10.0.0.1", "10.0.0.2"]  # a second replica's pod is Ready
        wait_for(lambda: set(ups.uplinks) == {"10.0.0.1:10444", "10.0.0.2:10444"}, timeout=5)
        answers["ctl"] = ["10.0.0.2"]  # the first is gone
        wait_for(lambda: set(ups.uplinks) == {"10.0.0.2:10444"}, timeout=5)
        assert FakeUplink.made[0].stopped.is_set()
        answers.clear()  # a failed look-up changes nothing
        time.sleep(0.3)
        assert set(ups.uplinks) == {"10.0.0.2:10444"}
    finally:
        ups.stop()
        runner.join(5)
    assert all(u.stopped.is_set() for u in FakeUplink.made)
