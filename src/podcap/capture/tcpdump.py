"""tcpdump as a supervised process: argv, filter compilation, start, statistics, stop.

No shell anywhere: tcpdump gets an argv list and the user's filter is one argument after
``--``, compiled by tcpdump itself before any capture starts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from podcap import limits
from podcap.errors import CaptureFailed, InvalidArgument
from podcap.model import CaptureSpec, Reason, Stats
from podcap.pcap.format import LINKTYPE_LINUX_SLL2, global_header

TCPDUMP = "/usr/bin/tcpdump"
NSENTER = "/usr/bin/nsenter"
RING_PREFIX = "capture.pcap"  # tcpdump appends the ring index: capture.pcap0, capture.pcap1...

# Final statistics come one per line; SIGUSR1 statistics on one line, comma-separated.
_STATS = re.compile(
    rb"(\d+) packets? captured[,\n] ?(\d+) packets? received by filter[,\n] ?"
    rb"(?:\d+ packets? dropped by interface[,\n] ?)?(\d+) packets? dropped by kernel"
)
_NOISE = ("reading from file", "Warning: interface names", "listening on", "data link type")
_COUNTERS = re.compile(r"\d+ packets? (captured|received|dropped)")  # statistics, not errors
_NO_MESSAGE = "tcpdump failed without a message"


def capture_argv(netns_fd: int, spec: CaptureSpec, files_dir: Path) -> list[str]:
    """nsenter into the namespace held open by ``netns_fd`` (inherited by the child), then exec
    tcpdump. Holding the fd, not a /proc/<pid> path, means a pid reused between our check and
    the exec can never send tcpdump into another workload's namespace."""
    return [NSENTER, f"--net=/proc/self/fd/{netns_fd}", "--", *tcpdump_args(spec, files_dir)]


def tcpdump_args(spec: CaptureSpec, files_dir: Path) -> list[str]:
    """No ``-U``: a write(2) per packet costs tcpdump CPU exactly when it is short of it
    (BENCHMARKS.md: drops in 6 of 19 saturated runs with it, 1 of 19 without). Files lag by a
    stdio buffer at most; downloads of a running capture cut at whole records anyway, and a
    stop flushes everything."""
    argv = [TCPDUMP, "-i", "any", "-n", "-Z", "root",
            "-B", str(spec.buffer_kib),
            "-C", str(spec.file_size_mb), "-W", str(spec.file_number),
            "-w", str(files_dir / RING_PREFIX)]
    if spec.snaplen:
        argv[1:1] = ["-s", str(spec.snaplen)]
    if spec.filter.strip():
        argv += ["--", spec.filter]
    return argv


def write_empty_pcap(path: Path, linktype: int = LINKTYPE_LINUX_SLL2) -> Path:
    """A header-only pcap: lets ``tcpdump -d -r`` compile filters for the capture link type
    without opening any interface."""
    if not path.exists():
        path.write_bytes(global_header(linktype))
    return path


class _Compiled:
    """Expressions that compiled, most recent last (bounded). Only successes are kept: a
    capture's own tcpdump compiles its filter again anyway, so a stale entry can never start a
    bad filter; it only spares a ``tcpdump -d`` for a filter seen before."""

    def __init__(self, size: int = limits.FILTER_CACHE_SIZE) -> None:
        self._size = size
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, expression: object) -> bool:
        with self._lock:
            if expression not in self._seen:
                return False
            self._seen.move_to_end(str(expression))
            return True

    def add(self, expression: str) -> None:
        with self._lock:
            self._seen[expression] = None
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)


COMPILED = _Compiled()


