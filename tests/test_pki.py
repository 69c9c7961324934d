"""The cluster CA: agent certificates name the agent, and real TLS handshakes prove they work.

The handshakes are gRPC's own (grpcio, BoringSSL) on loopback, with the same credentials the
controller's two listeners use: mutual TLS on the agent port, server TLS on the join port.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import stat
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podcap.errors import FailedPrecondition, InvalidArgument, Unauthenticated
from podcap.pki import ca as ca_module
from podcap.pki.ca import ClusterCA
from podcap.pki.csr import new_key_and_csr
from podcap.pki.listener import RENEW_BEFORE, server_pair
from podcap.pki.names import AGENT_URI_PREFIX, CONTROLLER_NAME, agent_id_of, fingerprint


@pytest.fixture
def ca(tmp_path: Path) -> ClusterCA:
    return ClusterCA.load_or_create(tmp_path / "data")


@pytest.fixture
def other_ca(tmp_path: Path) -> ClusterCA:
    return ClusterCA.load_or_create(tmp_path / "other")


def cert_of(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_ca_is_kept_in_the_data_dir(ca: ClusterCA, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert stat.S_IMODE((data / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert ClusterCA.load_or_create(data).fingerprint == ca.fingerprint  # not regenerated
    # SHA-256 of the certificate's DER, in lowercase hex, as cryptography computes it
    assert ca.fingerprint == cert_of(ca.cert_pem).fingerprint(hashes.SHA256()).hex()
    assert not [p for p in data.iterdir() if p.name.startswith(".")]  # no temp files left
    cert = cert_of(ca.cert_pem)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and usage.digital_signature
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [CONTROLLER_NAME]
    assert 3640 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 3660


def test_a_ca_certificate_without_its_key_is_not_replaced(ca: ClusterCA, tmp_path: Path) -> None:
    (tmp_path / "data" / "ca.key").unlink()
    with pytest.raises(FailedPrecondition, match="ca.key is missing"):
        ClusterCA.load_or_create(tmp_path / "data")


def test_a_supplied_ca_is_used(other_ca: ClusterCA, tmp_path: Path) -> None:
    other = tmp_path / "other"
    supplied = ClusterCA.load_or_create(tmp_path / "data", other / "ca.crt", other / "ca.key")
    assert supplied.fingerprint == other_ca.fingerprint
    assert not (tmp_path / "data" / "ca.crt").exists()
    with pytest.raises(InvalidArgument, match="both"):
        ClusterCA.load_or_create(tmp_path / "data", other / "ca.crt")


def test_a_supplied_ca_must_serve_the_join_port(tmp_path: Path) -> None:
    key_pem, cert_pem = self_signed("plain CA", ca=True)
    (tmp_path / "plain.crt").write_bytes(cert_pem)
    (tmp_path / "plain.key").write_bytes(key_pem)
    with pytest.raises(InvalidArgument, match=CONTROLLER_NAME):
        ClusterCA.load_or_create(tmp_path / "data", tmp_path / "plain.crt",
                                 tmp_path / "plain.key")
    (tmp_path / "other.key").write_bytes(self_signed("other")[0])
    with pytest.raises(InvalidArgument, match="is not the key of"):
        ClusterCA.load_or_create(tmp_path / "data", tmp_path / "plain.crt",
                                 tmp_path / "other.key")


def test_csr_is_signed_for_the_agent_id_only(ca: ClusterCA) -> None:
    key_pem, csr_pem = new_key_and_csr("node-a")
    cert = cert_of(ca.sign_agent(csr_pem, "agent-1"))
    cert.verify_directly_issued_by(cert_of(ca.cert_pem))
    assert agent_id_of(cert.public_bytes(serialization.Encoding.PEM)) == "agent-1"
    assert agent_id_of(cert.public_bytes(serialization.Encoding.DER)) == "agent-1"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "agent-1"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.UniformResourceIdentifier(AGENT_URI_PREFIX + "agent-1")]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert 364 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 366
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert key.public_key() == cert.public_key()


def test_what_the_csr_asks_for_is_ignored(ca: ClusterCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
           .add_extension(x509.SubjectAlternativeName([
               x509.UniformResourceIdentifier(AGENT_URI_PREFIX + "agent-2"),
               x509.DNSName(CONTROLLER_NAME)]), critical=False)
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .sign(key, hashes.SHA256()))
    cert = cert_of(ca.sign_agent(csr.public_bytes(serialization.Encoding.PEM), "agent-1"))
    assert agent_id_of(cert.public_bytes(serialization.Encoding.PEM)) == "agent-1"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == []
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_csr_with_a_bad_signature_is_refused(ca: ClusterCA) -> None:
    _, csr_pem = new_key_and_csr("node-a")
    der = x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER)
    assert der.count(b"node-a") == 1
    tampered = x509.load_der_x509_csr(der.replace(b"node-a", b"node-b"))  # signed: node-a
    with pytest.raises(InvalidArgument, match="signature does not match"):
        ca.sign_agent(tampered.public_bytes(serialization.Encoding.PEM), "agent-1")


@pytest.mark.parametrize("csr,words", [
    (b"", "not a PEM certificate request"),
    (b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
     "not a PEM certificate request"),
    (b"x" * 20_000, "at most"),
])
def test_garbage_csr_is_refused(ca: ClusterCA, csr: bytes, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        ca.sign_agent(csr, "agent-1")


@pytest.mark.parametrize("agent_id", ["", "a/b", "../x", "a b", "x" * 65, "-x", "a%2f"])
def test_bad_agent_ids_are_refused(ca: ClusterCA, agent_id: str) -> None:
    _, csr_pem = new_key_and_csr("node-a")
    with pytest.raises(InvalidArgument, match="invalid agent id"):
        ca.sign_agent(csr_pem, agent_id)


def test_a_certificate_from_another_ca_is_not_verified(ca: ClusterCA,
                                                       other_ca: ClusterCA) -> None:
    _, csr_pem = new_key_and_csr("node-a")
    foreign = cert_of(other_ca.sign_agent(csr_pem, "agent-1"))
    assert foreign.issuer == cert_of(ca.cert_pem).subject  # same name, other key
    with pytest.raises(InvalidSignature):
        foreign.verify_directly_issued_by(cert_of(ca.cert_pem))
    foreign.verify_directly_issued_by(cert_of(other_ca.cert_pem))


def test_agent_id_needs_the_agent_uri(ca: ClusterCA) -> None:
    _, server_cert = server_pair(ca)
    with pytest.raises(Unauthenticated, match="names no podcap agent"):
        agent_id_of(server_cert)
    with pytest.raises(Unauthenticated, match="no subject alternative name"):
        agent_id_of(self_signed("bare")[1])
    with pytest.raises(Unauthenticated, match="cannot be read"):
        agent_id_of(b"not a certificate")


def test_join_pair_is_the_ca_itself(ca: ClusterCA) -> None:
    key_pem, cert_pem = ca.join_pair()
    assert fingerprint(cert_pem) == ca.fingerprint
    assert fingerprint(cert_of(cert_pem).public_bytes(serialization.Encoding.DER)) \
        == ca.fingerprint
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert key.public_key() == cert_of(cert_pem).public_key()


def test_server_pair_is_kept_and_reissued_for_a_new_ca(ca: ClusterCA, tmp_path: Path) -> None:
    data = tmp_path / "data"
    key_pem, cert_pem = server_pair(ca)
    assert server_pair(ca) == (key_pem, cert_pem)
    assert server_pair(ClusterCA.load_or_create(data)) == (key_pem, cert_pem)
    assert stat.S_IMODE((data / "agent-listener.key").stat().st_mode) == 0o600
    cert = cert_of(cert_pem)
    cert.verify_directly_issued_by(cert_of(ca.cert_pem))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [CONTROLLER_NAME]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    (data / "ca.crt").unlink()
    (data / "ca.key").unlink()
    new_ca = ClusterCA.load_or_create(data)
    _, new_cert = server_pair(new_ca)
    assert new_cert != cert_pem
    cert_of(new_cert).verify_directly_issued_by(cert_of(new_ca.cert_pem))


# Real handshakes: a gRPC server with the listener's credentials and a method that answers
# the agent id it reads from the peer certificate.

def _who(request: bytes, context: grpc.ServicerContext) -> bytes:
    pem = context.auth_context().get("x509_pem_cert", [b""])[0]
    try:
        return agent_id_of(pem).encode()
    except Unauthenticated:
        return b"-"


@contextmanager
def grpc_server(credentials: grpc.ServerCredentials) -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "podcap.test.Pki", {"Who": grpc.unary_unary_rpc_method_handler(_who)})])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


def call_who(port: int, root: bytes, key: bytes | None = None,
             cert: bytes | None = None) -> bytes:
    creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=key,
                                         certificate_chain=cert)
    options = [("grpc.ssl_target_name_override", CONTROLLER_NAME)]
    with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=options) as channel:
        return channel.unary_unary("/podcap.test.Pki/Who")(b"", timeout=10)


def test_mutual_tls_accepts_this_cas_agents_only(ca: ClusterCA, other_ca: ClusterCA) -> None:
    key_pem, csr_pem = new_key_and_csr("node-a")
    agent_cert = ca.sign_agent(csr_pem, "agent-1")
    foreign_key, foreign_csr = new_key_and_csr("node-x")
    foreign_cert = other_ca.sign_agent(foreign_csr, "agent-1")
    creds = grpc.ssl_server_credentials([server_pair(ca)], root_certificates=ca.cert_pem,
                                        require_client_auth=True)
    with grpc_server(creds) as port:
        assert call_who(port, ca.cert_pem, key_pem, agent_cert) == b"agent-1"
        for key, cert in ((foreign_key, foreign_cert), (None, None)):
            with pytest.raises(grpc.RpcError) as info:
                call_who(port, ca.cert_pem, key, cert)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as info:  # the agent checks the controller too
            call_who(port, other_ca.cert_pem, key_pem, agent_cert)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_join_port_is_pinned_by_the_token_fingerprint(ca: ClusterCA,
                                                      other_ca: ClusterCA) -> None:
    creds = grpc.ssl_server_credentials([ca.join_pair()])
    with grpc_server(creds) as port:
        # What an agent does: an unverified handshake, the fingerprint from its token ...
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=CONTROLLER_NAME) as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None and fingerprint(der) == ca.fingerprint != other_ca.fingerprint
        # ... then that certificate as its only root, verified against CONTROLLER_NAME.
        pinned = ssl.DER_cert_to_PEM_cert(der).encode()
        assert call_who(port, pinned) == b"-"  # no client certificate on the join port
        with pytest.raises(grpc.RpcError):
            call_who(port, other_ca.cert_pem)


def self_signed(common_name: str, ca: bool = False) -> tuple[bytes, bytes]:
    """(key_pem, cert_pem) of a plain self-signed certificate: no SAN, no key usage."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(1).not_valid_before(start)
               .not_valid_after(start + datetime.timedelta(days=1)))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                        critical=True)
    cert = builder.sign(key, hashes.SHA256())
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


