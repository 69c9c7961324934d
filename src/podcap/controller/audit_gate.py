"""How many audit rows one source of noise may write: a fixed-window counter per key (a user,
an address) with a cap on all keys together.

Why: every row is a database insert and a line in ``audit.jsonl``; rows that anyone can cause
(a blocked login costs the caller nothing) must not grow the log without bound. What is left
out is not lost silently: it is counted (for the ``podcap_audit_suppressed_total`` metric), and
the key's next admitted row says how many of its rows were left out.

Memory is bounded by ``overall``: a key is remembered only when one of its rows was admitted,
and left-out counts live for two windows at most.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Gate:
    def __init__(self, per_key: int, overall: int, window_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._per_key = per_key
        self._overall = overall
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._admitted: dict[str, int] = {}  # this window
        self._total = 0  # admitted this window, every key
        self._skipped: dict[str, int] = {}  # left out this window, per admitted key
        self._skipped_before: dict[str, int] = {}  # the window before, not yet reported
        self.left_out = 0  # ever, for the metric

    def admit(self, key: str) -> int | None:
        """None: leave this row out (it is counted). Otherwise write it, saying that this
        many earlier rows of ``key`` were left out."""
        with self._lock:
            now = self._clock()
            if now - self._started >= self._window_s:
                self._started = now
                self._admitted, self._total = {}, 0
                self._skipped_before, self._skipped = self._skipped, {}
            seen = self._admitted.get(key, 0)
            if seen >= self._per_key or self._total >= self._overall:
                self.left_out += 1
                if seen:  # known this window: say so in its next row
                    self._skipped[key] = self._skipped.get(key, 0) + 1
                return None
            self._admitted[key] = seen + 1
            self._total += 1
            return self._skipped_before.pop(key, 0) + self._skipped.pop(key, 0)
