"""Quota admission of capture starts (quotas.py holds the rules).

Starts are checked one at a time against every capture held now plus the starts already past
the check but not yet listed by their agent, so parallel starts cannot overshoot a quota.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from podcap.controller.quotas import Held, Quotas
from podcap.model import CaptureSpec, Status


class Admission:
    def __init__(self, quotas: Quotas) -> None:
        self.quotas = quotas
        self._lock = threading.Lock()
        self._starting: dict[int, Held] = {}  # starts past the quota check, not yet listed
        self._tickets = itertools.count()

    @contextmanager
    def admit(self, owner: str, namespace: str, agent_id: str, spec: CaptureSpec,
              held: Callable[[], list[Held]]) -> Iterator[None]:
        """Refuse (``ResourceExhausted``) a start over a quota; else count it as held until
        the block ends (the agent started it, or failed to)."""
        with self._lock:  # no two starts are checked against the same room
            self.quotas.check(owner, namespace, agent_id, spec,
                              [*held(), *self._starting.values()])
            ticket = next(self._tickets)
            self._starting[ticket] = Held(owner, namespace, agent_id, spec, Status.RUNNING, 0)
        try:
            yield
        finally:
            with self._lock:
                del self._starting[ticket]
