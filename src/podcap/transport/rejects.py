"""What the controller refused from its agents, counted for Prometheus and logged sparingly.

A compromised node can send an invalid message a thousand times a second; each one is dropped
and counted here (``podcap_agent_messages_dropped_total``, ``podcap_agent_limits_hit_total``,
``podcap_agent_streams_refused_total``, ``podcap_joins_refused_total`` in metrics.py), but
logged at most once per ``limits.AGENT_REJECT_LOG_S`` per agent and reason, with the number
left unlogged, so a lying node can flood neither the controller nor its log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from podcap import limits

log = logging.getLogger("podcap.controller.agents")

# Why a message was dropped: a fixed set, so metric labels stay bounded.
INVALID = "invalid"  # a field broke a rule (transport/checks.py)
NOT_ITS_CAPTURE = "not_its_capture"  # a capture the controller placed on another agent
# a workload id another node reported first: listed under its node, never what the id resolves to
DUPLICATE_WORKLOAD = "duplicate_workload"
# Caps (limits/cluster.py): what one agent may report or hold open.
WORKLOADS = "workloads"
CAPTURES = "captures"
SESSIONS = "sessions"
UPLOADS = "uploads"
NO_FIRST_MESSAGE = "no_first_message"  # no Hello / download header in time
# The data port (transport/data/listener.py): no TLS with a cluster agent certificate; a header
# that is not podcap's; a ticket unknown, used, expired or issued to another agent.
UNAUTHENTICATED = "unauthenticated"
BAD_HEADER = "bad_header"
BAD_TICKET = "bad_ticket"
# Not a refusal, logged as sparingly: a view repaired by a snapshot (counted by transport/grpc/
# pushed.py as podcap_inventory_resyncs_total); a node that lies about its numbers asks often.
RESYNC = "resync"


class Rejects:
    """Thread-safe counters by (agent id, node, reason), plus refused joins by reason."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.dropped: Counter[tuple[str, str, str]] = Counter()
        self.limits_hit: Counter[tuple[str, str, str]] = Counter()
        self.streams_refused: Counter[tuple[str, str]] = Counter()
        self.joins_refused: Counter[str] = Counter()
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}

    def drop(self, agent_id: str, node: str, why: str, detail: str, n: int = 1) -> None:
        """``n`` messages (or list items) of this agent dropped for ``why``."""
        with self._lock:
            self.dropped[(agent_id, node, why)] += n
        self._log(agent_id, why, f"node {node}: dropped {n} message(s) ({why}): {detail}", n)

    def limit(self, agent_id: str, node: str, what: str, detail: str) -> None:
        """A per-agent cap of limits/cluster.py was reached."""
        with self._lock:
            self.limits_hit[(agent_id, node, what)] += 1
        self._log(agent_id, what, f"node {node}: {detail}", 1)

    def stream(self, agent_id: str, why: str, detail: str) -> None:
        with self._lock:
            self.streams_refused[(agent_id, why)] += 1
        self._log(agent_id, why, f"agent {agent_id}: stream refused: {detail}", 1)

    def note(self, agent_id: str, why: str, message: str) -> None:
        """Logged as sparingly as a refusal, counted by the caller."""
        self._log(agent_id, why, message, 1)

    def join(self, why: str) -> None:
        with self._lock:
            self.joins_refused[why] += 1

    def snapshot(self) -> tuple[dict[tuple[str, str, str], int], dict[tuple[str, str, str], int],
                                dict[tuple[str, str], int], dict[str, int]]:
        """Copies of (dropped, limits_hit, streams_refused, joins_refused) for a scrape."""
        with self._lock:
            return (dict(self.dropped), dict(self.limits_hit), dict(self.streams_refused),
                    dict(self.joins_refused))

    def _log(self, agent_id: str, why: str, message: str, n: int) -> None:
        key = (agent_id, why)
        now = time.monotonic()
        with self._lock:
            last, quiet = self._logged.get(key, (-limits.AGENT_REJECT_LOG_S, 0))
            if now - last < limits.AGENT_REJECT_LOG_S:
                self._logged[key] = (last, quiet + n)
                return
            self._logged[key] = (now, 0)
        suffix = f" (and {quiet} more not logged in the last {limits.AGENT_REJECT_LOG_S:g} s)" \
            if quiet else ""
        log.warning("%s%s", message, suffix)
