"""The data port (transport/data/) admits what the agent port admits, and nothing else: mutual
TLS with a certificate of the cluster CA, the agent id read from it, a ticket issued to that
agent, once, in time. Each refusal is counted (``podcap_agent_streams_refused_total``) and no
byte of a refused connection reaches a reader. A real gateway and data listener on loopback,
real TLS, a real ``Uplink`` (tests/loopback_gateway.py)."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from podcap import limits
from podcap.pki.ca import ClusterCA
from podcap.pki.csr import new_key_and_csr
from podcap.pki.names import CONTROLLER_NAME
from podcap.streams import PcapStream
from podcap.transport import rejects
from podcap.transport.data import sender, wire
from podcap.transport.data.incoming import IncomingUpload
from podcap.transport.grpc.join import Identity
from podcap.transport.grpc.remote import RemoteAgent
from tests.loopback_gateway import LoopbackGateway, connected, loopback_gateway
from tests.support import wait_for
from tests.test_grpc_transport import StandIn

NODE = "fake-node"


@dataclass
class Bed:
    gw: LoopbackGateway
    a: Identity  # the agent whose downloads these are, connected
    b: Identity  # another joined agent of the same cluster
    remote: RemoteAgent

    @property
    def port(self) -> int:
        return self.gw.registry.uploads.port

    def refused(self, agent_id: str, why: str) -> int:
        return self.gw.registry.rejects.streams_refused[(agent_id, why)]

    def ctx(self, who: Identity) -> ssl.SSLContext:
        return wire.client_context(who.key_pem, who.cert_pem, who.ca_pem)

    def present(self, who: Identity, ticket: str, data: bytes) -> None:
        """What a real agent sends for ``ticket`` (transport/data/sender.py)."""
        sender.send(self.ctx(who), "127.0.0.1", self.port, ticket,
                    PcapStream(iter([data]), len(data)), timeout=5)


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[Bed]:
    with loopback_gateway(tmp_path) as gw:
        a, b = gw.identity(NODE), gw.identity("other-node")
        try:
            with connected(gw, a, StandIn(a.agent_id)) as (remote, _):
                yield Bed(gw, a, b, remote)
        finally:
            gw.registry.close()


def _closed_without_a_byte(tls: socket.socket) -> bool:
    tls.settimeout(10)
    try:
        return tls.recv(1) == b""
    except (ssl.SSLError, OSError):  # refused during or right after the handshake
        return True


def _read(upload: IncomingUpload) -> bytes:
    assert upload.started.wait(5)
    return b"".join(c for c in upload.chunks(NODE) if c)


def _whole_download_intact(bed: Bed) -> None:
    """After whatever was tried, the agent's real download arrives byte for byte."""
    expected = StandIn(bed.a.agent_id).stream_pcap("e" * 32)
    stream = bed.remote.stream_pcap("e" * 32)
    assert b"".join(stream) == b"".join(expected)


def test_a_peer_without_a_certificate_is_refused(bed: Bed) -> None:
    upload = bed.gw.registry.uploads.expect(bed.a.agent_id)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=bed.a.ca_pem.decode())
    with socket.create_connection(("127.0.0.1", bed.port)) as raw, \
            ctx.wrap_socket(raw, server_hostname=CONTROLLER_NAME) as tls:
        try:
            tls.sendall(wire.header(upload.id, 3) + wire.FRAME.pack(wire.DATA, 3) + b"bad")
        except (ssl.SSLError, OSError):
            pass
        assert _closed_without_a_byte(tls)
    wait_for(lambda: bed.refused("", rejects.UNAUTHENTICATED) == 1, timeout=5)
    assert not upload.started.is_set()  # nothing reached the download it named
    _whole_download_intact(bed)


def test_a_certificate_of_another_ca_naming_the_agent_is_refused(bed: Bed,
                                                                 tmp_path: Path) -> None:
    """A forger's own CA can write agent A's id into a certificate; the cluster's CA did not
    sign it, so the handshake fails before any byte is read."""
    forger = ClusterCA.load_or_create(tmp_path / "forger")
    key, csr = new_key_and_csr(NODE)
    forged = Identity(bed.a.agent_id, key, forger.sign_agent(csr, bed.a.agent_id, NODE),
                      bed.a.ca_pem)
    upload = bed.gw.registry.uploads.expect(bed.a.agent_id)
    bed.present(forged, upload.id, b"injected")  # the sender logs its failure and returns
    wait_for(lambda: bed.refused("", rejects.UNAUTHENTICATED) == 1, timeout=5)
    assert not upload.started.is_set()
    _whole_download_intact(bed)


