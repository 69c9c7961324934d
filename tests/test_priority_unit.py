"""capture/priority.py without an agent: a priority that cannot be given never fails a start
and is said once, not at every start."""

from __future__ import annotations

import logging
import subprocess

import pytest

from podcap.capture import priority


def test_a_priority_that_cannot_be_given_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process
    priority._warned.clear()
    with caplog.at_level(logging.WARNING, logger="podcap.agent"):
        priority.apply(gone.pid, 7)
        priority.apply(gone.pid, 7)
    said = [r for r in caplog.records if "cannot give tcpdump nice 7" in r.getMessage()]
    assert len(said) == 1, caplog.text


def test_the_process_and_its_session_group_get_the_value() -> None:
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        priority.apply(child.pid, 11)
        stat = open(f"/proc/{child.pid}/stat").read()
        assert int(stat[stat.rindex(")") + 2:].split()[16]) == 11  # field 19: nice
        if open(priority.AUTOGROUP_ENABLED).read().strip() == "1":
            assert open(f"/proc/{child.pid}/autogroup").read().split()[-1] == "11"
    finally:
        child.kill()
        child.wait()
