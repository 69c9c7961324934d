"""The cluster CA (``ClusterCA``): made on first start or supplied, and what it signs.

It signs two kinds of leaf, both through ``issue``: an agent's certificate (``sign_agent``:
its names are the CA's, only the key comes from the CSR) and the controller's agent-listener
certificate (listener.py). It is itself the join listener's certificate (``join_pair``), so a
supplied CA is checked to work as one.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from podcap.errors import FailedPrecondition, InvalidArgument
from podcap.files import write_atomic
from podcap.pki.csr import PrivateKey, key_pem, new_key, public_key_of
from podcap.pki.names import (
    AGENT_URI_PREFIX,
    CONTROLLER_NAME,
    NODE_URI_PREFIX,
    check_agent_id,
    fingerprint,
)

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
# Clocks of agents and controller differ a little: a new certificate is valid a bit earlier.
BACKDATE = datetime.timedelta(minutes=5)


def now() -> datetime.datetime:
    """The time certificates are issued and judged by (a test moves it)."""
    return datetime.datetime.now(datetime.UTC)


class ClusterCA:
    """The CA that issues agent certificates and the controller's own listener certificate."""

    def __init__(self, data_dir: Path, cert: x509.Certificate, key: PrivateKey) -> None:
        self.data_dir = data_dir
        self.cert = cert
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
        new_ca_key = new_key()
        new_cert = _issue_ca(new_ca_key)
        write_atomic(key_path, key_pem(new_ca_key), 0o600)
        write_atomic(cert_path, new_cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cls(data_dir, new_cert, new_ca_key)

    @classmethod
    def from_pem(cls, data_dir: Path, cert_pem: bytes, key_pem_bytes: bytes) -> ClusterCA:
        """The CA the replicas share in the database (controller/shared_ca.py)."""
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            key = serialization.load_pem_private_key(key_pem_bytes, password=None)
        except (ValueError, TypeError) as exc:
            raise InvalidArgument(f"the cluster CA in the database cannot be read: {exc}") \
                from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) or \
                key.public_key() != cert.public_key():
            raise InvalidArgument("the cluster CA in the database: the key is not the "
                                  "certificate's")
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(data_dir, cert, key)

    def sign_agent(self, csr_pem: bytes, agent_id: str, node: str = "") -> bytes:
        """Verify the CSR's signature (InvalidArgument if bad), ignore any subject/SAN it asks
        for, and issue a 1-year leaf cert: CN=agent_id, URI SAN AGENT_URI_PREFIX+agent_id
        (and NODE_URI_PREFIX+node: the name it joined with, which every Hello must repeat),
        CA:FALSE, EKU clientAuth, KU digitalSignature. Returns PEM."""
        check_agent_id(agent_id)
        public_key = public_key_of(csr_pem)
        names: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(AGENT_URI_PREFIX + agent_id),
            *([x509.UniformResourceIdentifier(NODE_URI_PREFIX + node)] if node else [])]
        cert = self.issue(public_key, agent_id, names, ExtendedKeyUsageOID.CLIENT_AUTH)
        return cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, public_key: CertificatePublicKeyTypes, common_name: str,
              names: list[x509.GeneralName], usage: ObjectIdentifier) -> x509.Certificate:
        """A leaf for ``public_key``: CA:FALSE, KU digitalSignature, the SANs ``names``, the
        one extended key usage ``usage``, valid a year (never past the CA's own end)."""
        return (_leaf_builder(self.cert, public_key, common_name)
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .sign(self._key, hashes.SHA256()))

    def join_pair(self) -> tuple[bytes, bytes]:
        """(key_pem, cert_pem) for the join listener: the CA key and the CA certificate itself,
        which an agent pins by ``fingerprint`` (see the package docstring)."""
        return key_pem(self._key), self.cert_pem


def _issue_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "podcap"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "podcap cluster CA")])
    at = now()
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(at - BACKDATE).not_valid_after(at + CA_VALIDITY)
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
    at = now()
    try:  # the issuer's own key identifier, so a supplied CA's chain links up
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ski = x509.SubjectKeyIdentifier.from_public_key(ca.public_key())
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca.subject).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(at - BACKDATE)
            .not_valid_after(min(at + LEAF_VALIDITY, ca.not_valid_after_utc))
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


def _load_pair(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, PrivateKey]:
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
