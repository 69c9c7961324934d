"""Does a filter compile: ``tcpdump -d`` against a header-only pcap, remembered once it does.

The capture's own tcpdump compiles its filter anyway (issue 12); this is for the filter check
(``Agent.check_filter``), for starts that may delete old captures (``--reclaim oldest``: a typo
must never cost a capture), and for telling a bad filter from other failures after a start.
"""

from __future__ import annotations

import subprocess
import threading
from collections import OrderedDict
from pathlib import Path

from podcap import limits
from podcap.capture.tcpdump import TCPDUMP
from podcap.capture.tcpdump_log import message
from podcap.errors import InvalidArgument


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
        raise InvalidArgument(f"invalid filter: {message(done.stderr)}")
    COMPILED.add(expression)
