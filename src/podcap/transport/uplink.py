"""The agent's end of the wire (``podcap agent``): join once, then keep a session open.

The agent dials the controller, so nodes open no port. Joining trades a one-time token and a
CSR for a certificate whose URI SAN is the agent's id; the key never leaves the node. After
that the agent authenticates by certificate alone, so a restart needs no new token. The session
carries commands down and replies and heartbeats up; each download is an ``Upload`` call of
its own, so a large one never delays a command. When the controller is away the agent goes on
capturing (durations and budgets are enforced here) and dials again every few seconds.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc

from podcap import limits
from podcap.agent.manager import Agent
from podcap.errors import InvalidArgument, PodcapError, Unauthenticated
from podcap.pki import CONTROLLER_NAME, agent_id_of, new_key_and_csr
from podcap.streams import PcapStream
from podcap.transport import codec
from podcap.transport.agent_proto import agent_pb2 as pb
from podcap.transport.agent_proto import agent_pb2_grpc as pb_grpc
from podcap.transport.errors import from_rpc, to_wire

log = logging.getLogger("podcap.agent.uplink")

CLIENT_OPTIONS = [
    ("grpc.ssl_target_name_override", CONTROLLER_NAME),
    ("grpc.max_receive_message_length", limits.GRPC_MESSAGE_MAX_BYTES),
    ("grpc.max_send_message_length", limits.GRPC_MESSAGE_MAX_BYTES),
    ("grpc.keepalive_time_ms", 5000),  # a cut link is noticed within ~10 s
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # A connect attempt gives up after this (default 20 s), so a node whose link comes back
    # is connected again within seconds, not after a connect that began during the cut.
    ("grpc.min_reconnect_backoff_ms", 2000),
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", int(limits.RECONNECT_MAX_S * 1000)),
]


@dataclass(frozen=True)
class Identity:
    """The agent's key, its certificate and the cluster CA, kept in its data dir."""

    agent_id: str
    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes

    FILES = ("agent.key", "agent.crt", "cluster-ca.crt")

    @classmethod
    def load(cls, data_dir: Path) -> Identity | None:
        paths = [data_dir / name for name in cls.FILES]
        if not all(p.exists() for p in paths):
            return None
        key, cert, ca = (p.read_bytes() for p in paths)
        return cls(agent_id_of(cert), key, cert, ca)

    def save(self, data_dir: Path) -> None:
        for name, data, mode in zip(self.FILES, (self.key_pem, self.cert_pem, self.ca_pem),
                                    (0o600, 0o644, 0o644), strict=True):
            tmp = data_dir / f".{name}.tmp"
            tmp.write_bytes(data)
            tmp.chmod(mode)
            tmp.replace(data_dir / name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca_pem, self.key_pem, self.cert_pem)


def join(join_address: str, token: str, node: str, timeout: float = 15.0) -> Identity:
    """Pin the controller's CA by the fingerprint in the token, then trade token + CSR for a
    certificate. Nothing is trusted before the pin matches."""
    pin = token.rsplit(".", 1)[-1].lower()
    if len(pin) != 64 or token.count(".") != 2:
        raise InvalidArgument("a join token looks like <id>.<secret>.<ca-fingerprint> "
                              "(podcap token create prints one)")
    ca_der = _peer_certificate(join_address, timeout)
    seen = hashlib.sha256(ca_der).hexdigest()
    if seen != pin:
        raise Unauthenticated(f"the controller at {join_address} presented CA {seen[:16]}…, "
                              f"the join token expects {pin[:16]}…: wrong address, or someone "
                              "in between")
    ca_pem = ssl.DER_cert_to_PEM_cert(ca_der).encode()
    key_pem, csr_pem = new_key_and_csr(node)
    with grpc.secure_channel(join_address, grpc.ssl_channel_credentials(ca_pem),
                             options=CLIENT_OPTIONS) as channel:
        try:
            reply = pb_grpc.AgentGatewayStub(channel).Join(
                pb.JoinRequest(token=token, csr_pem=csr_pem, node=node), timeout=timeout)
        except grpc.RpcError as exc:
            raise from_rpc(exc, f"join at {join_address}") from None
    identity = Identity(agent_id_of(reply.cert_pem), key_pem, reply.cert_pem, ca_pem)
    if identity.agent_id != reply.agent_id:
        raise Unauthenticated("the controller's certificate does not name the id it gave")
    return identity


def _peer_certificate(address: str, timeout: float) -> bytes:
    host, _, port = address.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # checked by fingerprint right after
    context.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as raw, \
                context.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError) as exc:
        raise PodcapError(f"cannot reach the controller's join port {address}: {exc}") from exc
    if not der:
        raise Unauthenticated(f"{address} presented no certificate")
    return der


