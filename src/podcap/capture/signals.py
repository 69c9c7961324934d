"""The signals podcap sends a running tcpdump: counters (SIGUSR1), a flush (SIGUSR2), the drain
before a stop, and the stop itself (SIGINT to the group, SIGKILL after a grace).

Every signal tolerates a tcpdump that is already gone: it may end by itself at any moment.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from podcap import limits
from podcap.capture.tcpdump_log import parse_stats, size
from podcap.model import Stats


def request_stats(pid: int) -> None:
    """SIGUSR1: tcpdump prints its counters to stderr (our log) and keeps running."""
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        pass


def flush(pid: int) -> None:
    """SIGUSR2: Debian's tcpdump flushes its output file's stdio buffer (pcap_dump_flush) and
    keeps running. Only for a tcpdump past "listening on": the handler is set by then, and
    SIGUSR2's default action would end it.

    tcpdump calls fflush() inside the signal handler, which is not async-signal-safe: a signal
    that lands while tcpdump is inside fwrite() on the same FILE duplicates or loses buffer
    bytes, and the file's records no longer line up (measured: BENCHMARKS.md, figure 7c).
    Callers therefore flush only a tcpdump that is ``waiting_in_poll`` and whose file has
    stopped growing on its own (agent/following.py)."""
    try:
        os.kill(pid, signal.SIGUSR2)
    except ProcessLookupError:
        pass


def waiting_in_poll(pid: int) -> bool:
    """tcpdump sleeps in poll() waiting for the kernel's next packet block, outside any stdio
    call: a signal now runs its handler when poll returns, never inside fwrite(). The kernel
    function it sleeps in (``/proc/PID/wchan``) says so without ptrace, on any architecture."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    return wchan.startswith(_POLL_WAITS)


# Where a task blocked in poll(2), ppoll(2), select(2) or epoll_wait(2) sleeps.
_POLL_WAITS = ("poll_schedule_timeout", "do_sys_poll", "do_select", "core_sys_select",
               "ep_poll")


def fresh_stats(pid: int, log_path: Path, timeout: float = 0.2) -> Stats | None:
    """Counters printed in answer to a SIGUSR1 sent now (not an older line)."""
    offset = size(log_path)
    request_stats(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if size(log_path) > offset and (stats := parse_stats(log_path, offset)):
            return stats
        time.sleep(0.005)
    return None


def drain(pid: int, log_path: Path, max_wait: float = limits.STOP_DRAIN_MAX_S) -> None:
    """Wait until tcpdump has taken every packet the kernel had given it when called.

    With TPACKET_V3 the kernel hands packets over in blocks, retired when full or after
    tcpdump's 1 s timeout; SIGINT ends the loop without reading the block still open, so the
    last second before a stop would be lost. Waiting until captured + dropped reaches what was
    received at the stop keeps every packet from before it.
    """
    start = fresh_stats(pid, log_path)
    if start is None:
        return
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        now = fresh_stats(pid, log_path)
        if now is None or now.captured + now.dropped >= start.received:
            return
        time.sleep(0.02)


def interrupt(pid: int) -> None:
    """SIGINT to the whole group: tcpdump flushes, prints final statistics and exits."""
    try:
        os.killpg(pid, signal.SIGINT)
    except ProcessLookupError:
        pass


def terminate(pid: int, grace: float = limits.STOP_GRACE_S,
              alive: Callable[[], bool] | None = None) -> bool:
    """SIGINT, then SIGKILL after ``grace`` seconds. Returns True when SIGINT sufficed."""
    interrupt(pid)
    deadline = time.monotonic() + grace
    is_alive = alive or (lambda: _exists(pid))
    while time.monotonic() < deadline:
        if not is_alive():
            return True
        time.sleep(0.02)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    return False


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
