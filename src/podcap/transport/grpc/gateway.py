"""The controller's gRPC listeners for agents: Join and Session (a download's bytes come on
the data port instead: ``transport/data/``).

Two ports, one service. The agent port demands a client certificate from the cluster CA
(mutual TLS, no plaintext mode); the join port cannot (a joining agent has no certificate yet)
and presents the CA certificate itself, so an agent pins it by the fingerprint in its join
token before it trusts anything. Every call but Join takes the agent id from the verified peer
certificate and checks it against the registry: never from a message.

The gateway is the controller's gRPC edge but imports nothing of the controller: it is given
what it needs (``gateway_needs.py``: ``controller/agents.py``, ``controller/join_tokens.py`` and
``controller/audit.py`` provide it), so imports point down.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from typing import NoReturn, TypeVar

import grpc

from podcap import limits
from podcap.errors import InvalidArgument, PodcapError, ResourceExhausted
from podcap.pki.ca import ClusterCA
from podcap.pki.listener import server_pair
from podcap.pki.names import agent_id_of, fingerprint, node_of
from podcap.transport import rejects
from podcap.transport.grpc import checks, codec
from podcap.transport.grpc.agent_proto import agent_pb2 as pb
from podcap.transport.grpc.agent_proto import agent_pb2_grpc as pb_grpc
from podcap.transport.grpc.errors import abort
from podcap.transport.grpc.gateway_needs import AuditLog, Members, Tokens
from podcap.transport.grpc.join_gate import JoinGate, peer_address
from podcap.transport.grpc.remote import RemoteAgent
from podcap.transport.grpc.session import AgentSession

M = TypeVar("M")

log = logging.getLogger("podcap.controller.gateway")

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", limits.GRPC_MESSAGE_MAX_BYTES),
    ("grpc.max_send_message_length", limits.GRPC_MESSAGE_MAX_BYTES),
    # Agents ping every few seconds to find a dead link; allow it without strikes.
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.http2.min_ping_interval_without_data_ms", 1000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.keepalive_permit_without_calls", 1),
]


class Gateway(pb_grpc.AgentGatewayServicer):
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

    # ---- Session (agent port) ---------------------------------------------------------

    def Session(self, request_iterator: Iterator[pb.AgentMessage],
                context: grpc.ServicerContext) -> Iterator[pb.ControllerMessage]:
        agent_id, cert_fp, cert_node = self._identify(context)
        with self._stream(context, agent_id, "sessions", limits.AGENT_SESSIONS_MAX):
            first = self._first(request_iterator, context, agent_id, "its Hello")
            if first is None:
                return
            if first.WhichOneof("msg") != "hello":
                log.warning("agent %s: session must begin with hello, got %s", agent_id,
                            first.WhichOneof("msg"))
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a session begins with Hello")
            session = AgentSession(cancel=context.cancel)
            try:
                hello = codec.hello_from_pb(first.hello)
                remote = self.registry.attach(agent_id, cert_fp, cert_node, hello, session)
            except PodcapError as exc:
                log.warning("agent %s refused: %s", agent_id, exc.message)
                abort(context, exc)
            yield from self._serve(session, remote, request_iterator, agent_id)

    def _serve(self, session: AgentSession, remote: RemoteAgent,
               request_iterator: Iterator[pb.AgentMessage],
               agent_id: str) -> Iterator[pb.ControllerMessage]:
        node = remote.info().node

        def read() -> None:
            try:
                for message in request_iterator:
                    remote.seen()
                    kind = message.WhichOneof("msg")
                    if kind == "reply":  # stray ones are counted; logged at a bounded rate
                        if not session.on_reply(message.reply):
                            self.rejects.drop(agent_id, node, rejects.INVALID,
                                              f"reply {message.reply.seq} answers no open "
                                              "command")
                    elif kind == "inventory":
                        remote.on_inventory(session, message.inventory)
                    elif kind == "heartbeat":
                        remote.on_heartbeat(session, message.heartbeat)
                    else:
                        self.rejects.drop(agent_id, node, rejects.INVALID,
                                          f"unexpected {kind} in a session; ignored")
                why = "the agent ended its session"
            except grpc.RpcError as exc:
                why = f"stream broke ({exc.code().name if hasattr(exc, 'code') else exc})"
            except Exception as exc:  # a malformed message must never take the controller
                why = f"bad message: {exc}"
                log.exception("node %s: session reader failed", node)
            remote.detach(session, why)

        threading.Thread(target=read, name=f"podcap-session-{node}", daemon=True).start()
        yield pb.ControllerMessage(welcome=pb.Welcome(agent_id=agent_id))
        while True:
            message = session.outbox.get()
            if message is None:
                return
            yield message

    # ---- identity ---------------------------------------------------------------------

    def _identify(self, context: grpc.ServicerContext) -> tuple[str, str, str]:
        """(agent id, certificate fingerprint, node name it was issued for) from the verified
        peer certificate."""
        pems = context.auth_context().get("x509_pem_cert")
        if not pems:
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "a client certificate is required here (join first)")
        try:
            return agent_id_of(pems[0]), fingerprint(pems[0]), node_of(pems[0])
        except PodcapError as exc:
            abort(context, exc)
            raise  # unreachable: abort raises

    # ---- what one certificate may hold ------------------------------------------------

    @contextlib.contextmanager
    def _stream(self, context: grpc.ServicerContext, agent_id: str, kind: str,
                cap: int) -> Iterator[None]:
        """At most ``cap`` open streams of this kind per certificate: each holds a server
        thread, and no certificate may hold the pool."""
        key = (agent_id, kind)
        with self._streams_lock:
            over = self._streams[key] >= cap
            if not over:
                self._streams[key] += 1
        if over:
            self.rejects.stream(agent_id, kind, f"{cap} {kind} open already "
                                f"(limits.AGENT_{kind.upper()}_MAX)")
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"this agent has {cap} {kind} open already; at most {cap}")
        try:
            yield
        finally:
            with self._streams_lock:
                self._streams[key] -= 1
                if self._streams[key] <= 0:
                    del self._streams[key]

    def _first(self, request_iterator: Iterator[M], context: grpc.ServicerContext,
               agent_id: str, what: str) -> M | None:
        """The stream's first message, or None when it ends; a stream that sends nothing
        within ``limits.STREAM_FIRST_MESSAGE_S`` is cancelled (its thread goes back)."""
        late = threading.Event()

        def expire() -> None:
            late.set()
            context.cancel()

        timer = threading.Timer(limits.STREAM_FIRST_MESSAGE_S, expire)
        timer.daemon = True
        timer.start()
        try:
            return next(request_iterator, None)
        except grpc.RpcError:
            return None
        finally:
            timer.cancel()
            if late.is_set():
                self.rejects.stream(agent_id, rejects.NO_FIRST_MESSAGE,
                                    f"sent no message within {limits.STREAM_FIRST_MESSAGE_S:g} "
                                    f"s (expected {what})")


def start_gateway(gateway: Gateway, agent_listen: str, join_listen: str | None) -> grpc.Server:
    """Both listeners on one gRPC server; join_listen None means no new agents may join."""
    server = grpc.server(futures.ThreadPoolExecutor(limits.GRPC_WORKERS,
                                                    thread_name_prefix="podcap-grpc"),
                         options=SERVER_OPTIONS)
    pb_grpc.add_AgentGatewayServicer_to_server(gateway, server)
    key, cert = server_pair(gateway.ca)
    mtls = grpc.ssl_server_credentials([(key, cert)], root_certificates=gateway.ca.cert_pem,
                                       require_client_auth=True)
    if server.add_secure_port(agent_listen, mtls) == 0:
        raise InvalidArgument(f"cannot listen for agents on {agent_listen}")
    if join_listen:
        ca_key, ca_cert = gateway.ca.join_pair()
        if server.add_secure_port(join_listen, grpc.ssl_server_credentials([(ca_key, ca_cert)])
                                  ) == 0:
            raise InvalidArgument(f"cannot listen for joins on {join_listen}")
    server.start()
    log.info("listening for agents on %s (mutual TLS)%s", agent_listen,
             f", joins on {join_listen}" if join_listen else "")
    return server
