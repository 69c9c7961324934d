"""The controller's agent-listener pair: a leaf of the cluster CA, kept on disk, renewed.

The agent listener (mutual TLS) presents a leaf for the DNS name ``CONTROLLER_NAME`` with EKU
serverAuth, kept in <data_dir>/agent-listener.crt/.key. It is re-issued at start when a file is
missing, when it is not this CA's (a new CA, a key that is not the certificate's), or when less
than ``RENEW_BEFORE`` of it is left: agents verify it against the CA, so a new one costs them
nothing.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from podcap.files import write_atomic
from podcap.pki import ca as ca_module  # its `now`, looked up at each call: a test moves it
from podcap.pki.ca import ClusterCA
from podcap.pki.csr import key_pem, new_key
from podcap.pki.names import CONTROLLER_NAME

# The agent listener's leaf is re-issued at start when less than this is left.
RENEW_BEFORE = datetime.timedelta(days=30)


def server_pair(ca: ClusterCA) -> tuple[bytes, bytes]:
    """(key_pem, cert_pem) for the controller's mTLS agent listener, read from the data dir
    when still current, else issued anew and written there."""
    cert_path = ca.data_dir / "agent-listener.crt"
    key_path = ca.data_dir / "agent-listener.key"
    if cert_path.exists() and key_path.exists():
        held_key, held_cert = key_path.read_bytes(), cert_path.read_bytes()
        if _is_current(ca, held_key, held_cert):
            return held_key, held_cert
    key = new_key()
    cert = ca.issue(key.public_key(), CONTROLLER_NAME, [x509.DNSName(CONTROLLER_NAME)],
                    ExtendedKeyUsageOID.SERVER_AUTH)
    new_key_pem, cert_pem = key_pem(key), cert.public_bytes(serialization.Encoding.PEM)
    write_atomic(key_path, new_key_pem, 0o600)
    write_atomic(cert_path, cert_pem, 0o644)
    return new_key_pem, cert_pem


def _is_current(ca: ClusterCA, key_pem_held: bytes, cert_pem: bytes) -> bool:
    """Signed by this CA, with the key beside it, and more than RENEW_BEFORE left."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem_held, password=None)
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    left = cert.not_valid_after_utc - ca_module.now()
    return key.public_key() == cert.public_key() and left > RENEW_BEFORE
