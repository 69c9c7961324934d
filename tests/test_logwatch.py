"""How a start waits for tcpdump's banner (capture/logwatch.py): woken by inotify at each write
of the log, looking at least every ``START_POLL_S`` anyway, polling without inotify, and never
waiting for the kernel when a watch is closed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from podcap import limits
from podcap.capture import command, logwatch, runner, signals
from podcap.model import CaptureSpec


def test_log_watch_wakes_at_a_write_and_only_then(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A start waits for tcpdump's banner by inotify (capture/logwatch.py): a write wakes it at
    once, a quiet log lets it sleep up to ``START_POLL_S``, and one write wakes it once."""
    monkeypatch.setattr(limits, "START_POLL_S", 0.5)
    log = tmp_path / "tcpdump.log"
    log.write_bytes(b"")
    with logwatch.LogWatch(log) as changes, open(log, "ab") as writer:
        assert changes.watching
        writer.write(b"listening on any\n")
        writer.flush()
        t0 = time.monotonic()
        changes.wait()
        assert time.monotonic() - t0 < 0.3  # woken by the write, not by the time limit
        t0 = time.monotonic()
        changes.wait()
        assert time.monotonic() - t0 >= 0.45  # nothing new: it slept (the event was read)


def test_without_inotify_a_start_polls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logwatch._libc, "inotify_init1", lambda flags: -1)
    files = tmp_path / "files"
    files.mkdir()
    log = tmp_path / "tcpdump.log"
    log.write_bytes(b"")  # a file that could be watched: only inotify is missing
    with logwatch.LogWatch(log) as changes:
        assert not changes.watching
    netns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        proc = runner.start(command.tcpdump_args(CaptureSpec(filter="udp port 7996"), files),
                            log, netns)
    finally:
        os.close(netns)
    try:
        runner.wait_listening(proc, log)
    finally:
        signals.terminate(proc.pid, grace=3, alive=lambda: proc.poll() is None)
        proc.wait(5)


def test_closing_a_log_watch_does_not_wait_for_the_kernel(tmp_path: Path) -> None:
    """Closing an inotify instance waits for an SRCU grace period (~16 ms here, as long as
    tcpdump's start): the watch is closed by another thread, so a start never waits for it."""
    log = tmp_path / "tcpdump.log"
    log.write_bytes(b"")
    took = []
    for _ in range(5):
        watch = logwatch.LogWatch(log)
        t0 = time.perf_counter()
        watch.close()
        took.append(time.perf_counter() - t0)
    assert sorted(took)[2] < 0.005, took