def compile_filter(expression: str, empty_pcap: Path) -> None:
    """Raise ``InvalidArgument`` with tcpdump's own message when the filter does not compile."""
    if not expression.strip() or expression in COMPILED:
        return
    try:
        done = subprocess.run(
            [TCPDUMP, "-d", "-r", str(empty_pcap), "--", expression],
            capture_output=True, timeout=10, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise InvalidArgument("filter took more than 10 s to compile; simplify it") from exc
    if done.returncode != 0:
        raise InvalidArgument(f"invalid filter: {_tcpdump_message(done.stderr)}")
    COMPILED.add(expression)


def _tcpdump_message(stderr: bytes) -> str:
    lines = [line.strip().removeprefix("tcpdump: ")
             for line in stderr.decode(errors="replace").splitlines()]
    useful = [line for line in lines
              if line and not line.startswith(_NOISE) and not _COUNTERS.match(line)]
    text = "; ".join(useful) or _NO_MESSAGE
    return text.removeprefix("tcpdump: ")


def start(argv: list[str], log_path: Path, netns_fd: int) -> subprocess.Popen[bytes]:
    """Spawn tcpdump in its own session (so its group can be signalled as one) with stderr in
    ``log_path``: the log outlives the agent, so statistics survive an agent restart."""
    with open(log_path, "ab") as log:
        try:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True, pass_fds=(netns_fd,), close_fds=True,
            )
        except OSError as exc:
            raise CaptureFailed(f"cannot run tcpdump: {exc}") from exc


def wait_listening(proc: subprocess.Popen[bytes], log_path: Path,
                   timeout: float = limits.START_TIMEOUT_S, expression: str = "",
                   empty_pcap: Path | None = None) -> None:
    """Return once tcpdump says "listening on"; raise when it exits first or stays silent past
    ``timeout``.

    The capture's own tcpdump is the filter's only compiler on the start path: it compiles the
    filter before it opens any file and exits with the compiler's message when it fails. Only
    then, off the fast path, ``tcpdump -d`` tells a bad filter (``InvalidArgument``, the same
    message ``check_filter`` gives) from any other failure (``CaptureFailed``)."""
    deadline = time.monotonic() + timeout
    with open(log_path, "rb") as log:  # one open file: each try is a read of the new bytes
        text = b""
        while True:
            text += log.read()
            if b"listening on" in text:
                return
            if proc.poll() is not None:
                text += log.read()
                message = _tcpdump_message(text)
                if expression.strip() and empty_pcap is not None:
                    compile_filter(expression, empty_pcap)  # raises InvalidArgument if bad
                raise CaptureFailed(f"tcpdump failed to start: {message}")
            if time.monotonic() > deadline:
                terminate(proc.pid, grace=0.5)
                proc.poll()
                raise CaptureFailed(f"tcpdump did not start listening within {timeout:.0f} s")
            time.sleep(limits.START_POLL_S)


def exit_reason(returncode: int | None, log_path: Path) -> tuple[str, bool]:
    """Why a tcpdump ended by itself, and whether that is a failure: a full file system
    ("disk full", not a failure: the files hold everything up to it), a signal named by number
    and name (SIGKILL from an OOM killer or a person), or tcpdump's own last words."""
    text = error_text(log_path)
    if "No space left on device" in text:
        return Reason.DISK_FULL, False
    if returncode == 0:
        return "tcpdump exited", False
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"tcpdump killed by signal {-returncode} ({name})", True
    if returncode is None and text == _NO_MESSAGE:  # adopted after a restart: no exit status
        return "tcpdump ended without a message (killed?)", True
    return f"error: {text}", True


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


def parse_stats(log_path: Path, offset: int = 0) -> Stats | None:
    """The last counters tcpdump printed (after ``offset``), or None when there are none."""
    try:
        with open(log_path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(offset, size - 4096))
            tail = fh.read()
    except OSError:
        return None
    found = _STATS.findall(tail)
    if not found:
        return None
    captured, received, dropped = (int(x) for x in found[-1])
    return Stats(captured=captured, received=received, dropped=dropped)


def fresh_stats(pid: int, log_path: Path, timeout: float = 0.2) -> Stats | None:
    """Counters printed in answer to a SIGUSR1 sent now (not an older line)."""
    offset = _size(log_path)
    request_stats(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _size(log_path) > offset and (stats := parse_stats(log_path, offset)):
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


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def error_text(log_path: Path) -> str:
    try:
        return _tcpdump_message(log_path.read_bytes()[-4096:])
    except OSError:
        return "tcpdump log is missing"


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
