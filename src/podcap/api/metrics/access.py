"""Who may read the metrics: the metrics token or an admin's session; a separate listener off
loopback needs the token."""

from __future__ import annotations

import hmac

from podcap import limits
from podcap.errors import InvalidArgument
from podcap.tls import is_loopback


class MetricsAccess:
    """``/metrics`` on the API listener: the metrics token (``Authorization: Bearer``) or an
    admin's session token. Captures' ids and workload names of every namespace are in it, so
    a reader or a namespaced operator may not read it."""

    def __init__(self, token: str | None) -> None:
        self.token = token or None

    def token_matches(self, authorization: str | None) -> bool:
        if self.token is None or not authorization:
            return False
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                  self.token.encode())


def check_access(token: str | None, listen: str | None) -> None:
    """Refuse, before anything starts, a guessable token and an open listener without one."""
    if token is not None and len(token) < limits.METRICS_TOKEN_MIN_CHARS:
        raise InvalidArgument(f"--metrics-token must be at least {limits.METRICS_TOKEN_MIN_CHARS}"
                              " characters (it is a password for Prometheus); e.g. "
                              "`openssl rand -hex 24`")
    if listen is not None:
        host, _ = split_listen(listen)
        if token is None and not is_loopback(host):
            raise InvalidArgument(f"--metrics-listen {listen} is not a loopback address: set "
                                  "--metrics-token too, or listen on 127.0.0.1")



def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdecimal() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"--metrics-listen must be HOST:PORT, e.g. 127.0.0.1:9464, got "
                              f"{listen[:80]!r}")
    return host.strip("[]") or "127.0.0.1", int(port)

