"""What tcpdump's log says: its counters, and its last words when it ends.

tcpdump's stderr is the capture's ``tcpdump.log``. It outlives the agent, so the counters and
the reason a tcpdump ended can be read back after an agent restart, from the file alone.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from podcap.model import Reason, Stats

# Final statistics come one per line; SIGUSR1 statistics on one line, comma-separated.
_STATS = re.compile(
    rb"(\d+) packets? captured[,\n] ?(\d+) packets? received by filter[,\n] ?"
    rb"(?:\d+ packets? dropped by interface[,\n] ?)?(\d+) packets? dropped by kernel"
)
_NOISE = ("reading from file", "Warning: interface names", "listening on", "data link type")
_COUNTERS = re.compile(r"\d+ packets? (captured|received|dropped)")  # statistics, not errors
NO_MESSAGE = "tcpdump failed without a message"


def message(stderr: bytes) -> str:
    """tcpdump's own words, without its banner and counters (which are not errors)."""
    lines = [line.strip().removeprefix("tcpdump: ")
             for line in stderr.decode(errors="replace").splitlines()]
    useful = [line for line in lines
              if line and not line.startswith(_NOISE) and not _COUNTERS.match(line)]
    text = "; ".join(useful) or NO_MESSAGE
    return text.removeprefix("tcpdump: ")


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


def keep_short(log_path: Path, limit: int) -> None:
    """Empty a log longer than ``limit`` bytes but for its last counters. tcpdump appends to
    it (O_APPEND: capture/runner.py), so its next line lands at the new end. The caller makes
    sure no drain is reading counters from an offset meanwhile (agent/watcher.py)."""
    try:
        with open(log_path, "r+b") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size <= limit:
                return
            fh.seek(max(0, size - 4096))
            last = list(_STATS.finditer(fh.read()))
            fh.truncate(0)
        if last:
            with open(log_path, "ab") as fh:
                fh.write(last[-1].group(0) + b"\n")
    except OSError:
        return


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
    if returncode is None and text == NO_MESSAGE:  # adopted after a restart: no exit status
        return "tcpdump ended without a message (killed?)", True
    return f"error: {text}", True


def error_text(log_path: Path) -> str:
    try:
        return message(log_path.read_bytes()[-4096:])
    except OSError:
        return "tcpdump log is missing"


def size(path: Path) -> int:
    """The log's length: where counters asked for now will start."""
    try:
        return path.stat().st_size
    except OSError:
        return 0
