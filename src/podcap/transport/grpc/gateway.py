"""The controller's gRPC listeners for agents: Join, Session and Upload.

Two ports, one service. The agent port demands a client certificate from the cluster CA
(mutual TLS, no plaintext mode); the join port cannot (a joining agent has no certificate yet)
and presents the CA certificate itself, so an agent pins it by the fingerprint in its join
token before it trusts anything. Every call but Join takes the agent id from the verified peer
certificate and checks it against the registry: never from a message.

Session is served on an event loop (gateway_session.py), Join and Upload on threads, all by
one gRPC asyncio server (gateway_server.py).

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
from typing import NoReturn, TypeVar

import grpc

from podcap import limits
from podcap.errors import InvalidArgument, PodcapError, ResourceExhausted, Unavailable
from podcap.pki.ca import ClusterCA
from podcap.pki.names import fingerprint
from podcap.transport import rejects
from podcap.transport.grpc import checks
from podcap.transport.grpc.agent_proto import agent_pb2 as pb
from podcap.transport.grpc.agent_proto import agent_pb2_grpc as pb_grpc
from podcap.transport.grpc.errors import abort, from_wire
from podcap.transport.grpc.gateway_needs import AuditLog, Members, Tokens
from podcap.transport.grpc.gateway_session import SessionServing
from podcap.transport.grpc.join_gate import JoinGate, peer_address

M = TypeVar("M")

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

    # ---- Upload (agent port) ----------------------------------------------------------

    def Upload(self, request_iterator: Iterator[pb.PcapChunk],
               context: grpc.ServicerContext) -> pb.UploadReply:
        agent_id, _, _ = self._identify(context)
        with self._stream(context, agent_id, "uploads", limits.AGENT_UPLOADS_MAX):
            return self._upload(request_iterator, context, agent_id)

    def _upload(self, request_iterator: Iterator[pb.PcapChunk], context: grpc.ServicerContext,
                agent_id: str) -> pb.UploadReply:
        first = self._first(request_iterator, context, agent_id, "its upload header")
        if first is None or first.WhichOneof("part") != "header":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "an upload begins with its header")
            return pb.UploadReply()  # unreachable: abort raises
        try:
            upload = self.registry.uploads.claim(first.header.download_id, agent_id)
        except PodcapError as exc:
            log.warning("agent %s: upload refused: %s", agent_id, exc.message)
            abort(context, exc)
        if first.header.size < -1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"upload size {first.header.size} is neither -1 nor a size")
        upload.begin(first.header.size)
        error: PodcapError | None = None
        try:
            for chunk in request_iterator:
                part = chunk.WhichOneof("part")
                if part == "data":
                    data = chunk.data  # each read of the field is a copy of its bytes
                    if len(data) > limits.UPLOAD_CHUNK_BYTES:
                        raise InvalidArgument(f"chunk of {len(data)} bytes exceeds "
                                              f"{limits.UPLOAD_CHUNK_BYTES}")
                    if not upload.put(data):
                        log.info("agent %s: download %s cancelled by its reader", agent_id,
                                 upload.id)
                        context.cancel()
                        return pb.UploadReply()
                elif part == "error":
                    error = from_wire(chunk.error)
                    break
                else:
                    raise InvalidArgument(f"unexpected {part} inside an upload")
        except PodcapError as exc:
            log.warning("agent %s: upload failed: %s", agent_id, exc.message)
            error = exc
        except grpc.RpcError:
            error = Unavailable(f"agent {agent_id}: the upload broke off")
        upload.finish(error)
        return pb.UploadReply()

    # ---- identity ---------------------------------------------------------------------

    def _identify(self, context: grpc.ServicerContext) -> tuple[str, str, str]:
        try:
            return self._who(context)
        except PodcapError as exc:
            abort(context, exc)
            raise  # unreachable: abort raises

    # ---- what one certificate may hold ------------------------------------------------

    @contextlib.contextmanager
    def _stream(self, context: grpc.ServicerContext, agent_id: str, kind: str,
                cap: int) -> Iterator[None]:
        """At most ``cap`` open streams of this kind per certificate: each upload holds a
        thread, and no certificate may hold the pool."""
        if not self._take(agent_id, kind, cap):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self._over(kind, cap))
        try:
            yield
        finally:
            self._give_back(agent_id, kind)

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
