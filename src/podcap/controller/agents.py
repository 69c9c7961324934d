"""Every agent the controller knows: the in-process one (``podcap serve``) and those that
joined over the network, connected or not.

Agents come and go while the controller runs, so this is a registry, not a list fixed at start:
a join adds one, a session attaches or detaches it, a revocation removes it and closes its
stream at once. The database keeps who joined (id, node, certificate fingerprint, revoked) so a
restarted controller knows its agents before they reconnect. Several replicas share that
table: each looks at it every ``AGENT_RECORDS_REFRESH_S``, so an agent joined through another
replica is listed here too, and one revoked there has its session here closed.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.orm import sessionmaker

from podcap import limits
from podcap.controller.db import AgentRecord
from podcap.errors import FailedPrecondition, NotFound, PermissionDenied, Unauthenticated
from podcap.model import AgentInfo
from podcap.transport.base import AgentHello, AgentTransport
from podcap.transport.data.incoming import Uploads
from podcap.transport.grpc.remote import RemoteAgent
from podcap.transport.grpc.session import AgentSession
from podcap.transport.rejects import Rejects

log = logging.getLogger("podcap.controller.agents")


class AgentRegistry:
    def __init__(self, sessions: sessionmaker, local: AgentTransport | None = None) -> None:
        self._db = sessions
        self._local = local
        self.uploads = Uploads()
        self.rejects = Rejects()  # what agents sent that was dropped (metrics.py)
        self._lock = threading.Lock()
        self._joining = threading.Lock()  # one name check and insert at a time
        self._remote: dict[str, RemoteAgent] = {}
        with self._db() as db:
            for row in db.query(AgentRecord).filter(AgentRecord.revoked.is_(False)):
                self._remote[row.id] = RemoteAgent(_info(row), self.uploads, self.rejects)
        self._closing = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="podcap-agents", daemon=True)
        self._monitor.start()

    # ---- what the service asks --------------------------------------------------------

    def transports(self) -> dict[str, AgentTransport]:
        found: dict[str, AgentTransport] = {}
        if self._local is not None:
            found[self._local.info().id] = self._local
        with self._lock:
            found.update(self._remote)
        return found

    def get(self, agent_id: str) -> AgentTransport:
        transport = self.transports().get(agent_id)
        if transport is None:
            raise NotFound(f"agent {agent_id} not found")
        return transport

    def infos(self) -> list[AgentInfo]:
        return sorted((t.info() for t in self.transports().values()),
                      key=lambda a: (a.node, a.id))

    # ---- membership -------------------------------------------------------------------

    def name_free(self, node: str) -> None:
        """A node name names one agent: a join with the name of an agent that is not revoked
        is refused, so a token cannot buy a certificate that passes for a live node."""
        with self._db() as db:
            holder = db.query(AgentRecord).filter(AgentRecord.node == node,
                                                  AgentRecord.revoked.is_(False)).first()
        if holder is not None:
            raise FailedPrecondition(f"node {node} is already joined as agent {holder.id}; "
                                     f"revoke it first (podcap agents rm {holder.id}) to join "
                                     "that node again")

    def joined(self, agent_id: str, node: str, fingerprint: str) -> None:
        now = time.time()
        with self._joining, self._db() as db, db.begin():
            self.name_free(node)
            db.add(AgentRecord(id=agent_id, node=node, version="", runtimes="", joined=now,
                               last_seen=0.0, cert_fingerprint=fingerprint, revoked=False))
        with self._lock:
            self._remote[agent_id] = RemoteAgent(
                AgentInfo(id=agent_id, node=node, runtimes=(), version="", started=0.0,
                          connected=False, joined=now), self.uploads, self.rejects)
        log.info("agent %s joined from node %s", agent_id, node)

    def revoke(self, agent_id: str) -> None:
        """Takes effect at once: the record says revoked, its open session is closed."""
        with self._db() as db, db.begin():
            row = db.get(AgentRecord, agent_id)
            if row is None or row.revoked:
                raise NotFound(f"agent {agent_id} not found")
            row.revoked = True
        with self._lock:
            remote = self._remote.pop(agent_id, None)
        if remote is not None and remote.session is not None:
            remote.detach(remote.session, "revoked")
        log.warning("agent %s revoked", agent_id)

    # ---- sessions (the gateway) -------------------------------------------------------

    def attach(self, agent_id: str, fingerprint: str, cert_node: str, hello: AgentHello,
               session: AgentSession) -> RemoteAgent:
        """The certificate was verified by TLS; here it must also be the one this agent was
        issued, and the agent not revoked. The node name is bound to it: the one in the
        certificate (or, for one issued before names were, the one it joined with); a Hello
        naming another node is refused, so a node cannot pass itself off as another."""
        with self._db() as db, db.begin():
            row = db.get(AgentRecord, agent_id)
            if row is None:
                raise Unauthenticated(f"agent {agent_id} is not known to this controller")
            if row.revoked:
                raise PermissionDenied(f"agent {agent_id} was revoked; join it again")
            if row.cert_fingerprint != fingerprint:
                raise Unauthenticated(f"agent {agent_id} presented a certificate that was "
                                      "not issued to it")
            bound = cert_node or row.node
            if hello.node != bound:
                raise PermissionDenied(f"agent {agent_id} joined as node {bound!r}, its Hello "
                                       f"says {hello.node[:60]!r}: a node keeps the name it "
                                       "joined with (join again with a new token to rename it)")
            row.version = hello.version
            row.runtimes = ",".join(hello.runtimes)
            row.last_seen = time.time()
            info = _info(row)
        with self._lock:
            remote = self._remote.get(agent_id)
            if remote is None:
                remote = self._remote[agent_id] = RemoteAgent(info, self.uploads,
                                                              self.rejects)
        remote.attach(session, hello)
        log.info("agent %s on node %s connected (version %s, runtimes %s)", agent_id,
                 hello.node, hello.version, ",".join(hello.runtimes) or "none")
        return remote

    def close(self) -> None:
        self._closing.set()
        for transport in self.transports().values():
            transport.close()

    # ---- internals --------------------------------------------------------------------

    def refresh(self) -> None:
        """Take in what other replicas did: agents they admitted, and revocations (whose
        sessions with this replica are closed now)."""
        with self._db() as db:
            rows = {r.id: r for r in db.query(AgentRecord)}
        gone: list[RemoteAgent] = []
        with self._lock:
            for agent_id, row in rows.items():
                if not row.revoked and agent_id not in self._remote:
                    self._remote[agent_id] = RemoteAgent(_info(row), self.uploads,
                                                         self.rejects)
                elif row.revoked and agent_id in self._remote:
                    gone.append(self._remote.pop(agent_id))
        for remote in gone:
            if remote.session is not None:
                remote.detach(remote.session, "revoked")
            log.warning("agent %s revoked (by another replica)", remote.info().id)

    def _watch(self) -> None:
        """Marks silent agents disconnected, and keeps ``last_seen`` in the database."""
        saved: dict[str, float] = {}
        looked = time.monotonic()
        while not self._closing.wait(1.0):
            if time.monotonic() - looked >= limits.AGENT_RECORDS_REFRESH_S:
                looked = time.monotonic()
                try:
                    self.refresh()
                except Exception:  # the database may be briefly away; next round
                    log.exception("could not read the agents' records")
            with self._lock:
                remotes = list(self._remote.items())
            now = time.time()
            due: dict[str, float] = {}
            for agent_id, remote in remotes:
                session = remote.session
                if session is not None and now - remote.last_seen > limits.HEARTBEAT_TIMEOUT_S:
                    remote.detach(session, f"no message for {limits.HEARTBEAT_TIMEOUT_S:g} s")
                if remote.last_seen - saved.get(agent_id, 0.0) >= 5.0:
                    due[agent_id] = remote.last_seen
            if not due:
                continue
            try:  # one transaction a round: 500 nodes made 100 commits a second one by one
                with self._db() as db, db.begin():
                    for row in db.query(AgentRecord).filter(AgentRecord.id.in_(list(due))):
                        row.last_seen = due[row.id]
                saved.update(due)
            except Exception:  # the database may be briefly away; try next round
                log.exception("could not record last_seen of %d agents", len(due))


def _info(row: AgentRecord) -> AgentInfo:
    return AgentInfo(id=row.id, node=row.node, version=row.version,
                     runtimes=tuple(r for r in row.runtimes.split(",") if r), started=0.0,
                     connected=False, joined=row.joined, last_seen=row.last_seen)
