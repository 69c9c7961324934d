"""Who is asking, and what they may do: the one object every service call is given.

Roles: ``admin`` (everything, every namespace), ``operator`` (captures in its namespaces),
``reader`` (captures and counters, no packet data); the ``download`` right reads packet data
(an admin always has it). A user scoped to namespaces sees nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from podcap.errors import PermissionDenied

ROLES = ("admin", "operator", "reader")


@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    namespaces: frozenset[str] = frozenset()  # empty: every namespace
    download: bool = False
    token_hash: str = ""  # the session this principal came from ("" when none)
    source: str = ""  # the client's address, for the audit log

    @property
    def sees_every_namespace(self) -> bool:
        return not self.namespaces

    def can_see(self, namespace: str) -> bool:
        return self.sees_every_namespace or namespace in self.namespaces

    @property
    def may_download(self) -> bool:
        return self.role == "admin" or self.download

    def require_admin(self) -> None:
        if self.role != "admin":
            raise PermissionDenied(f"user {self.username} (role {self.role}) is not an admin",
                                   self.username)

    def require_write(self) -> None:
        if self.role not in ("admin", "operator"):
            raise PermissionDenied(f"user {self.username} (role {self.role}) may only read",
                                   self.username)

    def require_download(self) -> None:
        if not self.may_download:
            raise PermissionDenied(f"user {self.username} has no download right: packet data "
                                   "needs it (an admin grants it: podcap user set NAME "
                                   "--download)", self.username)
