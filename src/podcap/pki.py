"""The cluster's certificate authority: one identity per agent, proven by mutual TLS.

The controller keeps a small CA (EC P-256, SHA-256) in its data dir. An agent joins with a
one-time token and a CSR; the CA ignores everything the CSR asks for except its key and issues
a certificate whose URI SAN is ``podcap://agent/<agent id>``. The controller reads the agent id
of every call from that SAN (``agent_id_of``), never from a message, so one agent's key cannot
speak for another.

Two listeners use this module:

- the **agent listener** (mutual TLS) presents ``server_pair()``: a leaf signed by the CA for
  the DNS name ``CONTROLLER_NAME``, and accepts only client certificates from the CA;
- the **join listener** (server TLS only) presents ``join_pair()``: the CA certificate itself.
  An agent has no trust anchor yet, so it fetches that certificate with an unverified
  handshake, compares its SHA-256 with the fingerprint in its join token, and then trusts it as
  root. The CA certificate therefore carries the DNS SAN ``CONTROLLER_NAME`` and the key usage
  digitalSignature besides keyCertSign and cRLSign.

Files (in the data dir, keys 0600, every write atomic)::

    ca.crt, ca.key                          the CA (unless given with cert= / key=)
    agent-listener.crt, agent-listener.key  the agent listener's leaf, re-issued when missing,
                                            not from this CA, or near its end
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podcap import limits
from podcap.errors import FailedPrecondition, InvalidArgument, Unauthenticated

CONTROLLER_NAME = "podcap-controller"
AGENT_URI_PREFIX = "podcap://agent/"
NODE_URI_PREFIX = "podcap://node/"  # the node name an agent joined with (checks.node_name)

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
# The agent listener's leaf is re-issued at start when less than this is left.
RENEW_BEFORE = datetime.timedelta(days=30)
# Clocks of agents and controller differ a little: a new certificate is valid a bit earlier.
BACKDATE = datetime.timedelta(minutes=5)

# An agent id names a row (String(64)) and ends a URI: no '/', '%', spaces or '..'.
_AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ClusterCA:
    """The CA that issues agent certificates and the controller's own listener certificate."""

    def __init__(self, data_dir: Path, cert: x509.Certificate,
                 key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
        self._data_dir = data_dir
        self._cert = cert
        self._key = key
        self.cert_pem: bytes = cert.public_bytes(serialization.Encoding.PEM)
        self.fingerprint: str = fingerprint(cert.public_bytes(serialization.Encoding.DER))

    @classmethod
    def load_or_create(cls, data_dir: Path, cert: Path | None = None,
                       key: Path | None = None) -> ClusterCA:
        """CA in <data_dir>/ca.crt + ca.key (key 0600), generated on first use (10 years), or
        supplied via cert/key files (used in place; checked to work as the join certificate)."""
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if (cert is None) != (key is None):
            raise InvalidArgument("give both the cluster CA certificate and its key, or neither")
        if cert is not None and key is not None:
            ca_cert, ca_key = _load_pair(cert, key)
            _check_ca(ca_cert, cert)
            return cls(data_dir, ca_cert, ca_key)
        cert_path, key_path = data_dir / "ca.crt", data_dir / "ca.key"
        if cert_path.exists():
            if not key_path.exists():
                raise FailedPrecondition(
                    f"{cert_path} exists but {key_path} is missing: restore the key (a new CA "
                    "would disown every joined agent) or remove both to start a new cluster")
            ca_cert, ca_key = _load_pair(cert_path, key_path)
            return cls(data_dir, ca_cert, ca_key)
        # No certificate: first start (or a crash between the key and the certificate, when
        # no certificate was ever handed out), so a new CA is safe.
        new_key = ec.generate_private_key(ec.SECP256R1())
        new_cert = _issue_ca(new_key)
        _write_atomic(key_path, _key_pem(new_key), 0o600)
        _write_atomic(cert_path, new_cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cls(data_dir, new_cert, new_key)

    def sign_agent(self, csr_pem: bytes, agent_id: str, node: str = "") -> bytes:
        """Verify the CSR's signature (InvalidArgument if bad), ignore any subject/SAN it asks
        for, and issue a 1-year leaf cert: CN=agent_id, URI SAN AGENT_URI_PREFIX+agent_id
        (and NODE_URI_PREFIX+node: the name it joined with, which every Hello must repeat),
        CA:FALSE, EKU clientAuth, KU digitalSignature. Returns PEM."""
        _check_agent_id(agent_id)
        if len(csr_pem) > limits.CSR_MAX_BYTES:
            raise InvalidArgument(f"the CSR has {len(csr_pem)} bytes; at most "
                                  f"{limits.CSR_MAX_BYTES} are accepted")
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise InvalidArgument(f"the CSR is not a PEM certificate request: {exc}") from exc
        try:
            valid = csr.is_signature_valid
        except (ValueError, InvalidSignature, NotImplementedError) as exc:
            raise InvalidArgument(f"the CSR's signature cannot be checked: {exc}") from exc
        if not valid:
            raise InvalidArgument("the CSR's signature does not match its public key")
        public_key = csr.public_key()
        _check_public_key(public_key)
        cert = (_leaf_builder(self._cert, public_key, agent_id)
                .add_extension(x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(AGENT_URI_PREFIX + agent_id),
                     *([x509.UniformResourceIdentifier(NODE_URI_PREFIX + node)] if node
                       else [])]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .sign(self._key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM)

    def server_pair(self) -> tuple[bytes, bytes]:
        """(key_pem, cert_pem) for the controller's mTLS agent listener: a leaf signed by the
        CA, DNS SAN CONTROLLER_NAME, EKU serverAuth, kept in <data_dir>/agent-listener.crt/.key;
        re-issued if missing, not signed by this CA, or within RENEW_BEFORE of its end."""
        cert_path = self._data_dir / "agent-listener.crt"
        key_path = self._data_dir / "agent-listener.key"
        if cert_path.exists() and key_path.exists():
            key_pem, cert_pem = key_path.read_bytes(), cert_path.read_bytes()
            if self._is_current_server_pair(key_pem, cert_pem):
                return key_pem, cert_pem
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (_leaf_builder(self._cert, key.public_key(), CONTROLLER_NAME)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(CONTROLLER_NAME)]),
                               critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(self._key, hashes.SHA256()))
        key_pem, cert_pem = _key_pem(key), cert.public_bytes(serialization.Encoding.PEM)
        _write_atomic(key_path, key_pem, 0o600)
        _write_atomic(cert_path, cert_pem, 0o644)
        return key_pem, cert_pem

    def join_pair(self) -> tuple[bytes, bytes]:
        """(key_pem, cert_pem) for the join listener: the CA key and the CA certificate itself,
        which an agent pins by ``fingerprint`` (see the module docstring)."""
        return _key_pem(self._key), self.cert_pem

    def _is_current_server_pair(self, key_pem: bytes, cert_pem: bytes) -> bool:
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
            cert.verify_directly_issued_by(self._cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        left = cert.not_valid_after_utc - _now()
        return key.public_key() == cert.public_key() and left > RENEW_BEFORE


def fingerprint(cert_pem_or_der: bytes) -> str:
    """SHA-256 hex (64 lowercase characters) of a certificate's DER encoding."""
    if cert_pem_or_der.lstrip().startswith(b"-----BEGIN"):
        try:
            cert = x509.load_pem_x509_certificate(cert_pem_or_der)
        except ValueError as exc:
            raise InvalidArgument(f"not a PEM certificate: {exc}") from exc
        der = cert.public_bytes(serialization.Encoding.DER)
    else:
        der = cert_pem_or_der
    return hashlib.sha256(der).hexdigest()


def agent_id_of(cert_pem: bytes) -> str:
    """The agent id from a peer certificate's URI SAN; raises Unauthenticated if there is none.

    Trusts the certificate: call it only on one the TLS layer has verified against the CA."""
    try:
        if cert_pem.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(cert_pem)
        else:
            cert = x509.load_der_x509_certificate(cert_pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise Unauthenticated("the peer certificate has no subject alternative name; join "
                              "the agent to get a podcap agent certificate") from exc
    except ValueError as exc:
        raise Unauthenticated(f"the peer certificate cannot be read: {exc}") from exc
    ids = [uri[len(AGENT_URI_PREFIX):]
           for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
           if uri.startswith(AGENT_URI_PREFIX)]
    if len(ids) != 1 or not _AGENT_ID.fullmatch(ids[0]):
        raise Unauthenticated("the peer certificate names no podcap agent (expected one URI "
                              f"SAN {AGENT_URI_PREFIX}<agent id>)")
    return ids[0]


def node_of(cert_pem: bytes) -> str:
    """The node name a verified agent certificate was issued for; "" for certificates issued
    before names were bound (the controller's record of the join decides then)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem) if cert_pem.lstrip().startswith(
            b"-----BEGIN") else x509.load_der_x509_certificate(cert_pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return ""
    names = [uri[len(NODE_URI_PREFIX):]
             for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
             if uri.startswith(NODE_URI_PREFIX)]
    return names[0] if len(names) == 1 else ""


def new_key_and_csr(node_name: str) -> tuple[bytes, bytes]:
    """Agent side: (key_pem, csr_pem). The subject only helps a human reading the CSR; the CA
    decides the certificate's names."""
    key = ec.generate_private_key(ec.SECP256R1())
    cn = node_name[:64]  # X.509's upper bound for a common name
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return _key_pem(key), csr.public_bytes(serialization.Encoding.PEM)


def _issue_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "podcap"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "podcap cluster CA")])
    now = _now()
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(digital_signature=True, key_cert_sign=True,
                                      crl_sign=True), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(CONTROLLER_NAME)]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))