class Uplink:
    """Keeps one session with the controller open for as long as the agent runs."""

    def __init__(self, agent: Agent, address: str, identity: Identity) -> None:
        self.agent = agent
        self.address = address
        self.identity = identity
        self._stop = threading.Event()
        self._call: grpc.Future | None = None
        self._commands = ThreadPoolExecutor(16, thread_name_prefix="podcap-cmd")
        self._uploads = ThreadPoolExecutor(32, thread_name_prefix="podcap-upload")

    def run(self) -> None:
        """Until ``stop()``: dial, serve the session, and dial again when it ends."""
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self._session()
            except grpc.RpcError as exc:
                error = from_rpc(exc, f"controller {self.address}")
                log.warning("session ended: %s", error.message)
            except Exception:
                log.exception("session failed")
            if time.monotonic() - began < 1.0:
                self._stop.wait(limits.RECONNECT_MAX_S)
            else:
                self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._commands.shutdown(wait=False, cancel_futures=True)
        self._uploads.shutdown(wait=False, cancel_futures=True)

    # ---- one session ------------------------------------------------------------------

    def _session(self) -> None:
        outbox: queue.Queue[pb.AgentMessage] = queue.Queue()
        done = threading.Event()
        with grpc.secure_channel(self.address, self.identity.credentials(),
                                 options=CLIENT_OPTIONS) as channel:
            stub = pb_grpc.AgentGatewayStub(channel)
            call = stub.Session(self._upward(outbox, done))
            self._call = call
            try:
                for message in call:
                    if message.WhichOneof("msg") == "welcome":
                        log.info("connected to controller %s as agent %s", self.address,
                                 message.welcome.agent_id)
                    elif message.WhichOneof("msg") == "command":
                        self._commands.submit(self._execute, message.command, outbox, stub)
            finally:
                done.set()
                self._call = None

    def _upward(self, outbox: queue.Queue[pb.AgentMessage],
                done: threading.Event) -> Iterator[pb.AgentMessage]:
        info = self.agent.info()
        yield pb.AgentMessage(hello=pb.Hello(node=info.node, version=info.version,
                                             runtimes=list(info.runtimes),
                                             started=info.started,
                                             disk_budget=info.disk_budget,
                                             reclaim=info.reclaim))
        while not done.is_set() and not self._stop.is_set():
            try:
                yield outbox.get(timeout=limits.HEARTBEAT_INTERVAL_S)
            except queue.Empty:
                yield pb.AgentMessage(heartbeat=pb.Heartbeat(sent=time.time()))

    # ---- commands ---------------------------------------------------------------------

    def _execute(self, command: pb.Command, outbox: queue.Queue[pb.AgentMessage],
                 stub: pb_grpc.AgentGatewayStub) -> None:
        op = command.WhichOneof("op")
        if command.deadline and time.time() > command.deadline + 1.0:
            log.warning("dropped %s command %d: its deadline passed before it arrived", op,
                        command.seq)
            return
        stream: PcapStream | None = None
        try:
            reply, stream = self._answer(command, op)
        except PodcapError as exc:
            reply = pb.Reply(error=to_wire(exc))
        except Exception as exc:  # never let one command take the session down
            log.exception("%s command failed", op)
            reply = pb.Reply(error=pb.Error(kind="PodcapError", message=f"agent error: {exc}"))
        reply.seq = command.seq
        outbox.put(pb.AgentMessage(reply=reply))
        if stream is not None:
            self._uploads.submit(self._upload, stub, command.download.download_id, stream)

    def _answer(self, command: pb.Command, op: str | None) -> tuple[pb.Reply, PcapStream | None]:
        agent = self.agent
        if op == "list_workloads":
            items = [codec.workload_to_pb(w) for w in agent.list_workloads()]
            return pb.Reply(workloads=pb.Workloads(items=items)), None
        if op == "check_filter":
            agent.check_filter(command.check_filter)
            return pb.Reply(ok=pb.Empty()), None
        if op == "start":
            capture = agent.start(command.start.workload_id,
                                  codec.spec_from_pb(command.start.spec), command.start.owner)
            return pb.Reply(capture=codec.capture_to_pb(capture)), None
        if op == "stop":
            return pb.Reply(capture=codec.capture_to_pb(agent.stop(command.stop))), None
        if op == "remove":
            agent.remove(command.remove)
            return pb.Reply(ok=pb.Empty()), None
        if op == "list_captures":
            captures = [codec.capture_to_pb(c) for c in agent.list_captures()]
            return pb.Reply(captures=pb.Captures(items=captures)), None
        if op == "get_capture":
            capture = agent.get_capture(command.get_capture)
            return pb.Reply(capture=codec.capture_to_pb(capture)), None
        if op == "download":
            stream = agent.stream_pcap(command.download.capture_id,
                                       codec.download_from_pb(command.download),
                                       chunk=limits.UPLOAD_CHUNK_BYTES)
            return pb.Reply(ok=pb.Empty()), stream
        if op == "document":
            doc = command.document
            body = agent.document(doc.capture_id, doc.name, dict(doc.params))
            return pb.Reply(document=codec.document_to_wire(body)), None
        raise InvalidArgument(f"unknown command {op!r}: is the controller newer than "
                              "this agent?")

    def _upload(self, stub: pb_grpc.AgentGatewayStub, download_id: str,
                stream: PcapStream) -> None:
        def chunks() -> Iterator[pb.PcapChunk]:
            yield pb.PcapChunk(header=pb.UploadHeader(
                download_id=download_id, size=-1 if stream.size is None else stream.size))
            try:
                sent = time.monotonic()
                for block in stream:  # read in chunk-sized blocks: sliced only when over
                    if not block:  # a quiet follow stream (capture/follow.py): a keepalive
                        if time.monotonic() - sent >= limits.FOLLOW_KEEPALIVE_S:
                            sent = time.monotonic()  # keeps the controller's idle limit away
                            yield pb.PcapChunk(data=b"")
                        continue
                    sent = time.monotonic()
                    for at in range(0, len(block), limits.UPLOAD_CHUNK_BYTES):
                        yield pb.PcapChunk(data=block if len(block) <= limits.UPLOAD_CHUNK_BYTES
                                           else block[at:at + limits.UPLOAD_CHUNK_BYTES])
            except PodcapError as exc:
                yield pb.PcapChunk(error=to_wire(exc))

        try:
            stub.Upload(chunks())
        except grpc.RpcError as exc:
            log.info("download %s ended early: %s", download_id,
                     from_rpc(exc, "controller").message)
        finally:
            stream.close()
