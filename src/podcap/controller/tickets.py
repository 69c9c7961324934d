"""One-use download tickets, so a browser can save a pcap by following a plain link.

A link cannot carry the X-Auth-Token header, and fetching into a Blob holds the whole file in
the browser's memory. A ticket is bound to one session (the token that asked for it: a logout,
or a change to the user, ends its tickets too) and one capture, lives 60 s and works once. It
is kept in the database as its SHA-256 (``download_tickets``), so a ticket one controller
replica issued is redeemed by whichever replica the browser's request reaches, and spent by
one conditional ``DELETE``: of two replicas redeeming it at once, one wins. A try on another
capture does not use it up. The caller is who the session is *now* (its user row read again).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker

from podcap.controller.db import DownloadTicket
from podcap.controller.principal import Principal
from podcap.errors import Unauthenticated

TICKET_TTL_S = 60


class Tickets:
    def __init__(self, sessions: sessionmaker,
                 principal_of: Callable[[str, str], Principal | None]) -> None:
        """``principal_of(token_hash, source)``: who the issuing session is now, or None when
        it has ended."""
        self._sessions = sessions
        self._principal_of = principal_of

    def issue(self, who: Principal, capture_id: str) -> str:
        ticket = secrets.token_urlsafe(24)
        now = time.time()
        with self._sessions() as db, db.begin():
            db.execute(delete(DownloadTicket).where(DownloadTicket.expires < now))
            db.add(DownloadTicket(ticket_hash=_hash(ticket), token_hash=who.token_hash,
                                  subject=capture_id[:64], source=who.source[:64],
                                  expires=now + TICKET_TTL_S))
        return ticket

    def link(self, who: Principal, subject: str, url: str, name: str) -> dict[str, Any]:
        """The answer to a ``POST .../ticket``: ``url`` with a new ticket for ``subject`` as
        its last query parameter, the file name to save as, and how long the link works."""
        ticket = self.issue(who, subject)
        return {"url": f"{url}{'&' if '?' in url else '?'}ticket={ticket}", "name": name,
                "expires_in": TICKET_TTL_S}

    def redeem(self, ticket: str, capture_id: str) -> Principal:
        key = _hash(ticket)
        who: Principal | None = None
        with self._sessions() as db, db.begin():
            # Spent only when meant for this capture; the DELETE is the one use.
            spent = db.execute(delete(DownloadTicket).where(
                DownloadTicket.ticket_hash == key, DownloadTicket.subject == capture_id[:64]
            ).returning(DownloadTicket.token_hash, DownloadTicket.expires,
                        DownloadTicket.source)).first()
        if spent is not None and spent.expires >= time.time():
            who = self._principal_of(spent.token_hash, spent.source)  # audited as who asked
        if who is None:
            raise Unauthenticated("download ticket unknown, used or expired, or its session "
                                  "ended; ask for a new one")
        return who


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()