# ---- the listener pair's renewal (server_pair): when it is kept, when it is made anew

def test_server_pair_files_and_extensions(ca: ClusterCA, tmp_path: Path) -> None:
    key_pem, cert_pem = server_pair(ca)
    data = tmp_path / "data"
    assert (data / "agent-listener.crt").read_bytes() == cert_pem
    assert (data / "agent-listener.key").read_bytes() == key_pem
    assert stat.S_IMODE((data / "agent-listener.crt").stat().st_mode) == 0o644
    cert = cert_of(cert_pem)
    for kind in (x509.SubjectAlternativeName, x509.ExtendedKeyUsage):
        assert cert.extensions.get_extension_for_class(kind).critical is False


@pytest.mark.parametrize("missing", ["agent-listener.key", "agent-listener.crt"])
def test_server_pair_with_a_file_missing_is_made_anew(ca: ClusterCA, tmp_path: Path,
                                                      missing: str) -> None:
    _, cert_pem = server_pair(ca)
    (tmp_path / "data" / missing).unlink()
    key2, cert2 = server_pair(ca)
    assert cert2 != cert_pem
    assert (tmp_path / "data" / "agent-listener.key").read_bytes() == key2
    assert (tmp_path / "data" / "agent-listener.crt").read_bytes() == cert2


def test_server_pair_whose_key_is_not_the_certificates_is_made_anew(ca: ClusterCA,
                                                                   tmp_path: Path) -> None:
    _, cert_pem = server_pair(ca)
    other_key, _ = new_key_and_csr("elsewhere")
    (tmp_path / "data" / "agent-listener.key").write_bytes(other_key)
    key2, cert2 = server_pair(ca)
    assert cert2 != cert_pem and key2 != other_key
    assert cert_of(cert2).public_key() == serialization.load_pem_private_key(
        key2, password=None).public_key()


def test_server_pair_is_renewed_at_thirty_days_left_not_before(
        ca: ClusterCA, monkeypatch: pytest.MonkeyPatch) -> None:
    _, cert_pem = server_pair(ca)
    end = cert_of(cert_pem).not_valid_after_utc
    monkeypatch.setattr(ca_module, "now", lambda: end - RENEW_BEFORE - datetime.timedelta(
        seconds=1))
    assert server_pair(ca)[1] == cert_pem  # a second more than 30 days left: kept
    monkeypatch.setattr(ca_module, "now", lambda: end - RENEW_BEFORE)
    assert server_pair(ca)[1] != cert_pem  # exactly 30 days left: renewed