def test_another_agents_certificate_cannot_present_the_ticket(bed: Bed) -> None:
    upload = bed.gw.registry.uploads.expect(bed.a.agent_id)
    bed.present(bed.b, upload.id, b"injected")
    wait_for(lambda: bed.refused(bed.b.agent_id, rejects.BAD_TICKET) == 1, timeout=5)
    assert not upload.started.is_set()
    # The ticket is still A's: A presents it, and its bytes alone arrive.
    threading.Thread(target=bed.present, args=(bed.a, upload.id, b"genuine"),
                     daemon=True).start()
    assert _read(upload) == b"genuine"


def test_a_ticket_is_good_once(bed: Bed) -> None:
    upload = bed.gw.registry.uploads.expect(bed.a.agent_id)
    threading.Thread(target=bed.present, args=(bed.a, upload.id, b"first"),
                     daemon=True).start()
    assert _read(upload) == b"first"
    bed.present(bed.a, upload.id, b"again")
    wait_for(lambda: bed.refused(bed.a.agent_id, rejects.BAD_TICKET) == 1, timeout=5)


def test_an_expired_ticket_is_refused(bed: Bed) -> None:
    uploads = bed.gw.registry.uploads
    uploads.ttl_s = 0.2
    upload = uploads.expect(bed.a.agent_id)
    time.sleep(0.4)
    bed.present(bed.a, upload.id, b"late")
    wait_for(lambda: bed.refused(bed.a.agent_id, rejects.BAD_TICKET) == 1, timeout=5)
    assert not upload.started.is_set()


@pytest.mark.parametrize("tls", [True, False], ids=["inside-tls", "plain-tcp"])
def test_garbage_is_refused(bed: Bed, tls: bool) -> None:
    upload = bed.gw.registry.uploads.expect(bed.a.agent_id)
    # Text first (what a mistaken HTTP client sends: it decodes, only the magic is wrong),
    # then random bytes.
    junk = b"GET / HTTP/1.1\r\nHost: podcap\r\n" + b"X" * wire.HEADER.size + os.urandom(64)
    with socket.create_connection(("127.0.0.1", bed.port)) as raw:
        conn = bed.ctx(bed.a).wrap_socket(raw, server_hostname=CONTROLLER_NAME) if tls else raw
        try:
            conn.sendall(junk)
        except (ssl.SSLError, OSError):
            pass
        assert _closed_without_a_byte(conn)
    if tls:
        wait_for(lambda: bed.refused(bed.a.agent_id, rejects.BAD_HEADER) == 1, timeout=5)
    else:
        wait_for(lambda: bed.refused("", rejects.UNAUTHENTICATED) == 1, timeout=5)
    assert not upload.started.is_set()
    _whole_download_intact(bed)


def test_one_certificate_holds_at_most_its_cap_of_data_connections(
        bed: Bed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "AGENT_UPLOADS_MAX", 2)
    hold = threading.Event()

    def slow() -> Iterator[bytes]:
        yield b"x"
        hold.wait(20)

    uploads = [bed.gw.registry.uploads.expect(bed.a.agent_id) for _ in range(3)]
    senders = [threading.Thread(target=sender.send, daemon=True, args=(
        bed.ctx(bed.a), "127.0.0.1", bed.port, u.id, PcapStream(slow(), None), 5))
        for u in uploads]
    try:
        for t in senders:
            t.start()
        wait_for(lambda: bed.refused(bed.a.agent_id, rejects.UPLOADS) == 1, timeout=5)
        assert sum(u.started.is_set() for u in uploads) == 2
        assert bed.gw.data.open_connections(bed.a.agent_id) == 2
    finally:
        hold.set()
        for u in uploads:
            u.cancel()
    # Closed by their readers: the certificate's count is back to none.
    wait_for(lambda: bed.gw.data.open_connections(bed.a.agent_id) == 0, timeout=5)


def test_a_connection_that_breaks_off_fails_its_download(bed: Bed) -> None:
    """An agent whose connection ends midway (its process killed, its link cut) leaves a
    download that fails naming why, never one that looks complete with the bytes so far: only
    an END frame ends a download."""
    from podcap.errors import Unavailable

    upload = bed.gw.registry.uploads.expect(bed.a.agent_id)
    with socket.create_connection(("127.0.0.1", bed.port)) as raw, \
            bed.ctx(bed.a).wrap_socket(raw, server_hostname=CONTROLLER_NAME) as tls:
        magic = b"\xd4\xc3\xb2\xa1"
        tls.sendall(wire.header(upload.id, None) + wire.FRAME.pack(wire.DATA, 4) + magic)
        assert upload.started.wait(5)
    got = b""
    with pytest.raises(Unavailable, match="broke off"):
        for chunk in upload.chunks(NODE):
            got += chunk
    assert got == magic
