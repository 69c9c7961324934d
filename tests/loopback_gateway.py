"""A controller's agent gateway on loopback, with mutual TLS, and agent identities it admits:
what a join gives an agent, without the join port (tests/cluster joins for real). Its data
port runs on an event loop of its own thread, where a controller runs it on the HTTP server's."""

from __future__ import annotations

import asyncio
import secrets
import threading
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
from podcap.transport.base import AgentTransport
from podcap.transport.data.listener import DataListener
from podcap.transport.grpc.gateway import Gateway
from podcap.transport.grpc.gateway_server import GatewayServer
from podcap.transport.grpc.join import Identity
from podcap.transport.grpc.remote import RemoteAgent
from podcap.transport.grpc.uplink import Uplink
from tests.support import wait_for


@dataclass
class LoopbackGateway:
    sessions: sessionmaker
    ca: ClusterCA
    registry: AgentRegistry
    server: GatewayServer
    address: str
    data: DataListener
    loop: asyncio.AbstractEventLoop

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
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="data-loop", daemon=True)
    thread.start()
    data = DataListener(registry.uploads, registry.rejects, ca, "127.0.0.1:0")

    async def start() -> None:
        data.start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(5)
    try:
        yield LoopbackGateway(sessions, ca, registry, server, f"127.0.0.1:{server.agent_port}",
                              data, loop)
    finally:
        server.stop(0)

        async def stop() -> None:
            data.close()
            await asyncio.sleep(0.05)  # the cancelled tasks end

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@contextmanager
def connected(gw: LoopbackGateway, identity: Identity, agent: AgentTransport,
              **uplink_options: object) -> Iterator[tuple[RemoteAgent, Uplink]]:
    """``agent`` dialled in through a real ``Uplink``, as a node's agent does: the controller's
    ``RemoteAgent`` for it once connected, and the uplink."""
    uplink = Uplink(agent, gw.address, identity, **uplink_options)
    runner = threading.Thread(target=uplink.run, daemon=True)
    runner.start()
    try:
        remote = gw.registry.get(identity.agent_id)
        assert isinstance(remote, RemoteAgent)
        wait_for(lambda: remote.info().connected, timeout=10, what="the agent connected")
        yield remote, uplink
    finally:
        uplink.stop()
        runner.join(10)
