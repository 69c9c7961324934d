"""What the gateway is given by the controller, as Protocols: the gateway is the controller's
gRPC edge but sits below it (``transport/``), so it names what it needs instead of importing
the controller's classes (``AgentRegistry``, ``JoinTokens``, ``Audit`` satisfy these).
"""

from __future__ import annotations

from typing import Protocol

from podcap.transport.base import AgentHello
from podcap.transport.grpc.remote import RemoteAgent
from podcap.transport.grpc.session import AgentSession
from podcap.transport.rejects import Rejects


class Members(Protocol):
    """Who may join and connect: the controller's agent registry."""

    rejects: Rejects

    def name_free(self, node: str) -> None: ...

    def joined(self, agent_id: str, node: str, fingerprint: str) -> None: ...

    def attach(self, agent_id: str, fingerprint: str, cert_node: str, hello: AgentHello,
               session: AgentSession) -> RemoteAgent: ...


class Tokens(Protocol):
    def redeem(self, token: str) -> None:
        """Spends one use of a join token, or raises why it cannot."""
        ...


class AuditLog(Protocol):
    def record(self, event: str, *, source: str = "", ok: bool = True,
               detail: str = "") -> None: ...

    def unauthenticated_failure(self, event: str, username: str, source: str,
                                detail: str) -> bool: ...