def _leaf_builder(ca: x509.Certificate, public_key: CertificatePublicKeyTypes,
                  common_name: str) -> x509.CertificateBuilder:
    now = _now()
    try:  # the issuer's own key identifier, so a supplied CA's chain links up
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ski = x509.SubjectKeyIdentifier.from_public_key(ca.public_key())
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca.subject).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(min(now + LEAF_VALIDITY, ca.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False))


def _key_usage(digital_signature: bool = False, key_cert_sign: bool = False,
               crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=key_cert_sign, crl_sign=crl_sign, encipher_only=False,
                         decipher_only=False)


def _load_pair(cert_path: Path, key_path: Path) -> tuple[
        x509.Certificate, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except OSError as exc:
        raise FailedPrecondition(f"cannot read the cluster CA: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"cannot load the cluster CA from {cert_path} and {key_path} "
                              f"(PEM, key unencrypted): {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise InvalidArgument(f"{key_path}: the cluster CA key must be EC or RSA")
    if key.public_key() != cert.public_key():
        raise InvalidArgument(f"{key_path} is not the key of {cert_path}")
    return cert, key


def _check_ca(cert: x509.Certificate, path: Path) -> None:
    """A supplied CA must also work as the join listener's certificate."""
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise InvalidArgument(f"{path}: the cluster CA certificate needs basicConstraints "
                              "CA:TRUE, keyUsage keyCertSign + digitalSignature, and the DNS "
                              f"SAN {CONTROLLER_NAME} (it also serves the join port)") from exc
    if not basic.ca or not usage.key_cert_sign or not usage.digital_signature:
        raise InvalidArgument(f"{path}: the cluster CA certificate needs CA:TRUE and key usage "
                              "keyCertSign + digitalSignature (it also serves the join port)")
    if CONTROLLER_NAME not in san.get_values_for_type(x509.DNSName):
        raise InvalidArgument(f"{path}: the cluster CA certificate needs the DNS SAN "
                              f"{CONTROLLER_NAME} (agents verify the join port against it)")


def _check_agent_id(agent_id: str) -> None:
    if not isinstance(agent_id, str) or not _AGENT_ID.fullmatch(agent_id):
        raise InvalidArgument(f"invalid agent id {str(agent_id)[:70]!r}: expected letters, "
                              "digits, '.', '_' or '-', at most 64 characters")


def _check_public_key(key: object) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
            raise InvalidArgument(f"the CSR's EC key is on {key.curve.name}; use P-256 or P-384")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise InvalidArgument(f"the CSR's RSA key has {key.key_size} bits; use 2048 or more")
    else:
        raise InvalidArgument("the CSR's key must be EC (P-256, P-384) or RSA")


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write beside, fsync, rename: readers see the old file or the whole new one, and the
    mode is set at creation (a key is never readable by others, not even for a moment)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
