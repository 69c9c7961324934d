"""The agent's identity and its one join (``podcap agent --join-token``).

Joining trades a one-time token and a CSR for a certificate whose URI SAN is the agent's id; the
key never leaves the node. After that the agent authenticates by certificate alone, so a
restart needs no new token. Nothing the join port says is trusted before the cluster CA it
presents matches the fingerprint in the token.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from podcap import limits
from podcap.errors import InvalidArgument, PodcapError, Unauthenticated
from podcap.pki.csr import new_key_and_csr
from podcap.pki.names import CONTROLLER_NAME, agent_id_of
from podcap.transport.grpc.agent_proto import agent_pb2 as pb
from podcap.transport.grpc.agent_proto import agent_pb2_grpc as pb_grpc
from podcap.transport.grpc.errors import from_rpc

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
