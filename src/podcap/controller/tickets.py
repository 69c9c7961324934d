"""One-use download tickets, so a browser can save a pcap by following a plain link.

A link cannot carry the X-Auth-Token header, and fetching into a Blob holds the whole file in
the browser's memory. A ticket is bound to one session (the token that asked for it: a logout,
or a change to the user, ends its tickets too) and one capture, lives 60 s, works once, and is
kept only in this process's memory (as a hash). A try on another capture does not use it up.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from podcap.controller.principal import Principal
from podcap.errors import Unauthenticated

TICKET_TTL_S = 60


class Tickets:
    def __init__(self, session_alive: Callable[[str], bool]) -> None:
        """``session_alive(token_hash)``: whether the issuing session still exists."""
        self._alive = session_alive
        self._lock = threading.Lock()
        self._issued: dict[str, tuple[Principal, str, float]] = {}

    def issue(self, who: Principal, capture_id: str) -> str:
        ticket = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._issued = {k: v for k, v in self._issued.items() if v[2] > now}
            self._issued[_hash(ticket)] = (who, capture_id, now + TICKET_TTL_S)
        return ticket

    def link(self, who: Principal, subject: str, url: str, name: str) -> dict[str, Any]:
        """The answer to a ``POST .../ticket``: ``url`` with a new ticket for ``subject`` as
        its last query parameter, the file name to save as, and how long the link works."""
        ticket = self.issue(who, subject)
        return {"url": f"{url}{'&' if '?' in url else '?'}ticket={ticket}", "name": name,
                "expires_in": TICKET_TTL_S}

    def redeem(self, ticket: str, capture_id: str) -> Principal:
        key = _hash(ticket)
        with self._lock:
            entry = self._issued.get(key)
            if entry is None or entry[1] != capture_id:
                entry = None  # unknown, or meant for another capture: left as it was
            elif entry[2] < time.monotonic() or not self._alive(entry[0].token_hash):
                del self._issued[key]
                entry = None
            else:
                del self._issued[key]
        if entry is None:
            raise Unauthenticated("download ticket unknown, used or expired, or its session "
                                  "ended; ask for a new one")
        return entry[0]


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()
