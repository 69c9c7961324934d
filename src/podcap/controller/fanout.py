"""Ask every agent at once, each with a deadline (``limits.FANOUT_DEADLINE_S``).

One slow or dead agent never fails a list: the answer holds the others' data and names the
nodes that did not answer, and a bug or a lying agent fails its own node's part only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from podcap import limits
from podcap.controller.agents import AgentRegistry
from podcap.errors import PodcapError, Unavailable
from podcap.transport.base import AgentTransport

T = TypeVar("T")
log = logging.getLogger("podcap.captures")


@dataclass(frozen=True)
class Unreachable:
    agent_id: str
    node: str
    reason: str
    synced_at: float = 0.0  # when its view last changed: what a list shows of it is that old


@dataclass(frozen=True)
class Listing(Generic[T]):
    items: list[T]
    unreachable: list[Unreachable] = field(default_factory=list)


class FanOut:
    def __init__(self, agents: AgentRegistry, workers: int = 32) -> None:
        self._agents = agents
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="podcap-fanout")

    def ask(self, ask: Callable[[AgentTransport], T], only: str | None = None
            ) -> tuple[dict[str, T], list[Unreachable]]:
        """``ask`` every agent (or ``only`` that one); those that fail or miss the deadline
        are named, sorted by node."""
        transports = {aid: t for aid, t in self._agents.transports().items()
                      if only in (None, aid)}
        futures = {aid: self._pool.submit(ask, t) for aid, t in transports.items()}
        wait(futures.values(), timeout=limits.FANOUT_DEADLINE_S + 0.2)
        answers: dict[str, T] = {}
        unreachable: list[Unreachable] = []
        for aid, future in futures.items():
            node = transports[aid].info().node
            if not future.done():
                future.cancel()
                unreachable.append(Unreachable(aid, node, "no answer in time"))
                continue
            error = future.exception()
            if error is None:
                answers[aid] = future.result()
            elif isinstance(error, Unavailable):
                unreachable.append(Unreachable(aid, node, error.message))
            elif isinstance(error, PodcapError):
                unreachable.append(Unreachable(aid, node, f"error: {error.message}"))
            else:  # a bug or a lying agent: this node fails this request, nobody else's
                log.error("node %s: %s failed", node, type(error).__name__, exc_info=error)
                unreachable.append(Unreachable(aid, node,
                                               f"error: internal ({type(error).__name__})"))
        return answers, sorted(unreachable, key=lambda u: u.node)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
