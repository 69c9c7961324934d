"""The join port's guard: attempts per source address.

The join port answers anyone who can reach it (a joining agent has no certificate yet). 300 bad
joins in 0.8 s once wrote 300 audit rows; now each address gets a token bucket
(``limits.JOIN_RATE_PER_S``, burst ``limits.JOIN_BURST``) checked before any work, every refusal
is counted (``podcap_joins_refused_total``) and audited like a failed login, at the audit's
bounded rate per address (controller/audit.py).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from podcap import limits

_ADDRESSES_MAX = 4096  # buckets kept; the least recently seen address is forgotten first


class JoinGate:
    def __init__(self, rate_per_s: float = limits.JOIN_RATE_PER_S,
                 burst: int = limits.JOIN_BURST) -> None:
        self._rate, self._burst = rate_per_s, burst
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, address: str) -> bool:
        """One attempt from ``address`` (a peer's IP): False when over its rate."""
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.pop(address, (float(self._burst), now))
            tokens = min(float(self._burst), tokens + (now - then) * self._rate)
            admitted = tokens >= 1.0
            self._buckets[address] = (tokens - 1.0 if admitted else tokens, now)
            while len(self._buckets) > _ADDRESSES_MAX:
                self._buckets.popitem(last=False)
        return admitted


def peer_address(peer: str) -> str:
    """The IP of a gRPC peer string (``ipv4:10.0.0.1:5000``, ``ipv6:[::1]:5000``)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    return peer
