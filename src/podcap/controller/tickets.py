"""One-use download tickets, so a browser can save a pcap by following a plain link.

A link cannot carry the X-Auth-Token header, and fetching into a Blob holds the whole file in
the browser's memory. A ticket is bound to one user and one capture, lives 60 s, works once,
and is kept only in this process's memory (as a hash).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

from podcap.controller.auth import Principal
from podcap.errors import Unauthenticated

TICKET_TTL_S = 60


class Tickets:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._issued: dict[str, tuple[Principal, str, float]] = {}

    def issue(self, who: Principal, capture_id: str) -> str:
        ticket = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._issued = {k: v for k, v in self._issued.items() if v[2] > now}
            self._issued[_hash(ticket)] = (who, capture_id, now + TICKET_TTL_S)
        return ticket

    def redeem(self, ticket: str, capture_id: str) -> Principal:
        with self._lock:
            entry = self._issued.pop(_hash(ticket), None)
        if entry is None or entry[1] != capture_id or entry[2] < time.monotonic():
            raise Unauthenticated("download ticket unknown, used or expired; ask for a new one")
        return entry[0]


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()
