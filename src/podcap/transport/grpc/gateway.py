"""The controller's gRPC listeners for agents: Join and Session (a download's bytes come on
the data port instead: ``transport/data/``).

Two ports, one service. The agent port demands a client certificate from the cluster CA
(mutual TLS, no plaintext mode); the join port cannot (a joining agent has no certificate yet)
and presents the CA certificate itself, so an agent pins it by the fingerprint in its join
token before it trusts anything. Every call but Join takes the agent id from the verified peer
certificate and checks it against the registry: never from a message.

Session is served on an event loop (gateway_session.py), Join on threads, both by one gRPC
asyncio server (gateway_server.py).

The gateway is the controller's gRPC edge but imports nothing of the controller: it is given
what it needs (``gateway_needs.py``: ``controller/agents.py``, ``controller/join_tokens.py`` and
``controller/audit.py`` provide it), so imports point down.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import Counter
from typing import NoReturn

import grpc

from podcap import limits
from podcap.errors import PodcapError, ResourceExhausted
from podcap.pki.ca import ClusterCA
from podcap.pki.names import fingerprint
from podcap.transport.grpc import checks
from podcap.transport.grpc.agent_proto import agent_pb2 as pb
from podcap.transport.grpc.agent_proto import agent_pb2_grpc as pb_grpc
from podcap.transport.grpc.errors import abort
from podcap.transport.grpc.gateway_needs import AuditLog, Members, Tokens
from podcap.transport.grpc.gateway_session import SessionServing
from podcap.transport.grpc.join_gate import JoinGate, peer_address

log = logging.getLogger("podcap.controller.gateway")


class Gateway(SessionServing, pb_grpc.AgentGatewayServicer):
    def __init__(self, registry: Members, tokens: Tokens, ca: ClusterCA,
                 audit: AuditLog) -> None:
        self.registry = registry
        self.rejects = registry.rejects
        self.tokens = tokens
        self.ca = ca
        self.audit = audit
        self.joins = JoinGate()
        self._streams: Counter[tuple[str, str]] = Counter()
        self._streams_lock = threading.Lock()

    # ---- Join (join port) -------------------------------------------------------------

    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:
        if not self.joins.admit(peer_address(context.peer())):
            self._join_refused(context, request.node, ResourceExhausted(
                f"too many join attempts from this address; at most {limits.JOIN_RATE_PER_S:g} "
                "a second (limits.JOIN_RATE_PER_S)"), "rate_limited")
        try:
            node = checks.node_name(request.node.strip())
            agent_id = secrets.token_hex(8)
            cert = self.ca.sign_agent(request.csr_pem, agent_id, node)  # a bad CSR spends no use
            self.registry.name_free(node)  # nor does a name in use
            self.tokens.redeem(request.token)
            self.registry.joined(agent_id, node, fingerprint(cert))
        except PodcapError as exc:
            self._join_refused(context, request.node, exc, type(exc).__name__)
        self.audit.record("agent.join", source=context.peer(),
                          detail=f"agent {agent_id} on node {node}")
        return pb.JoinReply(agent_id=agent_id, cert_pem=cert, ca_pem=self.ca.cert_pem)

    def _join_refused(self, context: grpc.ServicerContext, node: str, exc: PodcapError,
                      why: str) -> NoReturn:
        """Counted always; audited as every try that proves nobody is, at the audit's bounded
        rate per address (a failed login's rule: controller/audit.py); logged likewise."""
        self.rejects.join(why)
        if self.audit.unauthenticated_failure("agent.join", "", peer_address(context.peer()),
                                              f"node {node[:253]!r}: {exc.message}"):
            log.warning("join refused (peer %s): %s", context.peer(), exc.message)
        abort(context, exc)
        raise AssertionError("unreachable: abort raises")

