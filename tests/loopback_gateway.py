"""A controller's agent gateway on loopback, with mutual TLS, and agent identities it admits:
what a join gives an agent, without the join port (tests/cluster joins for real)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from podcap.controller.agents import AgentRegistry
from podcap.controller.audit import Audit
from podcap.controller.db import open_db
from podcap.controller.join_tokens import JoinTokens
from podcap.pki.ca import ClusterCA
from podcap.pki.csr import new_key_and_csr
from podcap.pki.names import fingerprint
from podcap.transport.grpc.gateway import Gateway
from podcap.transport.grpc.gateway_server import GatewayServer
from podcap.transport.grpc.join import Identity


@dataclass
class LoopbackGateway:
    sessions: sessionmaker
    ca: ClusterCA
    registry: AgentRegistry
    server: GatewayServer
    address: str

    def identity(self, node: str) -> Identity:
        """A new agent on ``node``, joined: its key, its certificate, the CA."""
        agent_id = secrets.token_hex(8)
        key, csr = new_key_and_csr(node)
        cert = self.ca.sign_agent(csr, agent_id, node)
        self.registry.joined(agent_id, node, fingerprint(cert))
        return Identity(agent_id, key, cert, self.ca.cert_pem)


@contextmanager
def loopback_gateway(tmp: Path) -> Iterator[LoopbackGateway]:
    sessions = open_db(None, tmp)
    ca = ClusterCA.load_or_create(tmp / "ca")
    registry = AgentRegistry(sessions)
    gateway = Gateway(registry, JoinTokens(sessions, ca.fingerprint), ca, Audit(sessions))
    server = GatewayServer(gateway, "127.0.0.1:0", None)
    try:
        yield LoopbackGateway(sessions, ca, registry, server, f"127.0.0.1:{server.agent_port}")
    finally:
        server.stop(0)
